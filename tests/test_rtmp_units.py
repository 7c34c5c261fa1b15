"""The built-in ingest's pure parts: AMF0, chunk streams, the handshake, E-RTMP
payloads made single-track, the publisher's command sequence; and hypothesis
over the chunk and AMF readers (malformed input is one error type, never a
crash, never unbounded memory)."""

from __future__ import annotations

import contextlib
import re
import struct
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mqttrelay.config import Config, split_listen
from mqttrelay.ffmpeg import ffmpeg_version
from mqttrelay.ffmpeg.check import enhanced_rtmp_problem
from mqttrelay.ingest.rtmp import amf0, handshake
from mqttrelay.ingest.rtmp.chunks import (
    ABORT,
    COMMAND_AMF0,
    SET_CHUNK_SIZE,
    ChunkError,
    ChunkReader,
    Message,
    encode_message,
)
from mqttrelay.ingest.rtmp.media import audio_track0, video_codec, video_track0
from mqttrelay.ingest.rtmp.server import Candidate, Progress, eviction_victim
from mqttrelay.ingest.rtmp.session import (
    Media,
    ProtocolError,
    PublishRequest,
    Session,
    Unpublish,
    split_key,
)
from mqttrelay.ingest.session_info import describe_session
from mqttrelay.lib.flv import FlvTag, TagType

# -- AMF0 ---------------------------------------------------------------------


def test_amf0_round_trip_of_every_type() -> None:
    values: list[Any] = [
        1.5,
        True,
        "connect",
        "x" * 70000,  # a long string
        None,
        amf0.UNDEFINED_VALUE,
        {"app": "live", "n": 3.0, "inner": {"a": [1.0, "b"]}},
        amf0.EcmaArray({"width": 1920.0, "stereo": True}),
        [1.0, None, "s"],
        amf0.Date(1.7e12, 0),
    ]
    assert amf0.decode_all(amf0.encode(*values)) == values


def test_amf0_errors_name_the_problem() -> None:
    with pytest.raises(amf0.AmfError, match="cut short"):
        amf0.decode(b"\x00\x01")
    with pytest.raises(amf0.AmfError, match="type 17"):
        amf0.decode(b"\x11")
    deep = b"\x0a\x00\x00\x00\x01" * 100 + b"\x05"
    with pytest.raises(amf0.AmfError, match="deeper"):
        amf0.decode(deep)
    with pytest.raises(amf0.AmfError, match="strict array"):
        amf0.decode(b"\x0a\xff\xff\xff\xff\x05")


@given(st.binary(max_size=2000))
@settings(max_examples=400, deadline=None)
def test_amf0_fuzz_only_amf_errors(data: bytes) -> None:
    with contextlib.suppress(amf0.AmfError):
        amf0.decode_all(data)


# -- chunks -------------------------------------------------------------------


def _messages(data: bytes, reader: ChunkReader | None = None, step: int = 7) -> list[Message]:
    reader = reader or ChunkReader()
    out: list[Message] = []
    for i in range(0, len(data), step):
        out += reader.feed(data[i : i + step])
    return out


def test_chunks_round_trip_with_chunk_size_change_and_extended_timestamp() -> None:
    big = bytes(range(256)) * 40
    data = (
        encode_message(3, COMMAND_AMF0, 0, 0, amf0.encode("connect", 1.0), 128)
        + encode_message(2, SET_CHUNK_SIZE, 0, 0, struct.pack(">I", 4096), 128)
        + encode_message(6, 9, 1, 0x1234567, big, 4096)  # extended timestamp
        + encode_message(6, 9, 1, 40, big[:300], 4096)
    )
    msgs = _messages(data)
    assert [m.type_id for m in msgs] == [COMMAND_AMF0, SET_CHUNK_SIZE, 9, 9]
    assert msgs[2].payload == big and msgs[2].timestamp == 0x1234567
    assert msgs[3].payload == big[:300] and msgs[3].stream_id == 1


def test_chunks_compressed_headers_and_interleaving() -> None:
    # type 0, then type 1 (new length), type 2 (delta only), type 3 (same delta)
    first = bytes([0x04]) + (100).to_bytes(3, "big") + (3).to_bytes(3, "big") + b"\x08"
    first += struct.pack("<I", 1) + b"abc"
    second = bytes([0x44]) + (20).to_bytes(3, "big") + (2).to_bytes(3, "big") + b"\x08" + b"de"
    third = bytes([0x84]) + (20).to_bytes(3, "big") + b"fg"
    fourth = bytes([0xC4]) + b"hi"
    msgs = _messages(first + second + third + fourth, step=1)
    assert [(m.timestamp, m.payload) for m in msgs] == [
        (100, b"abc"),
        (120, b"de"),
        (140, b"fg"),
        (160, b"hi"),
    ]
    # a 200-byte message (two chunks of 128) interleaved with another chunk stream
    body = bytes(200)
    video = encode_message(6, 9, 1, 0, body, 128)
    audio = encode_message(4, 8, 1, 0, b"xy", 128)
    cut = 12 + 128
    msgs = _messages(video[:cut] + audio + video[cut:])
    assert [(m.type_id, len(m.payload)) for m in msgs] == [(8, 2), (9, 200)]


def test_chunks_abort_and_three_byte_chunk_stream_ids() -> None:
    video = encode_message(6, 9, 1, 0, bytes(300), 128)
    abort = encode_message(2, ABORT, 0, 0, struct.pack(">I", 6), 128)
    again = encode_message(6, 9, 1, 0, b"ok", 128)
    reader = ChunkReader()
    msgs = reader.feed(video[:140] + abort + again)
    assert [m.payload for m in msgs if m.type_id == 9] == [b"ok"]
    assert reader.pending == 0
    # csid 64+1+256 in the 3-byte form, 64+10 in the 2-byte form
    header = bytes([0x01, 1, 1]) + bytes(3) + (1).to_bytes(3, "big") + b"\x08" + bytes(4) + b"z"
    header2 = bytes([0x00, 10]) + bytes(3) + (1).to_bytes(3, "big") + b"\x08" + bytes(4) + b"w"
    got = ChunkReader().feed(header + header2)
    assert [(m.csid, m.payload) for m in got] == [(321, b"z"), (74, b"w")]


def test_chunks_limits() -> None:
    with pytest.raises(ChunkError, match="over the cap"):
        ChunkReader(max_message_size=1000).feed(encode_message(6, 9, 1, 0, bytes(1001), 128))
    with pytest.raises(ChunkError, match="without a full header"):
        ChunkReader().feed(bytes([0xC5]))
    # each chunk stream holds an unfinished message (its first 128 of 200 bytes)
    many = b"".join(
        bytes([0x00, n]) + bytes(3) + (200).to_bytes(3, "big") + b"\x08" + bytes(4 + 128)
        for n in range(70)
    )
    with pytest.raises(ChunkError, match="chunk streams"):
        ChunkReader().feed(many)


@given(st.lists(st.binary(max_size=400), max_size=30))
@settings(max_examples=400, deadline=None)
def test_chunks_fuzz_only_chunk_errors_and_bounded_memory(parts: list[bytes]) -> None:
    reader = ChunkReader(max_message_size=4096)
    try:
        for part in parts:
            reader.feed(part)
            assert reader.pending <= 3 * 4096 + 64
    except ChunkError:
        pass


@given(st.lists(st.binary(max_size=300), max_size=20))
@settings(max_examples=300, deadline=None)
def test_session_fuzz_after_valid_prefix(parts: list[bytes]) -> None:
    """A valid connect, then garbage: only the protocol's own errors come out."""
    reader, session = ChunkReader(max_message_size=4096), Session()
    stream = _publisher_bytes()[:2] + [p for p in parts]
    try:
        for part in stream:
            for message in reader.feed(part):
                session.handle(message)
            session.take_output()
    except (ChunkError, amf0.AmfError, ProtocolError):
        pass


# -- handshake ----------------------------------------------------------------


def test_handshake_echoes_c1_and_rejects_other_versions() -> None:
    c1 = bytes(range(256)) * 6
    reply = handshake.server_reply(b"\x03" + c1)
    assert reply[0] == 3 and len(reply) == 1 + 2 * 1536
    assert reply[5:9] == b"\x00\x00\x00\x00"  # version 0: take the simple handshake
    assert reply[1 + 1536 :] == c1
    with pytest.raises(handshake.HandshakeError, match="version 6"):
        handshake.server_reply(b"\x06" + c1)


# -- session ------------------------------------------------------------------


def _command(csid: int, stream_id: int, *values: Any) -> bytes:
    return encode_message(csid, COMMAND_AMF0, stream_id, 0, amf0.encode(*values), 128)


def _publisher_bytes(name: str = "stream?key=k1") -> list[bytes]:
    return [
        _command(3, 0, "connect", 1.0, {"app": "live", "fourCcList": ["hvc1", "av01"]}),
        _command(3, 0, "releaseStream", 2.0, None, name),
        _command(3, 0, "FCPublish", 3.0, None, name),
        _command(3, 0, "createStream", 4.0, None),
        _command(5, 1, "publish", 5.0, None, name, "live"),
    ]


def _replies(out: bytes) -> list[list[Any]]:
    reader = ChunkReader()
    msgs = reader.feed(out)
    return [amf0.decode_all(m.payload) for m in msgs if m.type_id == COMMAND_AMF0]


def test_session_publisher_sequence_and_replies() -> None:
    reader, session = ChunkReader(), Session()
    events: list[Any] = []
    for part in _publisher_bytes():
        for message in reader.feed(part):
            events += session.handle(message)
    assert events == [PublishRequest("live", "stream", "k1")]
    assert session.fourccs == ["hvc1", "av01"]
    replies = _replies(session.take_output())
    assert replies[0][0] == "_result" and replies[0][3]["code"] == "NetConnection.Connect.Success"
    assert [r[0] for r in replies] == ["_result", "_result", "onFCPublish", "_result"]
    assert replies[3][3] == 1.0  # the stream id
    # media before the answer is not accepted
    video = encode_message(6, 9, 1, 0, b"\x17\x00", 4096)
    assert [session.handle(m) for m in reader.feed(video)] == [[]]
    session.accept_publish()
    status = _replies(session.take_output())[-1]
    assert status[3]["code"] == "NetStream.Publish.Start"
    assert session.handle(reader.feed(video)[0]) == [Media(9, 0, b"\x17\x00")]
    meta = amf0.encode("@setDataFrame", "onMetaData", amf0.EcmaArray({"width": 1280.0}))
    data = reader.feed(encode_message(4, 18, 1, 0, meta, 128))[0]
    body = amf0.encode("onMetaData", amf0.EcmaArray({"width": 1280.0}))
    assert session.handle(data) == [Media(18, 0, body)]
    done = reader.feed(_command(3, 0, "FCUnpublish", 6.0, None, "stream"))[0]
    assert session.handle(done) == [Unpublish()]


def test_session_refusal_ping_and_order() -> None:
    reader, session = ChunkReader(), Session()
    for part in _publisher_bytes("stream"):
        for message in reader.feed(part):
            session.handle(message)
    session.take_output()
    session.refuse_publish("NetStream.Publish.BadName", "live/stream is already being published")
    status = _replies(session.take_output())[-1]
    assert status[3]["level"] == "error" and status[3]["code"] == "NetStream.Publish.BadName"
    ping = encode_message(2, 4, 0, 0, struct.pack(">HI", 6, 1234), 128)
    session.handle(reader.feed(ping)[0])
    pong = [m for m in ChunkReader().feed(session.take_output()) if m.type_id == 4]
    assert pong[0].payload == struct.pack(">HI", 7, 1234)
    with pytest.raises(ProtocolError, match="before connect"):
        Session().handle(ChunkReader().feed(_command(3, 0, "publish", 1.0, None, "x"))[0])
    assert split_key("stream?key=a%20b&x=1") == ("stream", "a b")
    assert split_key("stream") == ("stream", None)


def test_session_acknowledges_each_window() -> None:
    reader, session = ChunkReader(), Session()
    session.handle(reader.feed(_publisher_bytes()[0])[0])
    window = encode_message(2, 5, 0, 0, struct.pack(">I", 1000), 128)
    session.handle(reader.feed(window)[0])
    session.take_output()
    session.received(999)
    assert session.take_output() == b""
    session.received(2)
    acks = [m for m in ChunkReader().feed(session.take_output()) if m.type_id == 3]
    assert acks[0].payload == struct.pack(">I", 1001)


# -- E-RTMP payloads ------------------------------------------------------------


def test_media_ex_headers_become_single_track_and_classic_where_possible() -> None:
    # HEVC sequence start (E-RTMP v1) passes as it is
    hevc = bytes([0x90]) + b"hvc1" + b"conf"
    assert video_track0(hevc) == hevc and video_codec(hevc) == "hvc1"
    # avc1 in a FourCC header: classic H.264 (keyframe, NALU, composition time kept)
    coded = bytes([0x91]) + b"avc1" + b"\x00\x00\x21" + b"nal"
    assert video_track0(coded) == b"\x17\x01\x00\x00\x21nal"
    assert video_track0(bytes([0x93]) + b"avc1" + b"nal") == b"\x17\x01\x00\x00\x00nal"
    # multitrack, many tracks: track 0 is taken, track 1 dropped
    multi = bytes([0x96, 0x11]) + b"hvc1"
    multi += b"\x01" + (3).to_bytes(3, "big") + b"one"
    multi += b"\x00" + (4).to_bytes(3, "big") + b"zero"
    assert video_track0(multi) == bytes([0x91]) + b"hvc1" + b"zero"
    # one track with id 0, many codecs
    one = bytes([0x96, 0x00]) + b"av01" + b"\x00" + b"seq"
    assert video_track0(one) == bytes([0x90]) + b"av01" + b"seq"
    many_codecs = bytes([0x96, 0x21]) + b"vp09\x02" + (1).to_bytes(3, "big") + b"x"
    assert video_track0(many_codecs) is None  # no track 0
    # audio: mp4a becomes classic AAC, Opus stays E-RTMP
    assert audio_track0(bytes([0x90]) + b"mp4a" + b"asc") == b"\xaf\x00asc"
    opus = bytes([0x91]) + b"Opus" + b"pkt"
    assert audio_track0(opus) == opus
    amulti = bytes([0x95, 0x01]) + b"Opus" + b"\x00" + b"p0"
    assert audio_track0(amulti) == bytes([0x91]) + b"Opus" + b"p0"
    assert audio_track0(b"\xaf\x01raw") == b"\xaf\x01raw"
    for junk in (b"\x96", b"\x96\x11hv", b"\x95", b"\x90mp"):
        video_track0(junk)
        audio_track0(junk)


@given(st.binary(max_size=64))
def test_media_fuzz_never_raises(data: bytes) -> None:
    video_track0(data)
    audio_track0(data)


def test_flv_knows_e_rtmp_audio_headers_and_non_picture_video() -> None:
    assert FlvTag(TagType.AUDIO, 0, bytes([0x90]) + b"Opus").is_sequence_header
    assert not FlvTag(TagType.AUDIO, 0, bytes([0x91]) + b"Opus").is_sequence_header
    assert FlvTag(TagType.VIDEO, 0, bytes([0x91]) + b"hvc1").is_keyframe
    assert FlvTag(TagType.VIDEO, 0, bytes([0x93]) + b"hvc1").is_keyframe
    assert not FlvTag(TagType.VIDEO, 0, bytes([0x94]) + b"hvc1").is_keyframe  # metadata
    assert not FlvTag(TagType.VIDEO, 0, bytes([0x90]) + b"hvc1").is_keyframe


# -- config and the ffmpeg check -------------------------------------------------


def test_listen_config() -> None:
    assert split_listen("0.0.0.0:1935") == ("0.0.0.0", 1935)
    assert split_listen("[::]:1935") == ("::", 1935)
    for bad in ("1935", "host:", "a b:1935", "h:70000"):
        with pytest.raises(ValueError, match=r"ingest\.listen"):
            split_listen(bad)
    ok = Config.model_validate({"ingest": {"listen": "127.0.0.1:1935"}})
    assert ok.ingest.listen == "127.0.0.1:1935"
    problems = {
        "publish_key": {"listen": "0.0.0.0:1935"},
        "ingest.manage": {"listen": "127.0.0.1:1935", "manage": True},
        "mode: cached": {"listen": "127.0.0.1:1935", "mode": "direct"},
    }
    for words, ingest in problems.items():
        with pytest.raises(ValueError, match=re.escape(words)):
            Config.model_validate({"ingest": ingest})
    lan = {"listen": "0.0.0.0:1935", "publish_key": "k-0123456789abcdef"}
    assert Config.model_validate({"ingest": lan}).ingest.publish_key == "k-0123456789abcdef"
    # mqttrelay answers every guess itself: a short key, or one a URL would mangle, is refused
    for weak in ("k-0123", "a+b%41-0123456789"):
        with pytest.raises(ValueError, match="16 or more letters"):
            Config.model_validate({"ingest": {"listen": "0.0.0.0:1935", "publish_key": weak}})


def test_enhanced_rtmp_check_names_old_ffmpeg() -> None:
    assert ffmpeg_version("ffmpeg version 5.1.9-0+deb12u1 Copyright") == (5, 1)
    assert ffmpeg_version("ffmpeg version n9.0.2-17-g2a571b6068 Copyright") == (9, 0)
    assert ffmpeg_version("ffmpeg version N-112233-gabc Copyright") is None
    problem = enhanced_rtmp_problem("/usr/bin/ffmpeg", "ffmpeg version 5.1.9-0+deb12u1")
    assert problem is not None and "HEVC" in problem and "5.1" in problem
    assert enhanced_rtmp_problem("ffmpeg", "ffmpeg version 6.1.1") is None


_amf_values = st.recursive(
    st.none()
    | st.booleans()
    | st.floats(allow_nan=False)
    | st.text(max_size=20)
    | st.sampled_from(["connect", "publish", "createStream", "FCUnpublish", "@setDataFrame"]),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


@given(st.lists(st.tuples(st.sampled_from([1, 4, 5, 6, 8, 9, 15, 17, 18, 20]),
                          st.lists(_amf_values, max_size=5)), max_size=12))  # fmt: skip
@settings(max_examples=300, deadline=None)
def test_session_fuzz_with_amf_messages(messages: list[tuple[int, list[Any]]]) -> None:
    """Well-formed chunks of arbitrary AMF commands after a valid connect: the
    session raises only ProtocolError/AmfError and never publishes unasked."""
    reader, session = ChunkReader(), Session()
    data = _publisher_bytes()[0]
    for type_id, values in messages:
        payload = amf0.encode(*values)
        if type_id == 1:
            payload = struct.pack(">I", 1 + len(payload) % 5000)
        data += encode_message(3, type_id, 1, 0, payload, reader.chunk_size)
        if type_id == 1:
            break  # the writer would need the new size from here on
    try:
        for message in reader.feed(data):
            session.handle(message)
    except (amf0.AmfError, ProtocolError):
        return
    assert not session.publishing  # only accept_publish publishes


def test_session_info_names_e_rtmp_audio() -> None:
    opus = FlvTag(TagType.AUDIO, 0, bytes([0x90]) + b"Opus" + b"OpusHead")
    hevc = FlvTag(TagType.VIDEO, 0, bytes([0x90]) + b"hvc1" + b"conf")
    info = describe_session(None, hevc, opus)
    assert (info.video_codec, info.audio_codec) == ("HEVC", "Opus")


def test_eviction_drops_least_progress_then_longest_idle() -> None:
    obs = Candidate(Progress.HANDSHAKING, 50.0)
    idle_old, idle_new = Candidate(Progress.CONNECTED, 1.0), Candidate(Progress.CONNECTED, 99.0)
    connected = Candidate(Progress.APP, 10.0)
    assert eviction_victim([(obs, "obs"), (idle_new, "new"), (idle_old, "old")]) == "old"
    assert eviction_victim([(connected, "app"), (obs, "obs")]) == "obs"
    assert eviction_victim([(connected, "app"), (Candidate(Progress.APP, 5.0), "b")]) == "b"
    assert eviction_victim([(Candidate(Progress.HANDSHAKEN, 1.0), "h"), (connected, "a")]) == "h"
    assert eviction_victim([]) is None
