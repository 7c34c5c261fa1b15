"""A relay's link to its platform as the kernel sees it: what waits past its
feed, in its stdin pipe and unacknowledged in its sockets (lib/socket_queue.py,
the /proc reads), the cap on what its sockets may hold unsent, and whether the
link keeps up (live or congested)."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence

from mqttrelay.config import StreamConfig
from mqttrelay.hub.subscription import Subscription
from mqttrelay.lib import socket_queue
from mqttrelay.relays.status import Status

log = logging.getLogger(__name__)

# Unsent data a relay's socket may hold: past it, nothing can be dropped any more.
UNSENT_MAX_BYTES = 16 * 1024
# The kernel's pipe into a relay holds 64 KB by default: half a second at 1 Mbit/s.
PIPE_BYTES = 32 * 1024
IDLE_PIPE_BYTES = 4 * 1024  # below this in its pipe (and nothing queued), a relay keeps up
_cap_refused = False  # the warning is given once


class LinkWatch:
    """One per relay; started() again for each run."""

    def __init__(self) -> None:
        self._unsent_capped = False  # this run's sockets have their cap

    def started(self, sub: Subscription) -> None:
        """A new run, fed through sub: its pipe gets PIPE_BYTES."""
        self._unsent_capped = False
        fd = sub.pipe_fd()
        if fd is not None:
            socket_queue.resize_pipe(fd, PIPE_BYTES)

    def update(self, sub: Subscription, pids: Iterable[int | None], bitrate_kbps: float) -> None:
        """Tell sub what waits past it and the pace the platform takes; pids: ffmpeg's
        and its tunnel's (None: none)."""
        sub.downstream_bytes = self.downstream_bytes(sub, [p for p in pids if p is not None])
        sub.link_bytes_per_s = bitrate_kbps * 125

    def downstream_bytes(self, sub: Subscription, pids: Sequence[int]) -> int:
        """What waits past the relay's feed: in its stdin pipe, and unacknowledged in
        the sockets of pids (ffmpeg, its TLS tunnel) to the platform."""
        fd = sub.pipe_fd()
        in_pipe = socket_queue.pipe_fill(fd) if fd is not None else 0
        if not self._unsent_capped:
            self._unsent_capped = _cap_unsent(pids)
        if in_pipe < IDLE_PIPE_BYTES and sub.held_bytes == 0:
            # ffmpeg keeps up with its pipe: its socket takes what it is given, and
            # /proc (every socket of the host's network) is not read for nothing
            return in_pipe
        return in_pipe + (socket_queue.unacked_bytes(pids) or 0)


def follow_congestion(stream: StreamConfig, status: Status, sub: Subscription) -> Status:
    """live <-> congested, as the link to the platform keeps up or not."""
    congested = sub.congested()
    if congested and status is Status.LIVE:
        log.warning(
            "%s: the link to the platform is too slow: %.1f s behind OBS, whole "
            "keyframe groups are dropped to stay within %.1f s (max_delay_s)",
            stream.id,
            sub.delay_ms / 1000,
            stream.max_delay_s,
        )
        return Status.CONGESTED
    if not congested and status is Status.CONGESTED:
        log.info(
            "%s: the link keeps up again (%.0f %% dropped over the last 30 s)",
            stream.id,
            sub.dropped_share() * 100,
        )
        return Status.LIVE
    return status


def _cap_unsent(pids: Sequence[int]) -> bool:
    """Once per run, when its connection is up: at most UNSENT_MAX_BYTES may wait
    unsent in the sockets towards the platform. True once done (or impossible)."""
    global _cap_refused
    try:
        return all(socket_queue.limit_unsent(pid, UNSENT_MAX_BYTES) for pid in pids)
    except OSError as exc:
        if not _cap_refused:
            _cap_refused = True
            log.warning(
                "cannot cap the relays' unsent socket data (%s): on a slow link the "
                "delay may exceed max_delay_s by what the kernel buffers",
                exc.strerror or exc,
            )
        return True
