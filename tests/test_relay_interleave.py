"""A relay's own ffmpeg (the argv mqttrelay runs) while a slow link's relay skips the
rest of a keyframe group: the sound it is still given goes out at once, so the
platform is never left with nothing for a whole group (issue 25). Real ffmpeg, fed
in real time; its output is read from a pipe of its own."""

from __future__ import annotations

import asyncio
import itertools
import os
import subprocess
import time
from pathlib import Path

import pytest

from mqttrelay.ffmpeg import build_relay_argv
from mqttrelay.lib.flv import FlvReader, FlvTag, encode_header

from .support import require_tool

pytestmark = pytest.mark.integration
SKIPPED_GROUP_MS = (2000, 4000)  # the picture of this group is skipped after its keyframe


def clip(ffmpeg: str, path: Path) -> list[FlvTag]:
    """Six seconds of 30 fps picture (a keyframe every 2 s) and sound, as FLV tags."""
    subprocess.run(
        [
            ffmpeg, "-hide_banner", "-loglevel", "error", "-y",
            "-f", "lavfi", "-i", "testsrc=size=320x180:rate=30",
            "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", "6",
            "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency",
            "-g", "60", "-keyint_min", "60", "-sc_threshold", "0",
            "-c:a", "aac", "-f", "flv", str(path),
        ],
        check=True, timeout=60,
    )  # fmt: skip
    return FlvReader().feed(path.read_bytes())


async def test_the_sound_leaves_the_relay_while_its_picture_pauses(tmp_path: Path) -> None:
    ffmpeg = require_tool("ffmpeg")
    tags = clip(ffmpeg, tmp_path / "clip.flv")
    out_read, out_write = os.pipe()
    argv = build_relay_argv(ffmpeg, f"pipe:{out_write}", "cached", "rtmp://127.0.0.1:1/x/y")
    proc = await asyncio.create_subprocess_exec(
        *argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL, pass_fds=(out_write,),
    )  # fmt: skip
    os.close(out_write)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(out_read, "rb", buffering=0)
    )
    started = time.monotonic()
    left: list[tuple[float, FlvTag]] = []  # when each tag came out of the relay

    async def read() -> None:
        flv = FlvReader()
        while chunk := await reader.read(65536):
            now = time.monotonic() - started
            left.extend((now, tag) for tag in flv.feed(chunk))

    reading = asyncio.create_task(read())
    assert proc.stdin is not None
    proc.stdin.write(encode_header(audio=True, video=True))
    skipping = False
    for tag in tags:
        if not (tag.is_metadata or tag.is_sequence_header):
            await asyncio.sleep(max(0.0, tag.timestamp / 1000 - (time.monotonic() - started)))
        if tag.is_video and tag.is_keyframe:
            skipping = SKIPPED_GROUP_MS[0] <= tag.timestamp < SKIPPED_GROUP_MS[1]
        elif skipping and tag.is_video:
            continue  # the rest of this group's picture is dropped; its sound is not
        proc.stdin.write(tag.encode())
        await proc.stdin.drain()
    await asyncio.sleep(1.0)
    proc.stdin.close()
    await asyncio.wait_for(proc.wait(), 20)
    await asyncio.wait_for(reading, 20)

    paused = [t for t, tag in left if 2.2 <= t <= 3.8]
    assert paused, "nothing came out of the relay while its picture paused"
    sound = [t for t, tag in left if tag.is_audio and 2.2 <= t <= 3.8]
    assert len(sound) > 30, f"{len(sound)} sound tags left the relay in 1.6 s"
    gaps = [b - a for a, b in itertools.pairwise(paused)]
    assert max(gaps) < 0.5, f"the relay held everything for {max(gaps):.2f} s"
    keyframe_out = [t for t, tag in left if tag.is_video and tag.is_keyframe and 1.9 < t < 2.6]
    assert keyframe_out and keyframe_out[0] < 2.4, keyframe_out  # the kept keyframe went at once
