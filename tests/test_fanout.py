"""The fan-out (hub/fanout.py) as a state machine, with fake pipes: what a relay
attached now is handed, where batches start, and that a slow relay only ever
costs itself. The real pipes and ffmpeg are in the integration tests."""

from __future__ import annotations

import asyncio
import itertools
from typing import cast

from mqttrelay.hub.fanout import FanOut
from mqttrelay.lib.flv import FlvReader, FlvTag, TagType

from .fakes import FakePipe

AVC_SEQ = FlvTag(TagType.VIDEO, 0, b"\x17\x00\x00\x00\x00" + b"S" * 20)
AAC_SEQ = FlvTag(TagType.AUDIO, 0, b"\xaf\x00\x12\x10")


def keyframe(ts: int, size: int = 2000) -> FlvTag:
    return FlvTag(TagType.VIDEO, ts, b"\x17\x01\x00\x00\x00" + b"K" * size)


def inter(ts: int, size: int = 500) -> FlvTag:
    return FlvTag(TagType.VIDEO, ts, b"\x27\x01\x00\x00\x00" + b"P" * size)


def audio(ts: int) -> FlvTag:
    return FlvTag(TagType.AUDIO, ts, b"\xaf\x01" + b"A" * 100)


def tags_of(pipe: FakePipe) -> list[FlvTag]:
    return FlvReader().feed(b"".join(pipe.received))


def attach(fan: FanOut, max_delay_ms: int = 2000) -> FakePipe:
    pipe = FakePipe()
    fan.subscribe(cast(asyncio.StreamWriter, pipe), lambda: None, max_delay_ms)
    return pipe


def play(fan: FanOut, start_ms: int, seconds: float, gop_ms: int = 1000, size: int = 500) -> int:
    """25 fps video (frames of `size` bytes) and audio; returns the next timestamp."""
    ts = start_ms
    for _ in range(int(seconds * 25)):
        fan.put(keyframe(ts, size * 4) if ts % gop_ms == 0 else inter(ts, size))
        fan.put(audio(ts))
        ts += 40
    fan.flush()
    return ts


async def test_a_relay_attached_mid_group_gets_headers_then_the_cached_group() -> None:
    fan = FanOut()
    fan.put(AVC_SEQ)
    fan.put(AAC_SEQ)
    play(fan, 0, 1.6)  # a keyframe at 0 and 1000
    pipe = attach(fan)
    got = tags_of(pipe)
    assert got[0].is_sequence_header and got[1].is_sequence_header
    assert got[2].is_keyframe and got[2].timestamp == 1000
    assert all(t.timestamp >= 1000 for t in got)


async def test_a_relay_attached_without_a_cache_starts_at_the_next_keyframe() -> None:
    fan = FanOut()
    fan.put(AVC_SEQ)
    pipe = attach(fan)  # nothing cached yet
    fan.put(inter(40))
    fan.put(keyframe(1000))
    fan.put(inter(1040))
    fan.flush()
    got = tags_of(pipe)
    assert [t.is_sequence_header for t in got[:1]] == [True]
    assert got[1].is_keyframe and got[1].timestamp == 1000
    assert 40 not in [t.timestamp for t in got]


async def test_a_slow_relay_drops_whole_groups_and_the_fast_one_gets_everything() -> None:
    fan = FanOut()
    fan.put(AVC_SEQ)
    fan.put(AAC_SEQ)
    fast, slow = attach(fan), attach(fan, max_delay_ms=1000)
    ts = 0
    for _ in range(20):  # 20 s; the slow relay's reader takes a third of the stream
        ts = play(fan, ts, 1)
        fast.read()
        slow.read(6_000)  # about a third of what the stream offers each second
        for sub in fan.subs:
            sub.flush()
    fast_tags = tags_of(fast)
    assert len([t for t in fast_tags if t.is_video and not t.is_sequence_header]) == 20 * 25
    slow_sub = fan.subs[1]
    assert slow_sub.drops >= 3 and slow_sub.congested()
    # what the slow relay got resumes at keyframes: after each gap in its video,
    # the first frame is a keyframe
    video = [t for t in tags_of(slow) if t.is_video and not t.is_sequence_header]
    for before, after in itertools.pairwise(video):
        if after.timestamp - before.timestamp > 40:
            assert after.is_keyframe, (before.timestamp, after.timestamp)
    assert not fan.subs[0].congested() and fan.subs[0].dropped_bytes == 0


async def test_a_new_sessions_codec_headers_reach_a_relay_that_is_dropping() -> None:
    fan = FanOut()
    fan.put(AVC_SEQ)
    slow = attach(fan, max_delay_ms=500)
    ts = play(fan, 0, 3, size=5000)  # nobody reads: it falls behind
    new_seq = FlvTag(TagType.VIDEO, ts, b"\x17\x00\x00\x00\x00" + b"N" * 20)
    fan.put(new_seq)
    play(fan, ts, 2, size=5000)
    for _ in range(200):
        slow.read()
        fan.subs[0].flush()
    assert fan.subs[0].drops >= 1
    assert any(t.data == new_seq.data for t in tags_of(slow))


async def test_the_sound_goes_on_while_the_rest_of_a_group_is_dropped() -> None:
    """As OBS keeps audio when it drops frames: where a slow relay's video skips the
    rest of a group, its audio still arrives (and the relay's ffmpeg, which
    interleaves the two, does not hold the next keyframe back for want of sound)."""
    fan = FanOut()
    fan.put(AVC_SEQ)
    fan.put(AAC_SEQ)
    pipe = attach(fan, max_delay_ms=1000)
    ts = 0
    for _ in range(20 * 25):  # 20 s at 25 fps, a batch per frame as the hub sends them
        fan.put(keyframe(ts, 8000) if ts % 2000 == 0 else inter(ts, 2000))
        fan.put(audio(ts))
        fan.flush()
        pipe.read(1_600)  # about 40 kB/s of a 55 kB/s stream
        fan.subs[0].flush()
        ts += 40
    got = tags_of(pipe)
    video = [t.timestamp for t in got if t.is_video and not t.is_sequence_header]
    sound = [t.timestamp for t in got if t.is_audio and not t.is_sequence_header]
    gaps = [(a, b) for a, b in itertools.pairwise(video) if b - a > 40]
    assert len(gaps) >= 3 and fan.subs[0].dropped_bytes > 0
    heard_in_gaps = [s for s in sound if any(a < s < b for a, b in gaps)]
    assert len(heard_in_gaps) > len(gaps), (gaps, len(heard_in_gaps))
    # the picture before a gap is never a keyframe alone: a decoder would show it
    # only once the next group came (subscription.py, top)
    assert not [a for a, _ in gaps if a % 2000 == 0], gaps
