"""FLV tag reading, classification and timestamp rewriting (pure, no I/O).

Only the container is parsed: an 11-byte tag header, the payload and the
4-byte previous-tag size. Media payloads are looked at for one or two bytes to
tell keyframes and sequence headers apart, never decoded.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum

FLV_SIGNATURE = b"FLV"
HEADER_SIZE = 9
TAG_HEADER_SIZE = 11
PREV_SIZE_LEN = 4
FLAG_AUDIO = 0x04
FLAG_VIDEO = 0x01

# Legacy codec ids (video: high nibble frame type, low nibble codec).
_VIDEO_CODECS_WITH_PACKET_TYPE = {7, 12}  # H.264, HEVC (FLV extension)
_AUDIO_AAC = 10
_FRAME_KEY = 1
_EXT_HEADER_BIT = 0x80  # enhanced RTMP video header
_EXT_PACKET_SEQUENCE_START = 0
_EXT_PACKET_CODED_FRAMES = (1, 3)  # CodedFrames, CodedFramesX (no composition time)
_EXT_AUDIO_FORMAT = 9  # enhanced RTMP audio header: a FourCC follows


class FlvError(ValueError):
    """The byte stream is not valid FLV."""


class TagType(IntEnum):
    AUDIO = 8
    VIDEO = 9
    SCRIPT = 18


@dataclass(frozen=True, slots=True)
class FlvTag:
    type: TagType
    timestamp: int  # milliseconds, the tag's decode time
    data: bytes

    @property
    def is_video(self) -> bool:
        return self.type is TagType.VIDEO

    @property
    def is_audio(self) -> bool:
        return self.type is TagType.AUDIO

    @property
    def is_metadata(self) -> bool:
        return self.type is TagType.SCRIPT

    @property
    def is_keyframe(self) -> bool:
        if not self.is_video or not self.data:
            return False
        first = self.data[0]
        if first & _EXT_HEADER_BIT and (first & 0x0F) not in _EXT_PACKET_CODED_FRAMES:
            return False  # sequence start/end, metadata, multitrack: not a picture
        return ((first >> 4) & 0x07) == _FRAME_KEY and not self.is_sequence_header

    @property
    def is_sequence_header(self) -> bool:
        """Codec configuration (AVC/HEVC decoder record, AAC AudioSpecificConfig)."""
        if len(self.data) < 2:
            return False
        first = self.data[0]
        if self.is_video:
            if first & _EXT_HEADER_BIT:
                return (first & 0x0F) == _EXT_PACKET_SEQUENCE_START
            return (first & 0x0F) in _VIDEO_CODECS_WITH_PACKET_TYPE and self.data[1] == 0
        if self.is_audio:
            if (first >> 4) == _EXT_AUDIO_FORMAT:
                return (first & 0x0F) == _EXT_PACKET_SEQUENCE_START
            return (first >> 4) == _AUDIO_AAC and self.data[1] == 0
        return False

    def with_timestamp(self, timestamp: int) -> FlvTag:
        return FlvTag(self.type, timestamp, self.data)

    def encode(self) -> bytes:
        """The tag as it stands in a file: header, payload, previous-tag size."""
        size = len(self.data)
        if size > 0xFFFFFF:
            raise FlvError(f"tag payload of {size} bytes does not fit in FLV")
        ts = self.timestamp & 0xFFFFFFFF
        header = (
            bytes([int(self.type)])
            + size.to_bytes(3, "big")
            + (ts & 0xFFFFFF).to_bytes(3, "big")
            + bytes([(ts >> 24) & 0xFF])
            + b"\x00\x00\x00"
        )
        return header + self.data + struct.pack(">I", TAG_HEADER_SIZE + size)


def encode_header(*, audio: bool, video: bool) -> bytes:
    """An FLV file header followed by PreviousTagSize0."""
    flags = (FLAG_AUDIO if audio else 0) | (FLAG_VIDEO if video else 0)
    return FLV_SIGNATURE + bytes([1, flags]) + struct.pack(">I", HEADER_SIZE) + b"\x00" * 4


@dataclass(frozen=True, slots=True)
class FlvHeader:
    audio: bool
    video: bool


class FlvReader:
    """Incremental reader: feed() bytes as they arrive, get complete tags back.

    Raises FlvError (and nothing else) on input that is not FLV; after an
    error the reader must be discarded.
    """

    def __init__(self) -> None:
        self._buf = bytearray()
        self.header: FlvHeader | None = None

    @property
    def pending(self) -> int:
        """Bytes held back waiting for the rest of a tag."""
        return len(self._buf)

    def feed(self, chunk: bytes) -> list[FlvTag]:
        self._buf += chunk
        tags: list[FlvTag] = []
        if self.header is None and not self._read_header():
            return tags
        pos = 0
        buf = self._buf
        while len(buf) - pos >= TAG_HEADER_SIZE:
            tag_type = buf[pos]
            if tag_type & 0x20:
                raise FlvError("encrypted FLV tags are not supported")
            if tag_type not in (8, 9, 18):
                raise FlvError(f"unknown FLV tag type {tag_type} at byte {pos}")
            size = int.from_bytes(buf[pos + 1 : pos + 4], "big")
            end = pos + TAG_HEADER_SIZE + size + PREV_SIZE_LEN
            if len(buf) < end:
                break
            ts = int.from_bytes(buf[pos + 4 : pos + 7], "big") | (buf[pos + 7] << 24)
            prev = int.from_bytes(buf[end - PREV_SIZE_LEN : end], "big")
            if prev != TAG_HEADER_SIZE + size:
                raise FlvError(
                    f"previous-tag size {prev} does not match tag size {TAG_HEADER_SIZE + size}"
                )
            data = bytes(buf[pos + TAG_HEADER_SIZE : end - PREV_SIZE_LEN])
            tags.append(FlvTag(TagType(tag_type), _signed32(ts), data))
            pos = end
        del buf[:pos]
        return tags

    def _read_header(self) -> bool:
        buf = self._buf
        probe = bytes(buf[:3])
        if not FLV_SIGNATURE.startswith(probe):
            raise FlvError("input does not start with an FLV signature")
        if len(buf) < HEADER_SIZE + PREV_SIZE_LEN:
            return False
        offset = int.from_bytes(buf[5:9], "big")
        if offset < HEADER_SIZE or offset > 1024:
            raise FlvError(f"implausible FLV header size {offset}")
        if len(buf) < offset + PREV_SIZE_LEN:
            return False
        flags = buf[4]
        self.header = FlvHeader(audio=bool(flags & FLAG_AUDIO), video=bool(flags & FLAG_VIDEO))
        del buf[: offset + PREV_SIZE_LEN]
        return True


def _signed32(value: int) -> int:
    return value - (1 << 32) if value & 0x80000000 else value


class TimestampRewriter:
    """Keeps output timestamps increasing across ingest sessions.

    Each new session (the tap restarted after OBS came back) usually starts
    again near zero; its tags are shifted so that the first one follows the
    last one sent, plus the wall-clock gap between them, so a platform sees a
    pause rather than time going backwards.
    """

    def __init__(self) -> None:
        self._offset: int | None = None
        self._last_out: int | None = None
        self._pending_gap_ms = 0

    @property
    def last_timestamp(self) -> int | None:
        return self._last_out

    def new_session(self, gap_ms: int) -> None:
        self._offset = None
        self._pending_gap_ms = max(0, gap_ms)

    def rewrite(self, tag: FlvTag) -> FlvTag:
        if self._offset is None:
            if self._last_out is None:
                self._offset = 0
            else:
                self._offset = self._last_out + max(1, self._pending_gap_ms) - tag.timestamp
        out = tag.timestamp + self._offset
        if self._last_out is None or out > self._last_out:
            self._last_out = out
        return tag.with_timestamp(out)
