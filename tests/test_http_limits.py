"""The web server's limits as plain values: which connection gives way when
too many are open, how many may be, the open-file limit, and the loop's
resource errors logged once a minute."""

from __future__ import annotations

import asyncio
import logging
import resource
import time
from types import SimpleNamespace
from typing import Any

import h11
import pytest

from mqttrelay.lib.limits import QuietLoopErrors, raise_open_file_limit
from mqttrelay.transports.http.server import (
    GRACE_S,
    MAX_CONNECTIONS,
    ApiServer,
    ConnectionGuard,
    GuardedH11,
    bind_api_socket,
    guard_for,
    uvicorn_config,
)

from .support import eventually


class _Transport:
    def __init__(self) -> None:
        self.aborted = False

    def abort(self) -> None:
        self.aborted = True

    def is_closing(self) -> bool:
        return self.aborted


class _Conn:
    """What the guard reads of a connection: its state and when it began."""

    def __init__(self, state: object, part_sent: bool, age_s: float) -> None:
        self.conn = SimpleNamespace(their_state=state)  # h11.Connection's, as plain data
        self.part_sent = part_sent
        self.since = time.monotonic() - age_s
        self.transport = _Transport()

    def waiting_for_client(self) -> bool:
        return GuardedH11.waiting_for_client(self)  # type: ignore[arg-type]


def _guard(max_connections: int, hard: int) -> ConnectionGuard:
    return ConnectionGuard(max_connections, hard)


def _admit(guard: ConnectionGuard, conn: _Conn) -> None:
    guard.admit(conn)  # type: ignore[arg-type]


def test_a_slow_client_gives_way_before_anyone_being_answered() -> None:
    guard = _guard(3, 4)
    answering = _Conn(h11.DONE, False, 60)  # an event stream, say
    slow = _Conn(h11.IDLE, True, 5)  # half a head
    fresh = _Conn(h11.IDLE, False, 0)  # not read yet
    for conn in (answering, slow, fresh):
        _admit(guard, conn)
    newcomer = _Conn(h11.IDLE, False, 0)
    _admit(guard, newcomer)
    assert slow.transport.aborted and not answering.transport.aborted
    assert not fresh.transport.aborted and not newcomer.transport.aborted
    assert list(guard.open) == [answering, fresh, newcomer]  # type: ignore[comparison-overlap]
    assert guard.closed == 1


def test_a_new_connection_gets_time_to_send_then_the_hard_limit_holds() -> None:
    guard = _guard(2, 3)
    old_silent = _Conn(h11.IDLE, False, GRACE_S + 1)
    young = _Conn(h11.IDLE, False, 0)
    _admit(guard, old_silent)
    _admit(guard, young)
    third = _Conn(h11.IDLE, False, 0)
    _admit(guard, third)  # the one silent for longer than the grace goes
    assert old_silent.transport.aborted and not third.transport.aborted
    fourth = _Conn(h11.MUST_CLOSE, False, 0)
    _admit(guard, fourth)  # nobody may go, but under the hard limit: kept
    assert not any(c.transport.aborted for c in (young, third, fourth))
    fifth = _Conn(h11.IDLE, False, 0)
    _admit(guard, fifth)  # over the hard limit: the oldest that sent nothing goes
    assert young.transport.aborted and not fifth.transport.aborted
    assert list(guard.open) == [third, fourth, fifth]  # type: ignore[comparison-overlap]


def test_past_the_hard_limit_a_silent_flood_pushes_out_itself_not_the_page() -> None:
    """A flood that opens connections faster than it sends on them fills the
    guard with young silent ones; the page's request, newest when it comes and
    whole as soon as it is read, must not be the one closed."""
    guard = _guard(4, 8)
    flood = [_Conn(h11.IDLE, False, 0) for _ in range(8)]
    for conn in flood:
        _admit(guard, conn)
    page = _Conn(h11.IDLE, False, 0)
    _admit(guard, page)
    assert not page.transport.aborted and flood[0].transport.aborted
    page.conn.their_state = h11.DONE  # its request is read: being answered
    for _ in range(20):  # the flood goes on connecting
        _admit(guard, _Conn(h11.IDLE, False, 0))
    assert not page.transport.aborted and page in guard.open  # type: ignore[comparison-overlap]
    assert len(guard.open) == 8


def test_the_limits_leave_a_reserve_of_open_files() -> None:
    small = guard_for(1024, 512)
    assert small.hard_limit + 512 + 32 <= 1024 and small.max_connections >= 200
    big = guard_for(65536, 512)
    assert big.max_connections == MAX_CONNECTIONS and big.hard_limit == 2 * MAX_CONNECTIONS
    tiny = guard_for(256, 512)
    assert tiny.max_connections >= 16  # the page still opens


def test_uvicorn_trusts_no_forwarded_header_and_bounds_the_backlog() -> None:
    config = uvicorn_config(lambda *a: None)
    assert config.proxy_headers is False and config.forwarded_allow_ips == ""
    assert config.backlog <= 64 and issubclass(config.http, GuardedH11)  # type: ignore[arg-type]


def test_the_soft_open_file_limit_is_raised_towards_the_hard_one() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(512, hard), hard))
        now = raise_open_file_limit(min(hard, 4096))
        assert now == min(hard, 4096) == resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_accept_errors_are_logged_once_a_minute(caplog: pytest.LogCaptureFixture) -> None:
    loop = asyncio.new_event_loop()
    try:
        handler = QuietLoopErrors()
        context: dict[str, Any] = {
            "message": "socket.accept() out of system resource",
            "exception": OSError(24, "Too many open files"),
        }
        with caplog.at_level(logging.WARNING):
            for _ in range(1000):
                handler(loop, context)
            handler(loop, {"message": "something else"})
    finally:
        loop.close()
    accept = [r for r in caplog.records if "out of system resource" in r.getMessage()]
    assert len(accept) == 1 and accept[0].exc_info is None
    assert "Too many open files" in accept[0].getMessage()
    assert any(r.getMessage() == "something else" for r in caplog.records)


async def test_uvicorn_with_the_guard_closes_slow_clients_and_serves_whole_requests() -> None:
    """The protocol inside a real uvicorn (it relies on uvicorn's h11 protocol)."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    guard = ConnectionGuard(4, 6, request_timeout_s=0.5)
    sock = bind_api_socket("127.0.0.1", 0)
    port = sock.getsockname()[1]
    server = ApiServer(uvicorn_config(app, guard))
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    try:

        async def running() -> bool:
            return server.started

        await eventually(running, 10, "uvicorn to start")
        slow = []
        for _ in range(8):  # more half-sent requests than the cap
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n")
            slow.append((reader, writer))
        await asyncio.sleep(0.1)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        answer = await asyncio.wait_for(reader.read(), 5)
        assert answer.startswith(b"HTTP/1.1 200") and b"\r\nok\r\n" in answer
        writer.close()
        started = time.monotonic()
        for reader, writer in slow:  # each closed: over the cap, or after its 0.5 s
            assert await asyncio.wait_for(reader.read(), 5) == b""
            writer.close()
        assert time.monotonic() - started < 3 and len(guard.open) == 0
        assert guard.closed == 8
    finally:
        server.should_exit = True
        await asyncio.wait_for(serving, 10)
