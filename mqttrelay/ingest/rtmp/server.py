"""The built-in ingest's listener: RTMP publishers in, tags to a sink per stream.

Safe on a LAN by design: a bounded number of connections (a full house drops
a connection that is not publishing, first from the same address: the one that
got least far, longest idle first, so a flood of idle sockets from any number
of addresses cannot push out OBS mid-handshake), a deadline for the handshake
and another for publishing, a cap on message size, idle and slow clients
dropped, and the publish key checked before any media is accepted. Malformed
input, or a connection the network ends, ends that one connection with one
log line naming the peer's address (at most one a minute per address).
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Protocol, TypeVar

from mqttrelay.ingest.rtmp import handshake
from mqttrelay.ingest.rtmp.amf0 import AmfError
from mqttrelay.ingest.rtmp.chunks import MAX_MESSAGE_SIZE, ChunkError, ChunkReader
from mqttrelay.ingest.rtmp.handshake import HandshakeError
from mqttrelay.ingest.rtmp.session import (
    Media,
    ProtocolError,
    PublishRequest,
    Session,
    Unpublish,
)
from mqttrelay.lib.aio import cancel_and_wait

log = logging.getLogger(__name__)
READ_SIZE = 65536


class Sink(Protocol):
    """Where one stream name's publisher goes, its messages' payloads as they
    came (tracks.TrackSplit: each source's tracks out of them)."""

    def rtmp_started(self) -> None: ...

    def rtmp_media(self, type_id: int, timestamp: int, payload: bytes) -> None: ...

    def rtmp_ended(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Limits:
    max_connections: int = 64
    max_pending_per_address: int = 8  # connections not (yet) publishing
    handshake_s: float = 5.0  # C0 C1 ... C2
    publish_s: float = 10.0  # connect to publish
    idle_s: float = 5.0  # a publisher silent this long is gone
    takeover_s: float = 2.0  # a publisher silent this long yields to a new one
    max_message_size: int = MAX_MESSAGE_SIZE  # once publishing
    max_command_size: int = 64 * 1024  # before: only commands come, so idle sockets hold little
    max_write_buffer: int = 1024 * 1024  # a client that reads nothing of ours


# A publisher sends a dozen messages before `publish`; a flood of tiny ones is a peer
# stalling the loop. Past the publish, messages are shared out every so many.
MAX_MESSAGES_BEFORE_PUBLISH = 200
YIELD_EVERY_MESSAGES = 256
STOP_TURNS = 5  # loop turns from an accepted socket to its connection task running
STOP_WAIT_S = 5.0


T = TypeVar("T")


class Progress(IntEnum):
    """How far a connection got towards publishing; a full house drops the least far."""

    CONNECTED = 0  # nothing received yet
    HANDSHAKING = 1  # C0 C1 came
    HANDSHAKEN = 2  # C2 came
    APP = 3  # connect named an app this server has streams for


@dataclass(frozen=True, slots=True)
class Candidate:
    """What eviction looks at for a connection that is not publishing."""

    progress: Progress
    last_data: float  # monotonic time of its last bytes (or of connecting)


def eviction_victim(candidates: Iterable[tuple[Candidate, T]]) -> T | None:
    """The connection to drop for a newcomer: least progress, then longest idle.
    One that got through the handshake and connect is dropped only when no
    connection that got less far is left."""
    best = min(candidates, key=lambda c: (c[0].progress, c[0].last_data), default=None)
    return best[1] if best is not None else None


@dataclass(eq=False)
class _Conn:
    address: str
    writer: asyncio.StreamWriter
    reader: asyncio.StreamReader
    since: float = field(default_factory=time.monotonic)
    last_data: float = field(default_factory=time.monotonic)
    progress: Progress = Progress.CONNECTED
    stream: str | None = None  # the stream name it publishes
    refused: bool = False  # its publish was refused: nothing more of it is read
    messages: int = 0  # read before it publishes

    def drop(self) -> None:
        self.writer.transport.abort()

    def moved(self, progress: Progress) -> None:
        self.progress = progress
        self.last_data = time.monotonic()


class RtmpServer:
    def __init__(
        self,
        host: str,
        port: int,
        sinks: dict[str, Sink],
        publish_key: str | None,
        limits: Limits | None = None,
    ) -> None:
        """sinks: 'app/name' -> where that stream's tags go."""
        self.host, self.port = host, port
        self._sinks = sinks
        self._key = publish_key
        self.limits = limits or Limits()
        self._conns: dict[_Conn, asyncio.Task[None]] = {}  # counted against the caps
        self._tasks: set[asyncio.Task[None]] = set()  # every one still running, dropped too
        self._stopping = False
        self._apps = {name.split("/", 1)[0] for name in sinks}
        self._publishers: dict[str, _Conn] = {}
        self._server: asyncio.Server | None = None
        self._logged: dict[str, float] = {}
        self.refused = 0  # connections turned away or dropped for a limit

    async def start(self) -> None:
        """Raises OSError when the address cannot be listened on."""
        self._server = await asyncio.start_server(self._accept, self.host, self.port)
        sock = self._server.sockets[0].getsockname()
        self.port = sock[1]
        log.info("built-in RTMP ingest listening on %s:%d", self.host, self.port)

    async def stop(self) -> None:
        """Closes every connection and waits until each one's task has ended,
        those dropped earlier included."""
        self._stopping = True
        if self._server is not None:
            self._server.close()
            self._server = None
        # connections accepted just before the close get their task a few loop turns later
        for _ in range(STOP_TURNS):
            await asyncio.sleep(0)
        for conn in self._conns:
            conn.drop()  # each task sees the end of its stream and returns
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=STOP_WAIT_S)
        # cancelling is the last resort: Python 3.11's stream callback logs a
        # cancelled connection task as an error with a traceback
        await cancel_and_wait(*self._tasks)
        self._conns.clear()
        self._tasks.clear()

    def publishing(self, stream: str) -> bool:
        return stream in self._publishers

    # -- connections -------------------------------------------------------------
    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        conn = _Conn(str(peer[0]) if isinstance(peer, tuple) else "?", writer, reader)
        if self._stopping:
            writer.transport.abort()
            return
        if not self._make_room(conn.address):
            self.refused += 1
            self._log_once(
                conn.address, "connection refused: %d connections already", len(self._conns)
            )
            writer.transport.abort()
            return
        task = asyncio.current_task()
        assert task is not None
        self._conns[conn] = task
        self._tasks.add(task)
        try:
            await self._serve(conn, reader)
        except TimeoutError:
            if conn.stream is None:
                self._log_once(conn.address, "dropped: did not handshake and publish in time")
            else:
                log.warning(
                    "built-in ingest: %s sent nothing for %.0f s, taking %s as ended",
                    conn.address,
                    self.limits.idle_s,
                    conn.stream,
                )
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # the client left; a publisher's session ends below
        except (HandshakeError, ChunkError, AmfError, ProtocolError) as exc:
            self._log_once(conn.address, "dropped: %s", exc)
        except OSError as exc:  # EHOSTUNREACH and kin: the network, not a bug here
            self._log_once(conn.address, "connection lost: %s", exc.strerror or exc)
        finally:
            self._tasks.discard(task)
            self._conns.pop(conn, None)
            self._end_publish(conn)
            writer.transport.abort()

    def _make_room(self, address: str) -> bool:
        """Below the caps, or after dropping a connection that is not publishing
        (from this address first, see eviction_victim); False when all publish."""
        pending = [c for c in self._conns if c.stream is None]
        own = [c for c in pending if c.address == address]
        if len(own) >= self.limits.max_pending_per_address:
            self._evict(own)
            pending = [c for c in pending if c in self._conns]
        if len(self._conns) < self.limits.max_connections:
            return True
        return self._evict(pending)

    def _evict(self, conns: list[_Conn]) -> bool:
        victim = eviction_victim((Candidate(c.progress, c.last_data), c) for c in conns)
        if victim is None:
            return False
        victim.drop()
        self._conns.pop(victim, None)
        return True

    async def _serve(self, conn: _Conn, reader: asyncio.StreamReader) -> None:
        lim = self.limits
        async with asyncio.timeout(lim.handshake_s):
            c0c1 = await reader.readexactly(handshake.C0C1_SIZE)
            self._write(conn, handshake.server_reply(c0c1, int(time.monotonic() * 1000)))
            conn.moved(Progress.HANDSHAKING)
            handshake.check_c2(await reader.readexactly(handshake.SIZE))
            conn.moved(Progress.HANDSHAKEN)
        chunks = ChunkReader(lim.max_command_size)
        session = Session()
        deadline = conn.since + lim.handshake_s + lim.publish_s
        while True:
            wait = lim.idle_s if conn.stream else deadline - time.monotonic()
            data = await asyncio.wait_for(reader.read(READ_SIZE), max(wait, 0.01))
            if not data:
                return
            conn.last_data = time.monotonic()
            session.received(len(data))
            for count, message in enumerate(chunks.read(data), 1):
                if conn.stream is None:
                    conn.messages += 1
                    if conn.messages > MAX_MESSAGES_BEFORE_PUBLISH:
                        raise ProtocolError("too many messages before publishing")
                for event in session.handle(message):
                    self._event(conn, session, event)
                if conn.progress < Progress.APP and session.app in self._apps:
                    conn.moved(Progress.APP)
                if conn.refused:
                    return  # one guess of the key per connection
                if conn.stream is not None:
                    chunks.max_message_size = lim.max_message_size
                if count % YIELD_EVERY_MESSAGES == 0:
                    await asyncio.sleep(0)  # a flood of tiny messages shares the loop
            self._write(conn, session.take_output())
            if conn.stream is None and time.monotonic() > deadline:
                raise TimeoutError

    def _write(self, conn: _Conn, data: bytes) -> None:
        if data:
            conn.writer.write(data)
        if conn.writer.transport.get_write_buffer_size() > self.limits.max_write_buffer:
            raise ProtocolError("the client reads nothing of what it is sent")

    # -- publishing --------------------------------------------------------------
    def _event(
        self, conn: _Conn, session: Session, event: PublishRequest | Media | Unpublish
    ) -> None:
        if isinstance(event, Media):
            if conn.stream is not None:
                self._media(conn.stream, event)
        elif isinstance(event, PublishRequest):
            self._publish(conn, session, event)
        elif conn.stream is not None:
            log.info("built-in ingest: %s stopped publishing %s", conn.address, conn.stream)
            self._end_publish(conn)

    def _publish(self, conn: _Conn, session: Session, request: PublishRequest) -> None:
        stream = f"{request.app}/{request.name}"
        sink = self._sinks.get(stream)
        if sink is None:
            self._refuse(
                conn, session, "NetStream.Publish.BadName", f"no stream {stream[:80]} here"
            )
            return
        if self._key is not None and not hmac.compare_digest(
            (request.key or "").encode(), self._key.encode()
        ):
            why = "wrong publish key" if request.key else "no publish key (use 'stream?key=...')"
            self._refuse(conn, session, "NetStream.Publish.Denied", f"{stream}: {why}")
            return
        current = self._publishers.get(stream)
        if current is not None:
            silent = time.monotonic() - current.last_data
            if silent < self.limits.takeover_s:
                self._refuse(
                    conn,
                    session,
                    "NetStream.Publish.BadName",
                    f"{stream} is already being published",
                )
                return
            log.info(
                "built-in ingest: %s took over %s (the last publisher went silent)",
                conn.address,
                stream,
            )
            self._end_publish(current)
            current.drop()
        session.accept_publish()
        conn.stream = stream
        self._publishers[stream] = conn
        codecs = ", ".join(session.fourccs) or "classic FLV only"
        log.info(
            "built-in ingest: %s publishes %s (announced codecs: %s)", conn.address, stream, codecs
        )
        sink.rtmp_started()

    def _refuse(self, conn: _Conn, session: Session, code: str, description: str) -> None:
        self.refused += 1
        conn.refused = True
        session.refuse_publish(code, description)
        self._log_once(conn.address, "publish refused: %s", description)
        # the status goes out, then the connection ends (the read loop sees EOF)
        self._write(conn, session.take_output())
        conn.writer.close()

    def _media(self, stream: str, event: Media) -> None:
        if event.payload:
            self._sinks[stream].rtmp_media(event.type_id, event.timestamp, event.payload)

    def _end_publish(self, conn: _Conn) -> None:
        stream, conn.stream = conn.stream, None
        if stream is not None and self._publishers.get(stream) is conn:
            del self._publishers[stream]
            self._sinks[stream].rtmp_ended()

    def _log_once(self, address: str, text: str, *args: object) -> None:
        now = time.monotonic()
        if now - self._logged.get(address, -1e9) < 60:
            return
        if len(self._logged) >= 1024:
            self._logged.clear()
        self._logged[address] = now
        log.warning("built-in ingest: %s: " + text, address, *args)
