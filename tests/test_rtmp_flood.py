"""The built-in ingest's admission rules with real sockets: a flood from many
source addresses (127.0.0.2 ..) does not push out a real publisher mid-handshake,
a lost connection is one log line, and stop() waits for every connection."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import gc
import logging
import socket
import traceback
from collections import deque

import pytest

from mqttrelay.ingest.rtmp.server import Limits, RtmpServer

from .support import eventually, require_tool
from .test_rtmp_ingest import Pub, closed, connect_from, server, source_argv, url

pytestmark = pytest.mark.integration
FLOOD_ADDRESSES = [f"127.0.0.{n}" for n in range(2, 14)]  # 12 > 64 / 8 per address


class Flood:
    """Opens idle connections round the addresses, as fast as the loop lets it,
    until stopped; keeps the newest few hundred sockets open."""

    def __init__(self, port: int, host: str = "127.0.0.1") -> None:
        self.port, self.host = port, host
        self.opened = 0
        self.socks: deque[socket.socket] = deque()
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            address = FLOOD_ADDRESSES[self.opened % len(FLOOD_ADDRESSES)]
            sock = socket.socket()
            sock.setblocking(False)
            sock.bind((address, 0))
            await asyncio.get_running_loop().sock_connect(sock, (self.host, self.port))
            self.socks.append(sock)
            self.opened += 1
            if len(self.socks) > 400:
                self.socks.popleft().close()
            await asyncio.sleep(0)

    async def stop(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task
        for sock in self.socks:
            sock.close()
        self.socks.clear()


async def test_flood_from_many_addresses_does_not_push_out_a_publisher(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Idle connections from 12 addresses keep arriving (each evicts one); ffmpeg
    connects in the middle of it, handshakes and publishes all the same."""
    caplog.set_level(logging.INFO)
    srv, sink = await server()
    flood = Flood(srv.port)
    pub: Pub | None = None
    try:

        async def full() -> bool:
            return len(srv._conns) >= srv.limits.max_connections and flood.opened > 200

        await eventually(full, 30, "the flood to fill the server")
        before = flood.opened
        pub = await Pub.start(source_argv(require_tool("ffmpeg"), url(srv), seconds=6))

        async def publishing() -> bool:
            return sink.started == 1 and sink.tags > 20

        await eventually(publishing, 40, "ffmpeg to publish through the flood")
        assert flood.opened - before > 3 * srv.limits.max_connections  # it kept coming
        assert not flood.task.done()
        assert len(srv._conns) <= srv.limits.max_connections
        assert srv.publishing("live/stream")
    finally:
        await flood.stop()
        if pub is not None:
            await pub.stop()
        await srv.stop()


async def test_lost_connection_is_one_line_without_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An OSError that is not a ConnectionError (here EHOSTUNREACH, handed to the
    connection's reader as the transport does) ends that connection quietly."""
    srv, _ = await server()
    sock = await connect_from("127.0.0.5", srv.port)
    try:

        async def accepted() -> bool:
            return len(srv._conns) == 1

        await eventually(accepted, 10, "the connection to be accepted")
        conn = next(iter(srv._conns))
        conn.reader.set_exception(OSError(errno.EHOSTUNREACH, "No route to host"))

        async def gone() -> bool:
            return not srv._conns and not srv._tasks

        await eventually(gone, 10, "the connection to end")
        gc.collect()  # in case a failed task is only reported when it is collected
        await asyncio.sleep(0.1)
        lines = [r.getMessage() for r in caplog.records if "127.0.0.5" in r.getMessage()]
        assert lines == ["built-in ingest: 127.0.0.5: connection lost: No route to host"]

        # the server's own records only: gc.collect() may report another test's
        # never-retrieved future here (aiomqtt's, say), with its traceback
        def about_the_server(r: logging.LogRecord) -> bool:
            if r.name.startswith("mqttrelay."):
                return True
            told = r.getMessage() + (
                "".join(traceback.format_exception(*r.exc_info)) if r.exc_info else ""
            )
            return "ingest/rtmp" in told or "RtmpServer" in told

        ours = [r for r in caplog.records if about_the_server(r)]
        assert all(r.exc_info is None for r in ours)
        assert not any("Traceback" in r.getMessage() for r in ours)
        assert await closed(sock, 5)
    finally:
        sock.close()
        await srv.stop()


def _connection_tasks() -> list[asyncio.Task[object]]:
    return [
        t
        for t in asyncio.all_tasks()
        if getattr(t.get_coro(), "__qualname__", "") == "RtmpServer._accept" and not t.done()
    ]


async def test_stop_waits_for_evicted_connections_too(caplog: pytest.LogCaptureFixture) -> None:
    srv = RtmpServer("127.0.0.1", 0, {}, None, Limits(max_connections=4))
    await srv.start()
    socks = [await connect_from(FLOOD_ADDRESSES[n % 3], srv.port) for n in range(40)]
    try:
        assert srv.refused == 0  # none refused: each newcomer evicted an idle one
        await srv.stop()
        assert _connection_tasks() == []
        assert not srv._tasks and not srv._conns
        await asyncio.sleep(0.1)
        assert not [r for r in caplog.records if r.levelno >= logging.ERROR]  # none cancelled
    finally:
        for sock in socks:
            sock.close()
