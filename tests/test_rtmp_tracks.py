"""E-RTMP v2 multitrack demultiplexed into single-track sources, as plain
values: the media payloads (media.py), the split by route and onMetaData per
track (tracks.py); and hypothesis fuzzing of both."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mqttrelay.ingest.avc_size import avc_size
from mqttrelay.ingest.rtmp import amf0
from mqttrelay.ingest.rtmp.chunks import AUDIO, DATA_AMF0, VIDEO
from mqttrelay.ingest.rtmp.media import audio_track, track_ids, video_track
from mqttrelay.ingest.rtmp.tracks import Route, TrackSplit, split, stream_sinks, track_metadata
from mqttrelay.ingest.session_info import describe_session, parse_metadata
from mqttrelay.lib.flv import FlvTag, TagType

AVC_CONF = b"\x01\x64\x00\x0c\xff\xe1"
# what ffmpeg 9 sends for a second H.264 track (recorded from its FLV muxer):
# multitrack, one track, avc1, track id 1
TRACK1_SEQ = bytes([0x96, 0x00]) + b"avc1" + b"\x01" + AVC_CONF
TRACK1_KEY = bytes([0x96, 0x01]) + b"avc1" + b"\x01" + b"\x00\x00\x50" + b"nal-key"
TRACK1_INTER = bytes([0xA6, 0x01]) + b"avc1" + b"\x01" + b"\x00\x00\xc8" + b"nal-p"
TRACK1_AAC_SEQ = bytes([0x95, 0x00]) + b"mp4a" + b"\x01" + b"\x12\x08"
TRACK1_AAC = bytes([0x95, 0x01]) + b"mp4a" + b"\x01" + b"aac-frame"
TRACK1_AAC_CHANNELS = bytes([0x95, 0x04]) + b"mp4a" + b"\x01" + b"\x01\x01\x00\x00\x00\x04"
CLASSIC_KEY = b"\x17\x01\x00\x00\x50" + b"main-key"
CLASSIC_AAC = b"\xaf\x01" + b"main-aac"


class Tags:
    def __init__(self) -> None:
        self.events: list[Any] = []

    def rtmp_started(self) -> None:
        self.events.append("started")

    def rtmp_media(self, type_id: int, timestamp: int, payload: bytes) -> None:
        self.events.append((type_id, timestamp, payload))

    def rtmp_ended(self) -> None:
        self.events.append("ended")


def test_a_second_h264_track_becomes_classic_flv_track_0() -> None:
    assert video_track(TRACK1_SEQ, 1) == b"\x17\x00\x00\x00\x00" + AVC_CONF
    key = FlvTag(TagType.VIDEO, 0, video_track(TRACK1_KEY, 1) or b"")
    assert key.data == b"\x17\x01\x00\x00\x50nal-key" and key.is_keyframe
    inter = FlvTag(TagType.VIDEO, 0, video_track(TRACK1_INTER, 1) or b"")
    assert inter.data == b"\x27\x01\x00\x00\xc8nal-p" and not inter.is_keyframe
    # the track 0 messages are not track 1's, and the other way round
    assert video_track(CLASSIC_KEY, 1) is None and video_track(TRACK1_KEY, 0) is None
    assert video_track(CLASSIC_KEY, 0) == CLASSIC_KEY


def test_many_tracks_in_one_message_each_taken_out() -> None:
    multi = bytes([0x96, 0x11]) + b"hvc1"
    multi += b"\x00" + (4).to_bytes(3, "big") + b"zero"
    multi += b"\x02" + (3).to_bytes(3, "big") + b"two"
    assert video_track(multi, 0) == bytes([0x91]) + b"hvc1zero"  # HEVC stays E-RTMP v1
    assert video_track(multi, 2) == bytes([0x91]) + b"hvc1two"
    assert video_track(multi, 1) is None
    codecs = bytes([0x96, 0x21]) + b"hvc1\x00" + (1).to_bytes(3, "big") + b"h"
    codecs += b"avc1\x01" + (4).to_bytes(3, "big") + b"\x00\x00\x00a"
    assert video_track(codecs, 1) == b"\x17\x01\x00\x00\x00a"
    assert video_track(codecs, 0) == bytes([0x91]) + b"hvc1h"


def test_a_second_aac_track_becomes_classic_aac() -> None:
    assert audio_track(TRACK1_AAC_SEQ, 1) == b"\xaf\x00\x12\x08"
    assert audio_track(TRACK1_AAC, 1) == b"\xaf\x01aac-frame"
    assert audio_track(TRACK1_AAC_CHANNELS, 1) is None  # classic AAC has no place for it
    assert audio_track(CLASSIC_AAC, 1) is None and audio_track(TRACK1_AAC, 0) is None
    opus = bytes([0x95, 0x11]) + b"Opus" + b"\x03" + (2).to_bytes(3, "big") + b"op"
    assert audio_track(opus, 3) == bytes([0x91]) + b"Opusop"


def test_split_gives_each_source_its_tracks() -> None:
    main, tall, vod = Tags(), Tags(), Tags()
    routes = [Route(0, 0, main), Route(1, 0, tall), Route(0, 1, vod)]
    splitter = TrackSplit(routes)
    splitter.rtmp_started()
    for type_id, payload in (
        (VIDEO, CLASSIC_KEY),
        (VIDEO, TRACK1_KEY),
        (AUDIO, CLASSIC_AAC),
        (AUDIO, TRACK1_AAC),
        (AUDIO, TRACK1_AAC_CHANNELS),
    ):
        splitter.rtmp_media(type_id, 40, payload)
    splitter.rtmp_ended()
    assert main.events == [
        "started", (VIDEO, 40, CLASSIC_KEY), (AUDIO, 40, CLASSIC_AAC), "ended"
    ]  # fmt: skip
    assert tall.events == [
        "started", (VIDEO, 40, b"\x17\x01\x00\x00\x50nal-key"), (AUDIO, 40, CLASSIC_AAC), "ended"
    ]  # fmt: skip
    assert vod.events == [
        "started", (VIDEO, 40, CLASSIC_KEY), (AUDIO, 40, b"\xaf\x01aac-frame"), "ended"
    ]  # fmt: skip
    # one track taken out once for the routes that share it
    pairs = split(routes, AUDIO, CLASSIC_AAC)
    assert [r.sink for r, _ in pairs] == [main, tall] and pairs[0][1] is pairs[1][1]


def test_stream_sinks_group_sources_by_stream_name() -> None:
    a, b, c = Tags(), Tags(), Tags()
    sinks = stream_sinks(
        [
            ("live/stream", "main", 0, 0, a),
            ("live/stream", "tall", 1, 0, b),
            ("live/v", "v", 0, 0, c),
        ]
    )
    assert set(sinks) == {"live/stream", "live/v"}
    first = sinks["live/stream"]
    assert isinstance(first, TrackSplit)
    assert [(r.source, r.video, r.audio, r.sink) for r in first.routes] == [
        ("main", 0, 0, a), ("tall", 1, 0, b)
    ]  # fmt: skip


def test_each_track_of_a_publish_is_logged_once_with_its_source(
    caplog: pytest.LogCaptureFixture,
) -> None:
    splitter = TrackSplit([Route(0, 0, Tags(), "main"), Route(1, 0, Tags(), "tall")], "live/s")
    caplog.set_level(logging.INFO, "mqttrelay.ingest.rtmp.tracks")
    splitter.rtmp_started()
    for payload in (CLASSIC_KEY, TRACK1_KEY, TRACK1_INTER, CLASSIC_KEY):
        splitter.rtmp_media(VIDEO, 0, payload)
    splitter.rtmp_media(AUDIO, 0, TRACK1_AAC)
    assert caplog.messages == [
        "built-in ingest: live/s carries video track 0 (source main)",
        "built-in ingest: live/s carries video track 1 (source tall)",
        "built-in ingest: live/s carries audio track 1 (no source takes it: see "
        "ingest.sources[].audio_track)",
    ]


def test_track_ids_of_a_message() -> None:
    assert track_ids(VIDEO, CLASSIC_KEY) == [0] and track_ids(VIDEO, TRACK1_KEY) == [1]
    multi = bytes([0x96, 0x11]) + b"hvc1" + b"\x00\x00\x00\x01z" + b"\x02\x00\x00\x01t"
    assert track_ids(VIDEO, multi) == [0, 2]
    assert track_ids(AUDIO, TRACK1_AAC) == [1] and track_ids(AUDIO, CLASSIC_AAC) == [0]
    assert track_ids(VIDEO, bytes([0x97])) == [] and track_ids(AUDIO, b"") == []


def metadata(**props: Any) -> bytes:
    return amf0.encode("onMetaData", amf0.EcmaArray(props))


def test_metadata_of_another_track_loses_track_0s_picture() -> None:
    meta = metadata(width=320.0, height=180.0, framerate=25.0, videocodecid=7.0,
                    audiocodecid=10.0, audiosamplerate=44100.0, encoder="obs")  # fmt: skip
    assert track_metadata(meta, 0, 0) is meta
    tall = parse_metadata(track_metadata(meta, 1, 0))
    assert "width" not in tall and "height" not in tall and "framerate" not in tall
    assert tall["videocodecid"] == 7.0 and tall["audiosamplerate"] == 44100.0
    vod = parse_metadata(track_metadata(meta, 0, 1))
    assert vod["width"] == 320.0 and "audiosamplerate" not in vod and vod["audiocodecid"] == 10.0
    # E-RTMP v2's per-track info, when the publisher sends it
    infos = amf0.EcmaArray({"1": amf0.EcmaArray({"width": 180.0, "height": 320.0}), "2": 5.0})
    mapped = metadata(width=320.0, height=180.0, videocodecid=7.0, videoTrackIdInfoMap=infos)
    tall = parse_metadata(track_metadata(mapped, 1, 0))
    assert (tall["width"], tall["height"]) == (180.0, 320.0)
    assert "videoTrackIdInfoMap" not in tall
    assert track_metadata(b"\x02\x00", 1, 0) == b"\x02\x00"  # not AMF: as it came
    assert track_metadata(amf0.encode("onMetaData", 3.0), 1, 0) == amf0.encode("onMetaData", 3.0)


def test_split_passes_metadata_through_for_track_0() -> None:
    meta = metadata(width=320.0, height=180.0, videocodecid=7.0)
    main, tall = Tags(), Tags()
    out = dict(
        (r.video, p) for r, p in split([Route(0, 0, main), Route(1, 0, tall)], DATA_AMF0, meta)
    )
    assert out[0] == meta and "width" not in parse_metadata(out[1])


@given(st.binary(max_size=64), st.integers(0, 255))
def test_track_fuzz_never_raises(data: bytes, track: int) -> None:
    video_track(data, track)
    audio_track(data, track)
    for type_id in (AUDIO, VIDEO):
        assert all(0 <= t <= 255 for t in track_ids(type_id, data))


@given(st.binary(max_size=128), st.integers(0, 3), st.integers(0, 3))
def test_metadata_fuzz_never_raises(data: bytes, video: int, audio: int) -> None:
    assert isinstance(track_metadata(b"\x02\x00\x0aonMetaData" + data, video, audio), bytes)


@given(
    st.dictionaries(st.integers(0, 255), st.binary(max_size=40), min_size=1, max_size=6),
    st.sampled_from([b"hvc1", b"av01", b"vp09"]),
    st.integers(1, 2),
)
def test_every_track_of_a_many_track_packet_comes_out_whole(
    tracks: dict[int, bytes], fourcc: bytes, frame_type: int
) -> None:
    """A MANY_TRACKS packet made of random tracks: each track id gives back its
    body as an E-RTMP v1 payload, and only the ids in it are listed."""
    packet = bytes([0x80 | frame_type << 4 | 6, 0x11]) + fourcc
    for track_id, body in tracks.items():
        packet += bytes([track_id]) + len(body).to_bytes(3, "big") + body
    assert track_ids(VIDEO, packet) == list(tracks)
    for track_id, body in tracks.items():
        assert video_track(packet, track_id) == bytes([0x80 | frame_type << 4 | 1]) + fourcc + body
    missing = next(i for i in range(256) if i not in tracks)
    assert video_track(packet, missing) is None


# AVCDecoderConfigurationRecords x264 (in ffmpeg 9) made: the size, then the record
AVC_RECORDS = [
    ((1920, 1080), "01640028ffe1001b67640028acd940780227e5c044000003000400000300c83c60c658"),
    ((1280, 720), "0142c01fffe100196742c01fd9005005bb011000000300100000030320f1832480"),
    ((854, 480), "014d401effe10018674d401eeca06c1ef37808800000030080000019078b16cb"),
    ((641, 361), "01f4001effe1001c67f4001e919b281485fc211180880000030008000003019078b16cb0"),
    ((720, 576), "0164001effe100186764001eacd940b424d8088000000300800000190f8a14cb"),  # interlaced
]


def test_h264_size_from_its_sequence_header() -> None:
    """High (cropped 1088 -> 1080), Baseline, Main, High 4:4:4 with odd sizes,
    interlaced: the size x264 was asked for."""
    for size, record in AVC_RECORDS:
        assert avc_size(bytes.fromhex(record)) == size, size
    assert avc_size(b"") is None and avc_size(b"\x01\x64\x00\x28\xff\xe0") is None
    assert avc_size(bytes.fromhex(AVC_RECORDS[0][1])[:14]) is None  # cut short


def test_a_track_sources_info_has_its_own_size() -> None:
    """onMetaData without a size (a second picture's): the sequence header's."""
    record = bytes.fromhex(AVC_RECORDS[1][1])
    meta = FlvTag(TagType.SCRIPT, 0, metadata(videocodecid=7.0, framerate=25.0))
    classic = FlvTag(TagType.VIDEO, 0, b"\x17\x00\x00\x00\x00" + record)
    assert describe_session(meta, classic, None).resolution == "1280x720"
    fourcc = FlvTag(TagType.VIDEO, 0, b"\x90avc1" + record)
    assert describe_session(meta, fourcc, None).resolution == "1280x720"
    # the metadata's size, when it has one, is OBS's word
    sized = FlvTag(TagType.SCRIPT, 0, metadata(width=640.0, height=360.0))
    assert describe_session(sized, classic, None).resolution == "640x360"
    hevc = FlvTag(TagType.VIDEO, 0, b"\x90hvc1" + record)
    assert describe_session(meta, hevc, None).resolution is None


@given(st.binary(max_size=80))
def test_avc_size_fuzz_never_raises(data: bytes) -> None:
    size = avc_size(b"\x01\x64\x00\x28\xff\xe1" + len(data).to_bytes(2, "big") + data)
    assert size is None or (0 < size[0] <= 16384 and 0 < size[1] <= 16384)
    sps_fuzz = avc_size(
        b"\x01\x64\x00\x28\xff\xe1" + (len(data) + 1).to_bytes(2, "big") + b"\x67" + data
    )
    assert sps_fuzz is None or min(sps_fuzz) > 0
