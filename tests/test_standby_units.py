"""The standby picture's pure parts and its player, as plain values."""

from __future__ import annotations

import asyncio
import json
from fractions import Fraction
from pathlib import Path

import pytest

from mqttrelay.config import ConfigError, load_config, parse_config
from mqttrelay.ffmpeg import StreamShape, loop_argv, parse_probe
from mqttrelay.hub.standby import (
    SAMPLE_MS,
    Loop,
    LoopPlayer,
    SessionSample,
    ffprobe_beside,
    loop_from_flv,
)
from mqttrelay.lib.flv import FlvTag, TagType, encode_header

SHAPE = StreamShape(1280, 720, Fraction(30), "yuv420p", 48000, 2)

VIDEO_KEY = b"\x17\x01\x00\x00\x00frame"  # AVC keyframe NALU
VIDEO_INTER = b"\x27\x01\x00\x00\x00frame"
VIDEO_SEQ = b"\x17\x00\x00\x00\x00config"
AUDIO_SEQ = b"\xaf\x00\x12\x10"
AUDIO = b"\xaf\x01silence"


def probe_json(**video: object) -> str:
    stream = {"codec_type": "video", "width": 640, "height": 360, "avg_frame_rate": "25/1",
              "r_frame_rate": "25/1", "pix_fmt": "yuv420p"} | video  # fmt: skip
    audio = {"codec_type": "audio", "sample_rate": "44100", "channels": 1}
    return json.dumps({"streams": [stream, audio]})


def test_the_probe_gives_the_shape_the_platforms_were_receiving() -> None:
    assert parse_probe(probe_json()) == StreamShape(640, 360, Fraction(25), "yuv420p", 44100, 1)
    ntsc = parse_probe(probe_json(avg_frame_rate="30000/1001"))
    assert ntsc is not None and ntsc.frame_rate == Fraction(30000, 1001)
    # a useless average (one frame seen) falls back to the stream's own rate
    fallback = parse_probe(probe_json(avg_frame_rate="0/0", r_frame_rate="60/1"))
    assert fallback is not None and fallback.frame_rate == 60
    video_only = json.dumps({"streams": [json.loads(probe_json())["streams"][0]]})
    shape = parse_probe(video_only)
    assert shape is not None and shape.sample_rate is None and shape.channels is None


@pytest.mark.parametrize(
    "text",
    ["", "{not json", "[]", json.dumps({"streams": []}), probe_json(width="wide"),
     probe_json(avg_frame_rate="0/0", r_frame_rate="0/0"), probe_json(width=4)],
)  # fmt: skip
def test_a_probe_that_says_too_little_gives_no_shape(text: str) -> None:
    assert parse_probe(text) is None


def test_the_loop_is_encoded_in_the_sessions_shape() -> None:
    argv = loop_argv("/usr/bin/ffmpeg", SHAPE, Path("/srv/card.png"), None)
    joined = " ".join(argv)
    assert argv[0] == "/usr/bin/ffmpeg" and argv[-3:] == ["-f", "flv", "pipe:1"]
    assert "-loop 1 -framerate 30/1 -i /srv/card.png" in joined
    assert "scale=1280:720:force_original_aspect_ratio=decrease,pad=1280:720" in joined
    assert "-r 30/1" in joined and "-g 30 -keyint_min 30" in joined  # a keyframe each second
    assert "anullsrc=channel_layout=stereo:sample_rate=48000" in joined
    assert "-ar 48000 -ac 2" in joined and "-c:v libx264" in joined


def test_the_built_in_card_and_odd_shapes() -> None:
    odd = StreamShape(720, 1280, Fraction(30000, 1001), "yuv420p10le", 44100, 1)
    joined = " ".join(loop_argv("ffmpeg", odd, None, "/fonts/DejaVuSans.ttf"))
    assert "color=c=0x1d2733:s=720x1280:r=30000/1001" in joined
    assert "drawtext=fontfile=/fonts/DejaVuSans.ttf:text=We\u2019ll be right back" in joined
    assert "format=yuv420p," in joined  # 10-bit is not what OBS sends to platforms
    assert "channel_layout=mono" in joined and "-ac 1" in joined
    silent = StreamShape(320, 180, Fraction(25), "yuv420p", None, None)
    no_font = loop_argv("ffmpeg", silent, None, None)
    assert "-an" in no_font and "anullsrc" not in " ".join(no_font)
    assert "drawtext" not in " ".join(no_font)


def flv(*tags: FlvTag) -> bytes:
    return encode_header(audio=True, video=True) + b"".join(t.encode() for t in tags)


def test_the_loop_starts_at_its_first_keyframe_and_lasts_its_frames() -> None:
    shape = StreamShape(320, 180, Fraction(25), "yuv420p", 44100, 1)
    tags = [
        FlvTag(TagType.SCRIPT, 0, b"\x02\x00\x0aonMetaData"),
        FlvTag(TagType.VIDEO, 0, VIDEO_SEQ),
        FlvTag(TagType.AUDIO, 0, AUDIO_SEQ),
        FlvTag(TagType.AUDIO, 0, AUDIO),  # the encoder's audio before the first picture
        *[FlvTag(TagType.VIDEO, 23 + 40 * n, VIDEO_INTER if n else VIDEO_KEY) for n in range(50)],
        *[FlvTag(TagType.AUDIO, 23 + 23 * n, AUDIO) for n in range(80)],
        FlvTag(TagType.VIDEO, 2023, b"\x17\x02\x00\x00\x00"),  # AVC end of sequence
    ]  # fmt: skip
    loop = loop_from_flv(shape, flv(*tags))
    assert loop is not None
    assert loop.metadata is not None and len(loop.headers) == 2
    assert loop.media[0].is_keyframe and loop.media[0].timestamp == 0
    assert min(t.timestamp for t in loop.media) == 0
    assert loop.period_ms == 2000  # 50 frames at 25 fps
    assert sum(t.is_keyframe for t in loop.media) == 1  # the end of sequence is not kept
    assert loop_from_flv(shape, flv(FlvTag(TagType.VIDEO, 0, VIDEO_INTER))) is None
    assert loop_from_flv(shape, b"not flv at all") is None


def test_a_session_sample_is_handed_over_after_its_first_seconds() -> None:
    keyframe = FlvTag(TagType.VIDEO, 5000, VIDEO_KEY)
    sample = SessionSample(b"FLVHEADER", [FlvTag(TagType.VIDEO, 0, VIDEO_SEQ)], keyframe)
    assert sample.add(keyframe) is None
    assert sample.add(FlvTag(TagType.VIDEO, 5000 + SAMPLE_MS - 40, VIDEO_INTER)) is None
    done = sample.add(FlvTag(TagType.VIDEO, 5000 + SAMPLE_MS, VIDEO_INTER))
    assert done is not None and done.startswith(b"FLVHEADER")
    # the codec headers are stamped at the keyframe, so the sample starts at its time
    assert FlvTag(TagType.VIDEO, 5000, VIDEO_SEQ).encode() in done


async def test_the_player_plays_the_loop_in_real_time_then_ends_at_max_s() -> None:
    media = [FlvTag(TagType.VIDEO, 40 * n, VIDEO_KEY if n == 0 else VIDEO_INTER) for n in range(5)]
    loop = Loop(SHAPE, None, [FlvTag(TagType.VIDEO, 0, VIDEO_SEQ)], media, 200, 0)
    out: list[FlvTag] = []
    expired = asyncio.Event()

    def at_max_s() -> bool:
        expired.set()
        return False  # stop here

    player = LoopPlayer(loop, out.append, 0.7, at_max_s)
    player.start()
    await asyncio.wait_for(expired.wait(), 5)
    assert out[0].is_sequence_header
    stamps = [t.timestamp for t in out[1:]]
    assert stamps == sorted(stamps) and stamps[:6] == [0, 40, 80, 120, 160, 200]
    assert 600 <= stamps[-1] <= 760  # 0.7 s of stream, played in real time (+ its lead)
    assert [t.is_keyframe for t in out[1:]].count(True) >= 3  # each pass starts with one


def test_ffprobe_is_taken_from_ffmpegs_install() -> None:
    assert ffprobe_beside("/opt/ffmpeg/bin/ffmpeg") == "/opt/ffmpeg/bin/ffprobe"
    assert ffprobe_beside("ffmpeg") == "ffprobe"


def test_the_standby_image_must_be_a_png_or_jpeg(tmp_path: Path) -> None:
    (tmp_path / "card.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 32)
    (tmp_path / "notes.txt").write_text("not a picture")
    config = tmp_path / "config.yaml"
    config.write_text("standby:\n  image: card.png\n")
    loaded = load_config(config)
    assert loaded.standby is not None and loaded.standby.image == tmp_path / "card.png"
    assert loaded.standby.enabled and loaded.standby.max_s == 600
    for image, problem in [
        ("notes.txt", "not a PNG or JPEG image"),
        ("missing.png", "cannot read"),
        (".", "cannot read"),
    ]:
        config.write_text(f"standby:\n  image: {image}\n")
        with pytest.raises(ConfigError) as caught:
            load_config(config)
        assert any(p.startswith("standby.image:") and problem in p for p in caught.value.problems)
    with pytest.raises(ConfigError) as caught:
        parse_config("standby:\n  max_s: -1\n")
    assert any("standby.max_s" in p for p in caught.value.problems)
    assert parse_config("ingest: {}\n").standby is None  # no section: hold as before
