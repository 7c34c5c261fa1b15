"""RTMPS through a local stunnel: ffmpeg speaks plain RTMP to loopback and
stunnel does the TLS to the platform.

ffmpeg 5.1 sets no TCP_NODELAY on the socket under its `tls` layer, so the RTMP
handshake over TLS stalls three times on Nagle's algorithm meeting a delayed ACK
(about 40 ms each here, up to a round trip each on the internet). stunnel sets
TCP_NODELAY on both of its sockets (DESIGN.md, "RTMPS"). One stunnel runs per
destination: it starts with the destination's first switch-on and stays ready
until its relay is closed.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import signal
import socket
from collections import deque
from collections.abc import Iterable
from urllib.parse import urlsplit, urlunsplit

import psutil

from mqttrelay.config import StreamConfig
from mqttrelay.lib import process
from mqttrelay.lib.redact import Redactor
from mqttrelay.lib.supervisor import ChildProcess, StartError, stderr_reader

log = logging.getLogger(__name__)

START_DEADLINE_S = 3.0


def find_stunnel(name: str | None, streams: Iterable[StreamConfig]) -> str | None:
    """The stunnel binary to use, or None: ffmpeg then does RTMPS's TLS itself."""
    if name is None:
        return None
    found = shutil.which(name)
    if found is None and any(is_rtmps(s.url) for s in streams):
        log.warning(
            "stunnel (%s) is not installed: RTMPS relays use ffmpeg's own TLS, which "
            "takes about 0.2 s longer to switch on (apt-get install stunnel4)",
            name,
        )
    return found


class TunnelError(Exception):
    """The tunnel could not start; the message says why."""


def is_rtmps(url: str) -> bool:
    return urlsplit(url).scheme.lower() == "rtmps"


def stunnel_conf(listen_port: int, host: str, port: int) -> str:
    """A foreground client tunnel: 127.0.0.1:listen_port -> TLS to host:port.

    Like ffmpeg's own TLS (tls_verify 0), it does not verify the certificate."""
    connect = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return "\n".join(
        [
            "foreground = yes",
            "pid =",
            "syslog = no",
            "debug = 4",
            "[rtmps]",
            "client = yes",
            f"accept = 127.0.0.1:{listen_port}",
            f"connect = {connect}",
            "socket = l:TCP_NODELAY=1",
            "socket = r:TCP_NODELAY=1",
            "delay = yes",  # resolve the platform's name at each connection, not once
            "",
        ]
    )


def through_tunnel(target: str, listen_port: int) -> tuple[str, str]:
    """(the rtmp:// URL ffmpeg writes to, the tcUrl the platform must see).

    The application is the path's first segment, as ffmpeg's RTMP client takes it."""
    parts = urlsplit(target)
    user = parts.netloc.rpartition("@")[0]
    loopback = f"{user}@127.0.0.1:{listen_port}" if user else f"127.0.0.1:{listen_port}"
    app = parts.path.lstrip("/").split("/", 1)[0]
    host = parts.netloc.rpartition("@")[2]
    return (
        urlunsplit(("rtmp", loopback, parts.path, parts.query, "")),
        f"rtmps://{host}/{app}",
    )


def _listening(pid: int, port: int) -> bool:
    """Does pid listen on port? Asked of the kernel: a test connection would make
    stunnel open a TLS connection to the platform."""
    try:
        connections = psutil.Process(pid).net_connections(kind="tcp4")
    except psutil.Error:
        return False
    return any(c.status == psutil.CONN_LISTEN and c.laddr.port == port for c in connections)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class TlsTunnel:
    """One stunnel process for one destination. It starts with the relay's first
    run and stays ready (no connection to the platform while idle) until the relay
    is closed, so a switch-on costs only the TLS handshake."""

    def __init__(self, stunnel: str, owner: str, redactor: Redactor) -> None:
        self._stunnel = stunnel
        self._owner = owner
        self._redactor = redactor
        self._child: ChildProcess | None = None
        self.stderr_tail: deque[str] = deque(maxlen=10)
        self._ready: tuple[str, tuple[str, str]] | None = None  # target, its pair

    @property
    def pid(self) -> int | None:
        return self._child.pid if self._child is not None else None

    async def ensure(self, target: str) -> tuple[str, str]:
        """through_tunnel()'s pair for target, starting stunnel when it is not
        running (or runs towards another target)."""
        if self.pid is not None and self._ready is not None and self._ready[0] == target:
            return self._ready[1]
        await self.stop()
        pair = await self._start(target)
        self._ready = (target, pair)
        return pair

    async def _start(self, target: str) -> tuple[str, str]:
        parts = urlsplit(target)
        port = _free_port()
        conf = stunnel_conf(port, parts.hostname or "", parts.port or 443)
        try:
            # the config on stdin (fd 0): no file to write, clean up or protect
            self._child = child = await ChildProcess.spawn(
                [self._stunnel, "-fd", "0"],
                self._owner,
                "stunnel",
                stdin=True,
                grace_s=1.0,
                readers=[stderr_reader(self._redactor, self.stderr_tail, _ignore)],
            )
        except StartError as exc:
            raise TunnelError(str(exc)) from None
        assert child.proc.stdin is not None
        child.proc.stdin.write(conf.encode())
        child.proc.stdin.close()
        loop = asyncio.get_running_loop()
        end = loop.time() + START_DEADLINE_S
        while not _listening(child.proc.pid, port):
            if child.returncode is not None or loop.time() > end:
                tail = self.stderr_tail[-1] if self.stderr_tail else "no error output"
                await self.stop()
                raise TunnelError(f"stunnel did not start: {tail}")
            await asyncio.sleep(0.005)
        return through_tunnel(target, port)

    async def stop(self) -> None:
        self._ready = None
        if self._child is not None:
            process.signal_group(self._child.proc, signal.SIGTERM)  # it ignores a closed stdin
            await self._child.close()
            self._child = None


def _ignore(_: str) -> None:
    """stunnel's lines stay in stderr_tail for the error message."""
