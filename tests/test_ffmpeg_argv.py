"""Every ffmpeg command line, pinned whole (shell-quoted): what each builder
gives for a few inputs, as it was when they were gathered into ffmpeg/."""

from __future__ import annotations

import shlex
from fractions import Fraction
from pathlib import Path

import pytest

from mqttrelay.config.profiles import ProfileConfig
from mqttrelay.ffmpeg import (
    StreamShape,
    build_profile_argv,
    build_relay_argv,
    build_tap_argv,
    loop_argv,
    probe_argv,
    query_argv,
    snapshot_argv,
)

PROFILE = ProfileConfig(width=640, height=360, video_bitrate_kbps=800)
SHAPE = StreamShape(1280, 720, Fraction(30), "yuv420p", 48000, 2)
PORTRAIT_10BIT = StreamShape(720, 1280, Fraction(30000, 1001), "yuv420p10le", 44100, 1)

PINNED = {
    "tap": (
        "/usr/bin/ffmpeg -hide_banner -nostats -loglevel error -nostdin -fpsprobesize 0 "
        "-analyzeduration 5000000 -f live_flv -i rtmp://127.0.0.1:1935/live/stream -map "
        "'0:v?' -map '0:a?' -c copy -f flv -flvflags no_duration_filesize pipe:1"
    ),
    "relay_cached_rtmp": (
        "ffmpeg -hide_banner -nostats -loglevel error -progress pipe:1 -stats_period 1 "
        "-fpsprobesize 0 -analyzeduration 5000000 -f flv -i pipe:0 -map '0:v?' -map '0:a?' -c"
        " copy -max_interleave_delta 200000 -f flv -flvflags no_duration_filesize "
        "-tcp_nodelay 1 rtmp://a.example:1935/app/KEY"
    ),
    "relay_direct_tunnel": (
        "ffmpeg -hide_banner -nostats -loglevel error -progress pipe:1 -stats_period 1 "
        "-nostdin -rw_timeout 10000000 -fpsprobesize 0 -analyzeduration 5000000 -f live_flv "
        "-i rtmp://i/live/s -map '0:v?' -map '0:a?' -c copy -max_interleave_delta 200000 "
        "-rtmp_tcurl rtmps://b/rtmp -f flv -flvflags no_duration_filesize -tcp_nodelay 1 "
        "rtmp://127.0.0.1:5555/rtmp/K"
    ),
    "relay_cached_srt": (
        "ffmpeg -hide_banner -nostats -loglevel error -progress pipe:1 -stats_period 1 "
        "-fpsprobesize 0 -analyzeduration 5000000 -f flv -i pipe:0 -map '0:v?' -map '0:a?' -c"
        " copy -max_interleave_delta 200000 -f mpegts 'srt://h:9000?streamid=x'"
    ),
    "profile_x264": (
        "ffmpeg -hide_banner -nostats -loglevel error -progress pipe:2 -stats_period 1 "
        "-fpsprobesize 0 -analyzeduration 5000000 -f flv -i pipe:0 -map 0:v -map '0:a?' -vf s"
        "cale=640:360:force_original_aspect_ratio=decrease:force_divisible_by=2,setsar=1,form"
        "at=yuv420p -c:v libx264 -preset veryfast -tune zerolatency -sc_threshold 0 -b:v 800k"
        " -maxrate 800k -bufsize 1600k -force_key_frames 'expr:gte(t,n_forced*2)' -c:a aac "
        "-b:a 96k -f flv -flvflags no_duration_filesize pipe:1"
    ),
    "profile_vaapi": (
        "ffmpeg -hide_banner -nostats -loglevel error -progress pipe:2 -stats_period 1 "
        "-vaapi_device /dev/dri/renderD128 -fpsprobesize 0 -analyzeduration 5000000 -f flv -i"
        " pipe:0 -map 0:v -map '0:a?' -vf scale=640:360:force_original_aspect_ratio=decrease:"
        "force_divisible_by=2,setsar=1,format=nv12,hwupload -c:v h264_vaapi -b:v 800k "
        "-maxrate 800k -bufsize 1600k -force_key_frames 'expr:gte(t,n_forced*2)' -c:a copy -f"
        " flv -flvflags no_duration_filesize pipe:1"
    ),
    "loop_image": (
        "/usr/bin/ffmpeg -hide_banner -nostdin -loglevel error -loop 1 -framerate 30/1 -i "
        "/srv/card.png -f lavfi -i anullsrc=channel_layout=stereo:sample_rate=48000 -t 2 -vf "
        "'scale=1280:720:force_original_aspect_ratio=decrease,pad=1280:720:(ow-iw)/2:(oh-ih)/"
        "2,format=yuv420p,setsar=1' -r 30/1 -c:v libx264 -preset veryfast -tune stillimage -g"
        " 30 -keyint_min 30 -sc_threshold 0 -bf 0 -c:a aac -b:a 64k -ar 48000 -ac 2 -f flv "
        "pipe:1"
    ),
    "loop_card": (
        "ffmpeg -hide_banner -nostdin -loglevel error -f lavfi -i 'color=c=0x1d2733:s=720x128"
        "0:r=30000/1001,drawtext=fontfile=/fonts/DejaVuSans.ttf:text=We\u2019ll be right "
        "back:fontcolor=white:fontsize=h/12:x=(w-text_w)/2:y=(h-text_h)/2' -f lavfi -i "
        "anullsrc=channel_layout=mono:sample_rate=44100 -t 2 -vf format=yuv420p,setsar=1 -r "
        "30000/1001 -c:v libx264 -preset veryfast -tune stillimage -g 30 -keyint_min 30 "
        "-sc_threshold 0 -bf 0 -c:a aac -b:a 64k -ar 44100 -ac 1 -f flv pipe:1"
    ),
    "probe": ("/usr/bin/ffprobe -v error -show_streams -of json -f flv -i pipe:0"),
    "snapshot": (
        "/usr/bin/ffmpeg -hide_banner -nostdin -loglevel error -f flv -i pipe:0 -frames:v 1 "
        "-an -vf 'scale='\"'\"'min(1280,iw)'\"'\"':-2' -q:v 4 -f image2pipe -c:v mjpeg pipe:1"
    ),
}


def built() -> dict[str, list[str]]:
    return {
        "tap": build_tap_argv("/usr/bin/ffmpeg", "rtmp://127.0.0.1:1935/live/stream"),
        "relay_cached_rtmp": build_relay_argv(
            "ffmpeg", "rtmp://a.example:1935/app/KEY", "cached", "rtmp://i/live/s"
        ),
        "relay_direct_tunnel": build_relay_argv(
            "ffmpeg", "rtmp://127.0.0.1:5555/rtmp/K", "direct", "rtmp://i/live/s", "rtmps://b/rtmp"
        ),
        "relay_cached_srt": build_relay_argv(
            "ffmpeg", "srt://h:9000?streamid=x", "cached", "rtmp://i/live/s"
        ),
        "profile_x264": build_profile_argv(
            "ffmpeg", PROFILE.model_copy(update={"audio_bitrate_kbps": 96})
        ),
        "profile_vaapi": build_profile_argv(
            "ffmpeg", PROFILE.model_copy(update={"encoder": "h264_vaapi"})
        ),
        "loop_image": loop_argv("/usr/bin/ffmpeg", SHAPE, Path("/srv/card.png"), None),
        "loop_card": loop_argv("ffmpeg", PORTRAIT_10BIT, None, "/fonts/DejaVuSans.ttf"),
        "probe": probe_argv("/usr/bin/ffprobe"),
        "snapshot": snapshot_argv("/usr/bin/ffmpeg"),
    }


@pytest.mark.parametrize("case", sorted(PINNED))
def test_each_argv_is_as_pinned(case: str) -> None:
    assert built()[case] == shlex.split(PINNED[case])


def test_the_queries() -> None:
    assert query_argv("ffmpeg", "-encoders") == ["ffmpeg", "-hide_banner", "-encoders"]
