"""One relay's place in the hub's fan-out: its stdin and its own bounded queue."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable

QUEUE_MAX_LAG_MS = 20_000
QUEUE_MAX_BYTES = 64 * 1024 * 1024
# Above this much unread in a relay's pipe, tags wait in its queue, where the
# stream-time and size bounds apply.
PIPE_BACKLOG_MAX_BYTES = 1024 * 1024


class Subscription:
    """One relay's stdin, and its own queue of FLV bytes for what the pipe cannot
    take yet, bounded by stream time and by size."""

    def __init__(self, pipe: asyncio.StreamWriter, on_wake: Callable[[], None]) -> None:
        self._pipe = pipe
        self._chunks: deque[tuple[int, bytes]] = deque()
        self._bytes = 0
        self._on_wake = on_wake
        self.started = False  # has it received a keyframe group yet?
        self.overflow: str | None = None

    def put(self, timestamp: int, data: bytes) -> None:
        if self.overflow is not None:
            return
        self._chunks.append((timestamp, data))
        self._bytes += len(data)
        lag = timestamp - self._chunks[0][0]
        if lag > QUEUE_MAX_LAG_MS or self._bytes > QUEUE_MAX_BYTES:
            self.overflow = (
                f"destination fell behind by {lag / 1000:.0f} s of stream "
                f"({self._bytes // 1024} KiB queued)"
            )
            self._chunks.clear()
            self._bytes = 0
            self._on_wake()

    def fail(self, reason: str) -> None:
        """Its feed broke: the relay restarts, saying why."""
        self.overflow = reason
        self._chunks.clear()
        self._bytes = 0
        self._on_wake()

    def send(self, timestamp: int, batch: bytes) -> None:
        """A batch of live tags: straight into the pipe unless something waits before it."""
        if not self._chunks and self._pipe_ready():
            self._pipe.write(batch)
        else:
            self.put(timestamp, batch)
            self.flush()

    def flush(self) -> None:
        """Write everything queued to the relay's stdin, unless its pipe is backed up."""
        if not self._chunks or self.overflow is not None or not self._pipe_ready():
            return
        self._pipe.write(b"".join(chunk for _, chunk in self._chunks))
        self._chunks.clear()
        self._bytes = 0

    def _pipe_ready(self) -> bool:
        if self._pipe.is_closing():
            return False
        return self._pipe.transport.get_write_buffer_size() <= PIPE_BACKLOG_MAX_BYTES
