"""What a child process's TCP sockets hold: how many bytes it has written that the
other end has not yet acknowledged (from /proc), and a cap on how much of that may
wait unsent. On a slow link the kernel's autotuned send buffer held 300 KB,
seconds of stream past any queue mqttrelay holds itself and can drop from."""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import os
import socket
import struct
import termios
from collections.abc import Iterable
from pathlib import Path

ESTABLISHED = "01"
TCP_NOTSENT_LOWAT = 25  # linux/tcp.h; not in Python's socket module
SYS_PIDFD_GETFD = 438  # the same number on every Linux architecture (5.6 and later)


def parse_tx_queues(text: str) -> dict[int, int]:
    """/proc/net/tcp or tcp6 (pure): socket inode -> bytes not yet acknowledged,
    for established connections."""
    queues: dict[int, int] = {}
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 10 or fields[3] != ESTABLISHED:
            continue
        try:
            tx_queue = int(fields[4].split(":")[0], 16)
            queues[int(fields[9])] = tx_queue
        except ValueError:
            continue
    return queues


def _socket_fds(pid: int) -> dict[int, int]:
    """The process's socket descriptors: inode -> fd number."""
    fds: dict[int, int] = {}
    fd_dir = Path(f"/proc/{pid}/fd")
    for fd in os.listdir(fd_dir):
        try:
            target = os.readlink(fd_dir / fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            fds[int(target[8:-1])] = int(fd)
    return fds


def _established(pid: int) -> dict[int, int]:
    """inode -> unacknowledged bytes of the process's established TCP connections."""
    queues: dict[int, int] = {}
    for table in ("tcp", "tcp6"):
        queues |= parse_tx_queues(Path(f"/proc/{pid}/net/{table}").read_text())
    fds = _socket_fds(pid)
    return {inode: tx for inode, tx in queues.items() if inode in fds}


def unacked_bytes(pids: Iterable[int]) -> int | None:
    """The sum over the processes' established TCP sockets; None if unreadable."""
    try:
        return sum(sum(_established(pid).values()) for pid in pids)
    except OSError:
        return None


def limit_unsent(pid: int, limit_bytes: int) -> int:
    """Cap what may wait unsent in each of the child's established TCP sockets
    (TCP_NOTSENT_LOWAT: its writer is woken only below it; what is in flight is
    not limited, so a fast link keeps its speed). The socket is reached through
    pidfd_getfd (Linux 5.6), allowed for one's own children. Returns how many
    sockets were set; raises OSError when it cannot be done here."""
    libc = ctypes.CDLL(None, use_errno=True)
    done = 0
    pidfd = os.pidfd_open(pid)
    try:
        fds = _socket_fds(pid)
        for inode in _established(pid):
            copy = libc.syscall(SYS_PIDFD_GETFD, pidfd, fds[inode], 0)
            if copy < 0:
                errno = ctypes.get_errno()
                raise OSError(errno, os.strerror(errno))
            sock = socket.socket(fileno=copy)
            try:
                sock.setsockopt(socket.IPPROTO_TCP, TCP_NOTSENT_LOWAT, limit_bytes)
                done += 1
            finally:
                sock.close()  # our copy only: the child's socket stays open
    finally:
        os.close(pidfd)
    return done


def pipe_fill(fd: int) -> int:
    """Bytes waiting in a pipe (either end), as the kernel counts them."""
    try:
        raw = fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0")
    except OSError:
        return 0
    return int(struct.unpack("i", raw)[0])


def resize_pipe(fd: int, size: int) -> None:
    """Make a pipe hold `size` bytes (rounded up to a page); a pipe holding more
    now, or a kernel that refuses, keeps its size."""
    with contextlib.suppress(OSError):
        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, size)
