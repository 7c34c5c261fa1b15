"""Output profiles as plain values: config checks, ffmpeg argv, progress, encoders."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from mqttrelay.config import ConfigError, parse_config
from mqttrelay.config.profiles import ProfileConfig
from mqttrelay.control.reload import plan_reload
from mqttrelay.ffmpeg import (
    ProgressParser,
    build_profile_argv,
    encoders_listed,
    picture_filter,
)
from mqttrelay.ffmpeg.check import encoder_problems

BASE = """
ingest: {url: "rtmp://127.0.0.1:1935/live/stream"}
profiles:
  vertical: {width: 720, height: 1280, fit: crop, video_bitrate_kbps: 3000}
streams:
  - {id: tiktok, url: "rtmp://127.0.0.1/app", profile: vertical}
"""


def test_a_profile_with_its_defaults() -> None:
    config = parse_config(BASE)
    profile = config.profiles["vertical"]
    assert (profile.encoder, profile.keyframe_s, profile.audio_bitrate_kbps) == ("libx264", 2, None)
    assert config.streams[0].profile == "vertical"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (BASE.replace("profile: vertical", "profile: square"),
         "unknown profile 'square' (profiles: vertical)"),
        (BASE.replace("width: 720", "width: 721"), "721 is odd"),
        (BASE.replace("fit: crop", "fit: crop, encoder: x265"), "profiles.vertical.encoder"),
        (BASE.replace("fit: crop", "fit: stretch"), "profiles.vertical.fit"),
        (BASE.replace("ingest: {", "ingest: {mode: direct, "), "profiles need ingest.mode: cached"),
    ],
)  # fmt: skip
def test_profile_mistakes_are_one_line_each(text: str, problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(text)
    assert len(caught.value.problems) == 1
    assert problem in caught.value.problems[0]


def test_check_names_the_profile_problems_one_line_each(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(BASE.replace("width: 720", "width: 721").replace("fit: crop", "fit: oval"))
    done = subprocess.run(
        [sys.executable, "-m", "mqttrelay", "check", "--config", str(config)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode != 0
    lines = [line for line in done.stderr.splitlines() + done.stdout.splitlines() if line.strip()]
    assert any("profiles.vertical.width" in line and "odd" in line for line in lines), lines
    assert any("profiles.vertical.fit" in line for line in lines), lines
    assert "Traceback" not in done.stderr


def test_the_picture_filters() -> None:
    crop = ProfileConfig(width=90, height=160, fit="crop", video_bitrate_kbps=200)
    assert picture_filter(crop).startswith(
        "scale=90:160:force_original_aspect_ratio=increase,crop=90:160"
    )
    pad = ProfileConfig(width=160, height=160, fit="pad", video_bitrate_kbps=200, fps=30)
    assert ",pad=160:160:(ow-iw)/2:(oh-ih)/2," in picture_filter(pad)
    assert "fps=30" in picture_filter(pad)
    scale = ProfileConfig(width=640, height=360, video_bitrate_kbps=800, encoder="h264_vaapi")
    assert picture_filter(scale).endswith("format=nv12,hwupload")


def test_the_encoder_argv() -> None:
    profile = ProfileConfig(width=640, height=360, video_bitrate_kbps=800, audio_bitrate_kbps=96)
    argv = build_profile_argv("ffmpeg", profile)
    joined = " ".join(argv)
    assert "-f flv -i pipe:0" in joined and argv[-1] == "pipe:1"
    assert "-c:v libx264 -preset veryfast -tune zerolatency" in joined
    assert "-b:v 800k -maxrate 800k -bufsize 1600k" in joined
    assert "-force_key_frames expr:gte(t,n_forced*2)" in joined
    assert "-c:a aac -b:a 96k" in joined
    copy_audio = build_profile_argv(
        "ffmpeg", profile.model_copy(update={"audio_bitrate_kbps": None})
    )
    assert "-c:a copy" in " ".join(copy_audio)
    nvenc = build_profile_argv("ffmpeg", profile.model_copy(update={"encoder": "h264_nvenc"}))
    assert "-preset p4" in " ".join(nvenc) and "zerolatency" not in " ".join(nvenc)


def test_progress_and_encoder_listing() -> None:
    # the encoder's stderr: -progress fields among ffmpeg's messages
    parser = ProgressParser()
    block = ["fps=25.0", "drop_frames=3", "speed=0.98x", "progress=continue"]
    progress = [parser.feed_line(line) for line in block][-1]
    assert progress is not None
    assert (progress.speed, progress.dropped_frames, progress.fps) == (0.98, 3, 25.0)
    unknown = [parser.feed_line(line) for line in ("speed=N/A", "progress=continue")][-1]
    assert unknown is not None and unknown.speed is None and unknown.dropped_frames == 0
    listing = " V....D libx264              libx264 H.264\n V....D h264_vaapi   VAAPI\n ------\n"
    assert encoders_listed("Encoders:\n V..... = Video\n" + listing) == {"libx264", "h264_vaapi"}


def test_a_profile_change_restarts_that_relay_only() -> None:
    old = parse_config(BASE)
    new = parse_config(BASE.replace("profile: vertical", "profile: null"))
    plan = plan_reload(old, new)
    assert [s.id for s in plan.changed] == ["tiktok"]
    resized = parse_config(BASE.replace("width: 720", "width: 1080"))
    assert plan_reload(old, resized).restart_required == ["profiles"]


def lean_ffmpeg(folder: Path) -> Path:
    """An ffmpeg built without NVENC (as many static builds are): what -encoders says."""
    path = folder / "ffmpeg"
    path.write_text("#!/bin/sh\necho ' V....D libx264   libx264 H.264'\n")
    path.chmod(0o755)
    return path


NVENC = {"gpu": ProfileConfig(width=640, height=360, video_bitrate_kbps=800, encoder="h264_nvenc")}
X264 = {"cpu": ProfileConfig(width=640, height=360, video_bitrate_kbps=800)}


async def test_encoders_are_checked_with_ffmpeg(tmp_path: Path) -> None:
    assert await encoder_problems("ffmpeg", {**X264, **NVENC}) == []  # Debian's has both
    problems = await encoder_problems(str(lean_ffmpeg(tmp_path)), {**X264, **NVENC})
    assert len(problems) == 1
    assert problems[0].startswith("profiles.gpu.encoder: h264_nvenc is not in this ffmpeg")


def test_a_missing_encoder_stops_the_start_with_one_line(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(
        BASE.replace("fit: crop", "fit: crop, encoder: h264_nvenc")
        + f"ffmpeg: {{path: {lean_ffmpeg(tmp_path)}}}\nmqtt: {{enabled: false}}\n"
    )
    done = subprocess.run(
        [sys.executable, "-m", "mqttrelay", "run", "--config", str(config)],
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert done.returncode == 2
    assert "profiles.vertical.encoder: h264_nvenc is not in this ffmpeg" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_new_profile_is_no_restart_but_a_changed_one_is() -> None:
    old = parse_config(BASE)
    added = BASE.replace(
        "profiles:\n", "profiles:\n  small: {width: 160, height: 90, video_bitrate_kbps: 150}\n"
    )
    assert plan_reload(old, parse_config(added)).restart_required == []
