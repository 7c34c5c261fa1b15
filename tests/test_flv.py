from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mqttrelay.lib.flv import (
    FlvError,
    FlvReader,
    FlvTag,
    TagType,
    TimestampRewriter,
    encode_header,
)

AVC_SEQ = FlvTag(TagType.VIDEO, 0, bytes([0x17, 0x00, 0, 0, 0]) + b"avcC")
AVC_KEY = FlvTag(TagType.VIDEO, 0, bytes([0x17, 0x01, 0, 0, 0]) + b"idr")
AVC_INTER = FlvTag(TagType.VIDEO, 40, bytes([0x27, 0x01, 0, 0, 0]) + b"p")
AAC_SEQ = FlvTag(TagType.AUDIO, 0, bytes([0xAF, 0x00, 0x12, 0x10]))
AAC_RAW = FlvTag(TagType.AUDIO, 23, bytes([0xAF, 0x01]) + b"aac")
META = FlvTag(TagType.SCRIPT, 0, b"\x02\x00\x0aonMetaData")

tags_strategy = st.lists(
    st.builds(
        FlvTag,
        st.sampled_from(list(TagType)),
        st.integers(min_value=0, max_value=0x7FFFFFFF),
        st.binary(max_size=300),
    ),
    max_size=20,
)


def test_classification() -> None:
    assert AVC_SEQ.is_sequence_header and not AVC_SEQ.is_keyframe
    assert AVC_KEY.is_keyframe and not AVC_KEY.is_sequence_header
    assert not AVC_INTER.is_keyframe and not AVC_INTER.is_sequence_header
    assert AAC_SEQ.is_sequence_header and AAC_SEQ.is_audio
    assert not AAC_RAW.is_sequence_header
    assert META.is_metadata and not META.is_keyframe
    enhanced_seq = FlvTag(TagType.VIDEO, 0, bytes([0x90]) + b"hvc1")
    assert enhanced_seq.is_sequence_header


def test_roundtrip_in_one_piece() -> None:
    tags = [META, AVC_SEQ, AAC_SEQ, AVC_KEY, AAC_RAW, AVC_INTER]
    data = encode_header(audio=True, video=True) + b"".join(t.encode() for t in tags)
    reader = FlvReader()
    assert reader.feed(data) == tags
    assert reader.header is not None and reader.header.audio and reader.header.video
    assert reader.pending == 0


def test_extended_timestamp() -> None:
    tag = FlvTag(TagType.AUDIO, 0x12345678, b"\xaf\x01x")
    reader = FlvReader()
    assert reader.feed(encode_header(audio=True, video=False) + tag.encode()) == [tag]


@given(tags_strategy, st.lists(st.integers(min_value=1, max_value=97), min_size=1))
def test_roundtrip_in_arbitrary_chunks(tags: list[FlvTag], sizes: list[int]) -> None:
    data = encode_header(audio=True, video=True) + b"".join(t.encode() for t in tags)
    reader = FlvReader()
    out: list[FlvTag] = []
    pos = 0
    n = 0
    while pos < len(data):
        size = sizes[n % len(sizes)]
        out += reader.feed(data[pos : pos + size])
        pos += size
        n += 1
    assert out == tags


@given(st.binary(max_size=2000), st.integers(min_value=1, max_value=500))
def test_arbitrary_bytes_raise_only_flv_error(data: bytes, chunk: int) -> None:
    reader = FlvReader()
    try:
        for pos in range(0, len(data), chunk):
            for tag in reader.feed(data[pos : pos + chunk]):
                assert isinstance(tag, FlvTag)
    except FlvError:
        pass


@given(tags_strategy, st.data())
def test_truncated_or_corrupted_valid_stream(tags: list[FlvTag], data: st.DataObject) -> None:
    blob = bytearray(encode_header(audio=True, video=True) + b"".join(t.encode() for t in tags))
    cut = data.draw(st.integers(min_value=0, max_value=len(blob)))
    del blob[cut:]
    if blob:
        where = data.draw(st.integers(min_value=0, max_value=len(blob) - 1))
        blob[where] = data.draw(st.integers(min_value=0, max_value=255))
    with contextlib.suppress(FlvError):
        assert all(isinstance(tag, FlvTag) for tag in FlvReader().feed(bytes(blob)))


def test_bad_input_errors() -> None:
    with pytest.raises(FlvError, match="signature"):
        FlvReader().feed(b"GIF89a")
    bad_type = encode_header(audio=True, video=True) + bytes([7]) + b"\x00" * 14
    with pytest.raises(FlvError, match="tag type"):
        FlvReader().feed(bad_type)
    good = bytearray(encode_header(audio=True, video=True) + AAC_RAW.encode())
    good[-1] ^= 0xFF
    with pytest.raises(FlvError, match="previous-tag size"):
        FlvReader().feed(bytes(good))


def test_timestamps_continue_across_sessions() -> None:
    rw = TimestampRewriter()
    rw.new_session(0)
    assert [rw.rewrite(AVC_KEY.with_timestamp(t)).timestamp for t in (1000, 1040, 1080)] == [
        1000,
        1040,
        1080,
    ]
    rw.new_session(gap_ms=8000)  # OBS away for 8 s, new session starts at 0
    first = rw.rewrite(AVC_KEY.with_timestamp(0)).timestamp
    assert first == 1080 + 8000
    assert rw.rewrite(AAC_RAW.with_timestamp(23)).timestamp == first + 23


def test_timestamps_never_go_back_with_zero_gap() -> None:
    rw = TimestampRewriter()
    rw.new_session(0)
    rw.rewrite(AVC_KEY.with_timestamp(5000))
    rw.new_session(0)
    assert rw.rewrite(AVC_KEY.with_timestamp(0)).timestamp > 5000
