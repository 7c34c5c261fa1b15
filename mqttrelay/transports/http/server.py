"""uvicorn as mqttrelay runs it: in the service's loop, behind no proxy it
trusts, and with the page's port bounded so that slow or many clients cannot
take descriptors (and with them relays, MQTT and the state file) from the rest.

uvicorn itself has no time limit on a request's head and no connection limit
(its `limit_concurrency` answers 503 only once a head is complete, so slow
clients still hold their sockets). GuardedH11 is its h11 protocol with two
rules added, each well known from other servers (nginx's
client_header_timeout, Apache's mod_reqtimeout):

- a request must arrive whole (head and body) within REQUEST_TIMEOUT_S of the
  connection, or of the previous answer on a kept-alive one;
- at most `max_connections` are open: one over it closes the oldest connection
  that has sent part of a request and not the rest, else the oldest that sent
  nothing for GRACE_S; if neither exists it stays, up to `hard_limit`, past
  which the oldest connection that has sent nothing yet is closed. A request
  that is being answered, an event stream included, is never closed. A real
  client sends its whole request at once, so it is never "part-way" when its
  bytes are read, and is silent only until they are read; a flood of slow or
  silent clients pushes out itself. (Closing the newest past the hard limit
  would close the page's own request whenever a flood opens connections faster
  than it sends on them.)

uvicorn's own `limit_concurrency` is not used: it counts half-sent connections
too, so a flood would make it answer 503 to the page's owner. The listen
backlog is small because asyncio accepts up to that many sockets per wake-up
before any is read: a large one lets a flood push out connections whose
request is already waiting to be read.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import Generator
from typing import Any

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from mqttrelay.lib.ratelimit import RateLimitedLog

log = logging.getLogger(__name__)

REQUEST_TIMEOUT_S = 10.0
GRACE_S = 2.0  # a new connection's time to send its first bytes before it may be closed
_SENDING = (h11.IDLE, h11.SEND_BODY)  # the client's states before its request is whole
MAX_CONNECTIONS = 256
LISTEN_BACKLOG = 32  # also how many accepts asyncio tries per wake-up


class ConnectionGuard:
    """The open connections of one server, oldest first: up to `max_connections`
    as a rule, up to `hard_limit` while none can be closed in their place."""

    def __init__(
        self,
        max_connections: int = MAX_CONNECTIONS,
        hard_limit: int | None = None,
        request_timeout_s: float = REQUEST_TIMEOUT_S,
    ) -> None:
        self.max_connections = max_connections
        self.hard_limit = max(max_connections, hard_limit or 2 * max_connections)
        self.request_timeout_s = request_timeout_s
        self.open: dict[GuardedH11, None] = {}  # a dict keeps the order they came in
        self.closed = 0  # closed by these rules, since the start
        self._warnings = RateLimitedLog(log, 60.0)

    def admit(self, conn: GuardedH11) -> None:
        self.open[conn] = None
        if len(self.open) > self.max_connections:
            victim = self._victim(over_hard_limit=len(self.open) > self.hard_limit)
            if victim is not None:
                self.close(victim, f"over the limit of {self.max_connections} connections")

    def _victim(self, over_hard_limit: bool) -> GuardedH11 | None:
        """The oldest connection that sent part of a request, else the oldest that
        sent nothing in GRACE_S, else (past the hard limit) the oldest that sent
        nothing yet, however young."""
        silent = None
        settled = time.monotonic() - GRACE_S
        for conn in self.open:
            if conn.waiting_for_client():
                if conn.part_sent:
                    return conn
                if silent is None and (over_hard_limit or conn.since < settled):
                    silent = conn
        return silent

    def release(self, conn: GuardedH11) -> None:
        self.open.pop(conn, None)

    def close(self, conn: GuardedH11, why: str) -> None:
        self.release(conn)
        conn.transport.abort()  # the descriptor is free at once
        self.closed += 1
        self._warnings.warning(
            "web page port: closed a connection (%s; %d so far); logged once a minute",
            why,
            self.closed,
            key="closed",
        )


class GuardedH11(H11Protocol):
    guard: ConnectionGuard  # set on the subclass guarded_protocol() makes

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._deadline: asyncio.TimerHandle | None = None
        self.part_sent = False  # some bytes of the current request, not all of them
        self.since = time.monotonic()
        super().connection_made(transport)
        self.guard.admit(self)
        if not transport.is_closing():
            self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self.guard.release(self)
        if self._deadline is not None:
            self._deadline.cancel()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self.part_sent = self.conn.their_state in _SENDING

    def on_response_complete(self) -> None:
        self.part_sent = False
        self.since = time.monotonic()
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm()  # the next request on this connection gets the same time

    def waiting_for_client(self) -> bool:
        """The client has not yet sent all of a request: nothing is being answered."""
        return self.conn.their_state in _SENDING and not self.transport.is_closing()

    def _arm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        self._deadline = self.loop.call_later(self.guard.request_timeout_s, self._expired)

    def _expired(self) -> None:
        self._deadline = None
        if self.waiting_for_client():
            self.guard.close(self, f"no whole request in {self.guard.request_timeout_s:g} s")


def guarded_protocol(guard: ConnectionGuard) -> type[GuardedH11]:
    return type("GuardedH11ForServer", (GuardedH11,), {"guard": guard})


def guard_for(open_files: int, reserve: int) -> ConnectionGuard:
    """MAX_CONNECTIONS (twice that at most), or fewer when the open-file limit
    leaves less beside the reserve kept for relays, MQTT and the state file."""
    room = max(32, open_files - reserve - LISTEN_BACKLOG)
    return ConnectionGuard(min(MAX_CONNECTIONS, room // 2), min(2 * MAX_CONNECTIONS, room))


def bind_api_socket(host: str, port: int) -> socket.socket:
    """Bind before anything starts, so a busy port is a clear error, not a crash.
    Raises OSError."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(False)
    return sock


class ApiServer(uvicorn.Server):
    """uvicorn in our loop; our own SIGTERM/SIGINT handling stays in charge."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def uvicorn_config(app: Any, guard: ConnectionGuard | None = None) -> uvicorn.Config:
    """uvicorn without its own log handlers (log_config=None): its lines go to the
    root handler, whose formatter masks secrets like every other line.

    proxy_headers is off: uvicorn would otherwise take X-Forwarded-For from any
    loopback client as the client's address, and Home Assistant's ingress proxy
    is recognised by the address its connection really comes from."""
    return uvicorn.Config(
        app,
        log_config=None,
        log_level="warning",
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=3,
        proxy_headers=False,
        forwarded_allow_ips="",
        http=guarded_protocol(guard or ConnectionGuard()),
        backlog=LISTEN_BACKLOG,
        ws="none",  # the page uses none; an upgrade is answered as plain HTTP
    )
