"""One relay's place in the hub's fan-out: its stdin, its own queue, and its delay.

A destination whose link is slower than the stream falls behind. As OBS does for
its own connection, the delay is bounded by dropping, never by reconnecting: when
a new keyframe group starts while the relay is more than `max_delay_ms` behind,
everything still queued before that keyframe is dropped, so the platform's
decoder only ever resumes at a keyframe and the delay stays under the bound plus
one keyframe interval. Mid-group, the rest of a group that would arrive too late
goes, but not its keyframe, nor the few pictures after it: a decoder shows a
picture only once one or more after it have arrived (ffmpeg's H.264 decoder held
one or two here; B-frames add more), so a keyframe sent alone would leave the
viewer on the last group's picture for one more group."""

from __future__ import annotations

import asyncio
import bisect
import time
from collections import deque
from collections.abc import Callable
from typing import NamedTuple

# Last resorts, for a relay that takes nothing at all or a stream with no keyframes.
QUEUE_MAX_LAG_MS = 30_000
QUEUE_MAX_BYTES = 64 * 1024 * 1024
# Tags are handed to the pipe only while less than this waits in it: what sits in
# the pipe can no longer be dropped, so it is kept small (stream time is measured
# through it, see delay_ms).
PIPE_BACKLOG_MAX_BYTES = 128 * 1024
# While the link is too slow, less: every byte past the queue waits for the link.
CONGESTED_PIPE_MAX_BYTES = 16 * 1024
# What is written is remembered this far back, to date what waits past the pipe.
HISTORY_BYTES = 16 * 1024 * 1024
DEFAULT_MAX_DELAY_MS = 2_000
# The pictures after a kept keyframe that go with it (see the top): the lab's viewers
# showed a picture once two more had arrived; OBS's x264 reorders up to two B-frames.
PICTURES_AFTER_KEYFRAME = 3
# A drop this recent still counts as congestion (the delay itself falls at once).
CONGESTION_HOLD_S = 10.0
# A link a little slower than the stream takes long to reach the bound: a delay
# whose floor (its least over half a second: keyframe bursts come and go) rose this much
# across the trend window, to at least TREND_MIN_MS, is congestion already (at 2.2
# Mbit/s for 2.55 it grows about 0.14 s each second).
TREND_WINDOW_S = 2.0
TREND_GROWTH_MS = 150
TREND_MIN_MS = 200
SHARE_WINDOW_S = 30.0


class Chunk(NamedTuple):
    timestamp: int
    data: bytes
    keep: bool  # codec headers: a stream resumed after a drop needs them
    keyframe: bool = False  # it starts a keyframe group
    frames: int = 0  # video frames in it (a keyframe's chunk: at least 1)


class RecentShare:
    """The dropped share of what was offered over the last window_s seconds."""

    def __init__(self, window_s: float = SHARE_WINDOW_S) -> None:
        self._window_s = window_s
        self._events: deque[tuple[float, int, int]] = deque()  # (when, offered, dropped)
        self._offered = 0
        self._dropped = 0

    def add(self, now: float, offered: int, dropped: int) -> None:
        self._events.append((now, offered, dropped))
        self._offered += offered
        self._dropped += dropped
        self._expire(now)

    def share(self, now: float) -> float:
        self._expire(now)
        return self._dropped / self._offered if self._offered else 0.0

    def _expire(self, now: float) -> None:
        while self._events and now - self._events[0][0] > self._window_s:
            _, offered, dropped = self._events.popleft()
            self._offered -= offered
            self._dropped -= dropped


class Subscription:
    """One relay's stdin, and its own queue of FLV bytes for what the pipe cannot
    take yet. Chunks that start a keyframe group are marked: only there may the
    stream resume after a drop."""

    def __init__(
        self,
        pipe: asyncio.StreamWriter,
        on_wake: Callable[[], None],
        max_delay_ms: int = DEFAULT_MAX_DELAY_MS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._pipe = pipe
        self._chunks: deque[Chunk] = deque()
        self._bytes = 0
        self._on_wake = on_wake
        self._clock = clock
        self.max_delay_ms = max_delay_ms
        self.started = False  # has it received a keyframe group yet?
        self.overflow: str | None = None
        self._written = 0  # bytes handed to the pipe's transport, all told
        # past the transport: the kernel's pipe, ffmpeg and its socket to the platform,
        # as the relay last read them (relay.py); ffmpeg writes about what it reads
        self.downstream_bytes = 0
        self.link_bytes_per_s = 0.0  # what the platform's link takes now, as ffmpeg sends
        self._offered: deque[tuple[int, int]] = deque()  # (timestamp, bytes offered so far)
        self._offered_total = 0
        # (end offset, timestamp) of the chunks written lately, to tell the timestamp of
        # any byte still on its way (HISTORY_BYTES back)
        self._ends: list[int] = []
        self._stamps: list[int] = []
        self._edge = 0  # the newest stream timestamp offered
        self._catching_up = True  # the cached group at the start is behind by design
        self._last_drop: float | None = None
        self._congested_until = 0.0
        self._skipping = False  # the rest of this group is dropped (subscription.py, top)
        self._group_frames = 0  # the current group's pictures queued so far, keyframe too
        self._share = RecentShare()
        self._delays: deque[tuple[float, int]] = deque()  # (when, delay_ms), the trend window
        self.dropped_bytes = 0
        self.drops = 0  # how many times whole groups were dropped

    # -- figures --------------------------------------------------------------
    @property
    def delay_ms(self) -> int:
        """How far behind the live edge the relay reads: what waits in the queue and
        in the pipe, in stream time."""
        oldest = self._oldest_unread()
        return 0 if oldest is None else max(0, self._edge - oldest)

    @property
    def held_bytes(self) -> int:
        """What mqttrelay itself still holds for the relay: its queue and write buffer."""
        return self._bytes + self._pipe_buffered()

    @property
    def backlog_bytes(self) -> int:
        return self.held_bytes + self.downstream_bytes

    def dropped_share(self) -> float:
        return self._share.share(self._clock())

    def congested(self) -> bool:
        """Dropped lately; or, after the start's catching up, behind by more than the
        bound or falling behind steadily; and for CONGESTION_HOLD_S after any of these,
        so a link that is just too slow does not flap between live and congested."""
        now = self._clock()
        delay = self.delay_ms
        behind = not self._catching_up and (delay > self.max_delay_ms or self._growing(now, delay))
        if behind or self._dropped_lately():
            self._congested_until = now + CONGESTION_HOLD_S
        return now < self._congested_until

    def _drain_growth_ms(self) -> int:
        """How much the delay still grows while what is past the queue drains, when
        the link is slower than the stream: the delay the viewer will see when the
        last of it arrives is what the bound is about."""
        waiting = self._pipe_buffered() + self.downstream_bytes
        if not self._offered or self.link_bytes_per_s <= 0:
            return 0
        first_ts, first_total = self._offered[0]
        span_ms = self._edge - first_ts
        if span_ms < 1000:
            return 0
        stream_bytes_per_ms = (self._offered_total - first_total) / span_ms
        if stream_bytes_per_ms <= 0:
            return 0
        growth = waiting * 1000 / self.link_bytes_per_s - waiting / stream_bytes_per_ms
        return max(0, int(growth))

    def _dropped_lately(self) -> bool:
        last = self._last_drop
        return last is not None and self._clock() - last < CONGESTION_HOLD_S

    def _growing(self, now: float, delay: int) -> bool:
        if delay < TREND_MIN_MS or not self._delays:
            return False
        since = self._delays[0][0]
        if now - since < TREND_WINDOW_S * 0.9:
            return False
        floor_then = min(d for t, d in self._delays if t - since <= 0.5)
        floor_now = min((d for t, d in self._delays if now - t <= 0.5), default=delay)
        return floor_now >= TREND_MIN_MS and floor_now - floor_then >= TREND_GROWTH_MS

    # -- feeding ----------------------------------------------------------------
    def put(
        self,
        timestamp: int,
        data: bytes,
        keep: bool = False,
        keyframe: bool = False,
        frames: int = 0,
    ) -> None:
        """Queue bytes; `keep`: codec headers, never dropped; `frames`: its video frames."""
        if self.overflow is not None:
            return
        if keyframe:
            frames = max(frames, 1)
            self._group_frames = frames
        else:
            self._group_frames += frames
        self._chunks.append(Chunk(timestamp, data, keep, keyframe, frames))
        self._bytes += len(data)
        self._edge = max(self._edge, timestamp)
        lag = timestamp - self._chunks[0].timestamp
        if lag > QUEUE_MAX_LAG_MS or self._bytes > QUEUE_MAX_BYTES:
            self.overflow = (
                f"the destination took nothing for {lag / 1000:.0f} s of stream "
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

    def send(
        self,
        timestamp: int,
        batch: bytes,
        keyframe: bool = False,
        keep: bool = False,
        audio: bytes = b"",
        frames: int = 1,
    ) -> None:
        """A batch of live tags (`keyframe`: it starts a keyframe group; `keep`: codec
        headers, never dropped; `audio`: the batch's audio tags alone, which go on
        while the rest of a group is dropped; `frames`: its video frames)."""
        offered = len(batch)
        dropped = 0
        # the live edge moves with every batch, skipped ones too: the delay shown
        # while a group is skipped is then the viewer's
        self._edge = max(self._edge, timestamp)
        self._offered_total += offered
        self._offered.append((timestamp, self._offered_total))
        while timestamp - self._offered[0][0] > TREND_WINDOW_S * 1000:
            self._offered.popleft()
        if keyframe:
            self._skipping = False
            dropped = self._drop_if_behind()
        elif not keep and (self._skipping or self._too_late()):
            if not self._skipping:  # the rest of this group goes, with what is queued of it
                self._skipping = True
                dropped = self._drop_queued(starting=False, keep_keyframe=True)
            # the pictures right after the group's keyframe still go, whole (see the top)
            if not (frames and self._group_frames <= PICTURES_AFTER_KEYFRAME):
                # The sound goes on, as OBS keeps it when it drops frames: a few percent
                # of the bytes, and without it the relay's ffmpeg would hold the next
                # picture back until sound came again (its muxer interleaves the two).
                if audio:
                    self.put(timestamp, audio)
                self.dropped_bytes += offered - len(audio)
                self._share.add(self._clock(), offered, dropped + offered - len(audio))
                self.flush()  # the group's keyframe, if kept, goes as soon as there is room
                return
        self.put(timestamp, batch, keep, keyframe, frames)
        self.flush()
        now = self._clock()
        self._share.add(now, offered, dropped)
        self._delays.append((now, self.delay_ms))
        while now - self._delays[0][0] > TREND_WINDOW_S:
            self._delays.popleft()

    def flush(self) -> None:
        """Hand queued chunks to the relay's stdin while its pipe has room."""
        if self.overflow is not None or self._pipe.is_closing():
            return
        # once the link is seen to fall behind (congested(), every 0.5 s), before
        # any drop: the meter of its speed trails a link that just turned slow
        slow = self._dropped_lately() or self._clock() < self._congested_until
        room = CONGESTED_PIPE_MAX_BYTES if slow else PIPE_BACKLOG_MAX_BYTES
        while self._chunks and self._pipe_buffered() <= room:
            chunk = self._chunks.popleft()
            self._bytes -= len(chunk.data)
            self._pipe.write(chunk.data)
            self._written += len(chunk.data)
            self._ends.append(self._written)
            self._stamps.append(chunk.timestamp)
        if len(self._ends) > 2048 and self._written - self._ends[1024] > HISTORY_BYTES:
            del self._ends[:1024], self._stamps[:1024]

    # -- inside -----------------------------------------------------------------
    def _drop_if_behind(self) -> int:
        """At a new keyframe: if the relay is too far behind, drop what is queued
        before it (the rest of the older groups). Returns the bytes dropped."""
        behind = self.delay_ms + self._drain_growth_ms() > self.max_delay_ms
        if not behind:
            self._catching_up = False
            return 0
        if self._catching_up and not self._chunks:
            return 0  # the cached group is in the pipe already: nothing left to drop
        starting, self._catching_up = self._catching_up, False
        return self._drop_queued(starting)

    def _too_late(self) -> bool:
        """Mid-group, has the delay the viewer will see passed the bound? Then the
        rest of this group goes (the frames sent so far stay decodable) and the
        stream resumes at the next keyframe."""
        if self._catching_up:
            return False
        return self.delay_ms + self._drain_growth_ms() > self.max_delay_ms

    def _drop_queued(self, starting: bool, keep_keyframe: bool = False) -> int:
        """Drop what is queued but codec headers; returns the bytes dropped.
        keep_keyframe: mid-group, the group's keyframe and the pictures after it
        (PICTURES_AFTER_KEYFRAME) stay if they are still queued: the viewer gets a
        still picture now rather than nothing for one more group."""
        chunks = list(self._chunks)
        group_from, pictures = len(chunks), 0  # pictures of the group kept or gone on
        if keep_keyframe:  # the group's queued chunks: from its keyframe, or all of them
            group_from = next((i for i in reversed(range(len(chunks))) if chunks[i].keyframe), 0)
            pictures = self._group_frames - sum(c.frames for c in chunks[group_from:])
        kept: list[Chunk] = []
        for i, chunk in enumerate(chunks):
            if i >= group_from and pictures <= PICTURES_AFTER_KEYFRAME:
                pictures += chunk.frames
                kept.append(chunk)
            elif chunk.keep:
                kept.append(chunk)
        if keep_keyframe:
            self._group_frames = pictures
        dropped = self._bytes - sum(len(chunk.data) for chunk in kept)
        if dropped or not starting:  # each call is one drop, even of an empty queue
            self._chunks = deque(kept)
            self._bytes -= dropped
            self.dropped_bytes += dropped
            self.drops += 1
            if not starting:  # a slow first connect is not a slow link
                self._last_drop = self._clock()
        return dropped

    def pipe_fd(self) -> int | None:
        """The pipe's file descriptor, for what the kernel holds in it."""
        pipe = self._pipe.transport.get_extra_info("pipe")
        return pipe.fileno() if pipe is not None else None

    def _pipe_buffered(self) -> int:
        transport = self._pipe.transport
        return 0 if transport.is_closing() else transport.get_write_buffer_size()

    def _oldest_unread(self) -> int | None:
        """The timestamp of the oldest byte not yet taken by the platform's link."""
        gone = self._written - self._pipe_buffered() - self.downstream_bytes
        first = bisect.bisect_right(self._ends, gone)
        if first < len(self._ends):
            return self._stamps[first]
        return self._chunks[0].timestamp if self._chunks else None
