"""Issue 25: when a slow link's relay skips the rest of a group, the viewer at the
platform must see the group's keyframe at once. A decoder shows a picture once the
next one has arrived (ffmpeg reading a platform's stream does), so the keyframe
goes on with the picture after it (hub/subscription.py). Real parts: the hub's
fan-out feeding a real relay ffmpeg, an nginx-rtmp platform, and a viewer reading
the frame counter drawn into the picture (tests/frame_counter.py)."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import time
from pathlib import Path

import pytest

from mqttrelay.ffmpeg.argv import build_relay_argv
from mqttrelay.hub.fanout import FanOut
from mqttrelay.lib.flv import FlvReader, FlvTag

from .frame_counter import CounterReader, Picture, counter_argv
from .support import require_tool, start_nginx

pytestmark = pytest.mark.integration

SECONDS = 11
CUT_SHORT_MS = (4000, 8000)  # the groups whose rest is skipped (a keyframe every 2 s)


def counter_tags(ffmpeg: str, folder: Path) -> list[FlvTag]:
    path = folder / "counter.flv"
    subprocess.run(
        counter_argv(ffmpeg, str(path), Picture(), realtime=False, seconds=SECONDS),
        check=True,
        timeout=120,
    )
    return FlvReader().feed(path.read_bytes())


async def test_a_group_cut_short_shows_its_keyframe_at_once(tmp_path: Path) -> None:
    ffmpeg = require_tool("ffmpeg")
    tags = counter_tags(ffmpeg, tmp_path)
    media = [t for t in tags if not (t.is_metadata or t.is_sequence_header)]
    frame_of = {id(t): n for n, t in enumerate(t for t in media if t.is_video)}
    platform = start_nginx(tmp_path / "platform", "dest", fast_start=False)
    proc = await asyncio.create_subprocess_exec(
        *build_relay_argv(ffmpeg, platform.url("key"), "cached", ""),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    assert proc.stdin is not None
    viewer = CounterReader(platform.url("key"), ffmpeg)
    fan = FanOut()
    try:
        for tag in tags:
            if tag.is_metadata or tag.is_sequence_header:
                fan.put(tag)
        sub = fan.subscribe(proc.stdin, lambda: None, max_delay_ms=2000)
        viewer.start()
        handed: dict[int, float] = {}  # the cut-short groups' keyframes: n -> when
        start = time.monotonic()
        for tag in media:
            wait = start + tag.timestamp / 1000 - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            fan.put(tag)
            if tag.is_keyframe:
                cut = any(abs(tag.timestamp - ms) < 100 for ms in CUT_SHORT_MS)
                # far behind, past the pipe: every batch of this group is too late
                sub.downstream_bytes = 50_000_000 if cut else 0
                if cut:
                    handed[frame_of[id(tag)]] = time.monotonic()
            if tag.is_video:
                fan.flush()  # a batch per picture, as the hub's 40 ms batches mostly are
        await asyncio.sleep(1.5)
        assert sub.dropped_bytes > 0 and sub.overflow is None
        assert len(handed) == len(CUT_SHORT_MS)
        late = {n: viewer.seen.get(n, float("inf")) - at for n, at in handed.items()}
        # 2.0 s, the next group's arrival, when the keyframe went alone; 0.05 s here
        assert all(s < 1.0 for s in late.values()), late
        # and the rest of the group was skipped indeed: the viewer never saw it
        for n in handed:
            assert n + 1 in viewer.seen and not any(n + k in viewer.seen for k in range(5, 50))
    finally:
        await viewer.stop()
        fan.close()
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
        platform.stop()
