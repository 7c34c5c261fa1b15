"""A relay's subscription (hub/subscription.py) as a state machine: a fake pipe
that reads as fast or as slowly as a test says, and a fake clock. The real
pipe and ffmpeg are in tests/test_shaped_link.py and the integration tests."""

from __future__ import annotations

import asyncio
from collections import deque
from typing import cast

import pytest

from mqttrelay.hub.subscription import (
    CONGESTION_HOLD_S,
    PICTURES_AFTER_KEYFRAME,
    PIPE_BACKLOG_MAX_BYTES,
    RecentShare,
    Subscription,
)

from .fakes import FakeClock as FakeClock
from .fakes import FakePipe as FakePipe
from .fakes import FakeTransport as FakeTransport


def make(max_delay_ms: int = 2000) -> tuple[Subscription, FakePipe, FakeClock]:
    pipe, clock = FakePipe(), FakeClock()
    sub = Subscription(cast(asyncio.StreamWriter, pipe), lambda: None, max_delay_ms, clock)
    sub.started = True
    return sub, pipe, clock


def feed(
    sub: Subscription,
    clock: FakeClock,
    pipe: FakePipe,
    seconds: float,
    start_ms: int,
    gop_ms: int = 2000,
    read_bytes_per_s: float | None = None,
    batch_bytes: int = 10_000,
) -> int:
    """40 ms batches for `seconds` from stream time start_ms, a keyframe every gop_ms;
    the pipe is read at read_bytes_per_s (None: at once). Returns the next timestamp."""
    timestamp = start_ms
    for _ in range(int(seconds / 0.04)):
        clock.now += 0.04
        sub.send(timestamp, b"x" * batch_bytes, keyframe=timestamp % gop_ms == 0)
        if read_bytes_per_s is None:
            pipe.read()
        else:
            pipe.read(int(read_bytes_per_s * 0.04))
        sub.flush()
        timestamp += 40
    return timestamp


def test_a_fast_reader_has_no_delay_and_drops_nothing() -> None:
    sub, pipe, clock = make()
    feed(sub, clock, pipe, 20, 0)
    assert sub.delay_ms == 0 and sub.dropped_bytes == 0
    assert not sub.congested() and sub.dropped_share() == 0.0
    assert sum(map(len, pipe.received)) == 20 / 0.04 * 10_000


def test_a_slow_reader_stays_within_the_bound_plus_a_group_by_dropping_whole_groups() -> None:
    # 250 kB/s offered, 100 kB/s read: a 1 Mbit/s link for a 2 Mbit/s stream
    sub, pipe, clock = make(max_delay_ms=2000)
    worst = 0
    timestamp = 0
    for _ in range(60):
        timestamp = feed(sub, clock, pipe, 1, timestamp, read_bytes_per_s=100_000)
        worst = max(worst, sub.delay_ms)
    assert worst <= 2000 + 2000 + 200, worst
    assert sub.drops > 5 and sub.congested()
    assert 0.4 < sub.dropped_share() < 0.8
    # what reached the pipe resumes at keyframes only: every chunk after a drop
    # is a batch that started a group (timestamps of batches are multiples of 40)
    assert sub.overflow is None


def test_what_is_kept_for_the_pipe_is_bounded_in_bytes() -> None:
    sub, pipe, clock = make()
    feed(sub, clock, pipe, 5, 0, read_bytes_per_s=0)
    assert pipe.transport.buffered <= PIPE_BACKLOG_MAX_BYTES + 10_000
    assert sub.backlog_bytes >= pipe.transport.buffered
    assert sub.delay_ms > 4000  # nothing was read: the whole feed waits


def test_congestion_ends_after_the_link_keeps_up_again() -> None:
    sub, pipe, clock = make()
    timestamp = feed(sub, clock, pipe, 20, 0, read_bytes_per_s=100_000)
    assert sub.congested()
    timestamp = feed(sub, clock, pipe, 3, timestamp)  # the shaping is gone
    assert sub.delay_ms < 1000
    feed(sub, clock, pipe, CONGESTION_HOLD_S + 1, timestamp)
    assert not sub.congested() and sub.delay_ms == 0


def test_a_cached_group_at_the_start_is_no_congestion() -> None:
    sub, pipe, clock = make(max_delay_ms=2000)
    sub.started = False
    for ts in range(0, 8000, 40):  # an 8 s group from the cache (OBS's default GOP)
        sub.put(ts, b"y" * 10_000)
    sub.started = True
    sub.flush()
    assert sub.delay_ms == 7960
    assert not sub.congested()  # behind by design; a fast link catches up
    feed(sub, clock, pipe, 8, 8040, gop_ms=8000)  # the next keyframe at 16 s
    assert sub.delay_ms == 0 and sub.dropped_bytes == 0 and not sub.congested()


def test_a_keyframe_before_the_cached_group_is_read_skips_it_without_congestion() -> None:
    sub, pipe, clock = make(max_delay_ms=2000)
    sub.started = False
    for ts in range(0, 8000, 40):
        sub.put(ts, b"y" * 10_000)
    sub.started = True
    sub.flush()
    # OBS's next keyframe comes while the relay still connects to the platform
    feed(sub, clock, pipe, 2, 8000, gop_ms=8000)
    assert sub.drops == 1 and sub.delay_ms == 0
    assert not sub.congested()  # a slow first connect is not a slow link


def test_codec_headers_are_never_dropped() -> None:
    sub, pipe, clock = make(max_delay_ms=500)
    timestamp = feed(sub, clock, pipe, 3, 0, read_bytes_per_s=0)
    sub.send(timestamp, b"HEADERS", keep=True)
    sub.send(timestamp + 40, b"x" * 10, keyframe=True)  # far behind: a drop
    assert sub.drops >= 1
    pipe.read()
    for _ in range(100):
        sub.flush()
        pipe.read()
    assert b"HEADERS" in pipe.received


def test_recent_share_forgets_old_drops() -> None:
    share = RecentShare(window_s=30)
    share.add(0.0, 100, 50)
    assert share.share(10.0) == 0.5
    share.add(20.0, 100, 0)
    assert share.share(25.0) == 0.25
    assert share.share(40.0) == 0.0  # the drop left the window; the rest was clean


def test_a_link_a_little_too_slow_is_congested_before_the_bound() -> None:
    # 250 kB/s offered, 220 kB/s read: the delay grows about 0.12 s each second
    sub, pipe, clock = make(max_delay_ms=2000)
    timestamp = feed(sub, clock, pipe, 2, 0, read_bytes_per_s=None)  # healthy first
    elapsed = 0.0
    while not sub.congested() and elapsed < 30:
        timestamp = feed(sub, clock, pipe, 0.5, timestamp, read_bytes_per_s=220_000)
        elapsed += 0.5
    assert sub.congested() and sub.delay_ms < 2000, (elapsed, sub.delay_ms)
    assert elapsed <= 5, elapsed


def test_a_keyframe_burst_on_a_healthy_link_is_no_trend() -> None:
    sub, pipe, clock = make(max_delay_ms=2000)
    timestamp = 0
    for _ in range(30):  # a big keyframe batch each 2 s that takes 0.3 s to drain
        timestamp = feed(sub, clock, pipe, 0.3, timestamp, read_bytes_per_s=200_000)
        timestamp = feed(sub, clock, pipe, 1.7, timestamp)
        assert not sub.congested(), sub.delay_ms


def test_what_waits_past_the_pipe_counts_in_the_delay() -> None:
    sub, pipe, clock = make(max_delay_ms=2000)
    timestamp = feed(sub, clock, pipe, 3, 0)  # 250 kB/s, all read at once
    assert sub.delay_ms == 0
    sub.downstream_bytes = 250_000  # a second of stream still in ffmpeg's socket
    assert 900 <= sub.delay_ms <= 1100
    assert sub.backlog_bytes == 250_000
    feed(sub, clock, pipe, 0.04, timestamp)
    assert 900 <= sub.delay_ms <= 1200


def test_a_group_cut_short_keeps_its_keyframe_and_the_pictures_after_it() -> None:
    """A decoder shows a picture only once one or more after it have arrived (the
    lab's viewers held two): a keyframe sent on alone would leave the viewer on the
    last group's picture for one more group."""
    after = PICTURES_AFTER_KEYFRAME
    sub, pipe, clock = make(max_delay_ms=2000)
    feed(sub, clock, pipe, 4, 0)  # live, nothing behind
    # the keyframe leaves at once, then the link is far behind: the next pictures
    # still go, whole, and after them only the sound
    sub.send(4000, b"K" * 30_000, keyframe=True, frames=1)
    sub.downstream_bytes = 2_000_000
    for n in range(1, after + 3):
        pipe.read()
        sub.send(4000 + 40 * n, b"P%d" % n + b"a", audio=b"a", frames=1)
    pictures = [b"P%da" % n for n in range(1, after + 1)]
    assert pipe.received[-after - 3 :] == [b"K" * 30_000, *pictures, b"a", b"a"]

    # the same when they are still queued as the group is cut short: they stay
    sub, pipe, clock = make(max_delay_ms=2000)
    feed(sub, clock, pipe, 4, 0)
    pipe.transport.buffered += 1_000_000  # the pipe is full: what comes now is queued
    sub.max_delay_ms = 60_000  # not behind yet
    sub.send(4000, b"K" * 30_000, keyframe=True, frames=1)
    for n in range(1, after + 2):
        sub.send(4000 + 40 * n, b"P%d" % n, frames=1)
    sub.max_delay_ms = 2000
    sub.send(4000 + 40 * (after + 2), b"late" + b"d", audio=b"d", frames=1)
    for _ in range(after + 2):
        pipe.read()
        sub.flush()
    assert pipe.received[-after - 2 :] == [
        b"K" * 30_000,
        *[b"P%d" % n for n in range(1, after + 1)],
        b"d",
    ]
    assert sub.dropped_bytes == len(b"P%d" % (after + 1)) + len(b"late")


class Viewer:
    """The platform's viewer behind a link of bytes_per_s: it reads the pipe in
    order and decodes a batch once all of it has arrived, but shows a picture only
    once `held` more have arrived (ffmpeg reading a platform's stream held one or
    two). Every batch starts with its stream timestamp (4 bytes), so what is shown
    is known."""

    def __init__(self, pipe: FakePipe, bytes_per_s: float, held: int = 1) -> None:
        self._pipe = pipe
        self.taken_bytes = 0  # read since the relay last looked
        self.bytes_per_s = bytes_per_s
        self._taken = 0  # bytes of pipe.received[self._next] already read
        self._next = 0
        self.shown: int | None = None  # the stream timestamp on screen
        self._arrived: deque[int] = deque()  # pictures decoded, not shown yet
        self._held = held

    def read(self, seconds: float) -> None:
        budget = int(self.bytes_per_s * seconds)
        received = self._pipe.received
        while budget > 0 and self._next < len(received):
            batch = received[self._next]
            step = min(budget, len(batch) - self._taken)
            self._taken += step
            self.taken_bytes += step
            budget -= step
            self._pipe.transport.buffered -= step
            if self._taken == len(batch):
                self._arrived.append(int.from_bytes(batch[:4], "big"))
                if len(self._arrived) > self._held:
                    self.shown = self._arrived.popleft()
                self._next, self._taken = self._next + 1, 0


@pytest.mark.parametrize("held", range(1, PICTURES_AFTER_KEYFRAME + 1))
def test_the_viewers_picture_stays_within_the_bound_plus_a_group(held: int) -> None:
    """The picture the viewer sees is never older than the bound plus one keyframe
    interval, from the moment the link turns slow, whether its decoder holds one
    picture or a few: a group whose tail must go keeps its keyframe and the pictures
    after it (a still picture) rather than losing the whole group, and once the link
    is seen to fall behind, little waits past the queue, where nothing can be
    dropped any more."""
    for link_bytes_per_s in (100_000, 150_000, 200_000):
        sub, pipe, clock = make(max_delay_ms=2000)
        viewer = Viewer(pipe, 10_000_000, held)  # a fast link first
        worst = 0
        timestamp = 0
        taken = [0]
        for step in range(int(120 / 0.04)):  # 2 minutes; 250 kB/s with 60 kB keyframes
            clock.now += 0.04
            if step == int(10 / 0.04):
                viewer.bytes_per_s = link_bytes_per_s  # the link turns slow
            keyframe = timestamp % 2000 == 0
            size = 60_000 if keyframe else 8_300
            sub.send(timestamp, timestamp.to_bytes(4, "big") + b"x" * size, keyframe=keyframe)
            viewer.read(0.04)  # nothing else flushes: the hub's next batch does
            if step % int(0.5 / 0.04) == 0:  # the relay's look at its link (link_watch.py)
                # ffmpeg's rate over the last 3 s (ffmpeg/output.py's BitrateMeter): it
                # trails a link that just turned slow
                taken.append(taken[-1] + viewer.taken_bytes)
                viewer.taken_bytes = 0
                sub.link_bytes_per_s = (taken[-1] - taken[-7]) / 3 if len(taken) > 6 else 0
                sub.congested()
            if viewer.shown is not None and step >= int(10 / 0.04):
                worst = max(worst, timestamp - viewer.shown)
            timestamp += 40
        assert sub.drops > 5, link_bytes_per_s
        # the bound, then a keyframe's way over the link (it was 3.1-3.6 s when the
        # whole group went, 3.2 s when its keyframe went alone: a freeze of two groups)
        limit = 2000 + 60_000 * 1000 / link_bytes_per_s + 200 + 40 * held
        assert worst <= limit, (link_bytes_per_s, worst)
