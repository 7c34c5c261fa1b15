"""What OBS says it sends: the onMetaData tag (AMF0) and the codec headers of
a session, as resolution, frame rate, codecs and bitrate (pure)."""

from __future__ import annotations

import struct
from dataclasses import dataclass

from mqttrelay.ingest.avc_size import avc_size
from mqttrelay.lib.flv import FlvTag

_VIDEO_CODECS = {2: "H.263", 4: "VP6", 7: "H.264", 12: "HEVC"}
_AUDIO_CODECS = {2: "MP3", 10: "AAC", 11: "Speex"}
_FOURCC = {b"avc1": "H.264", b"hvc1": "HEVC", b"av01": "AV1", b"vp09": "VP9"}
_AUDIO_FOURCC = {  # enhanced RTMP audio (sound format 9)
    b"mp4a": "AAC",
    b"Opus": "Opus",
    b"ac-3": "AC-3",
    b"ec-3": "E-AC-3",
    b"fLaC": "FLAC",
    b".mp3": "MP3",
}
_MAX_DEPTH = 4


@dataclass(frozen=True)
class SessionInfo:
    width: int | None = None
    height: int | None = None
    fps: float | None = None
    video_codec: str | None = None
    audio_codec: str | None = None
    video_kbps: float | None = None  # as OBS announces it (its encoder's target)
    encoder: str | None = None

    @property
    def resolution(self) -> str | None:
        return f"{self.width}x{self.height}" if self.width and self.height else None


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise ValueError("AMF0 value runs past the tag")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def string(self, long: bool = False) -> str:
        size = struct.unpack(">I" if long else ">H", self.take(4 if long else 2))[0]
        return self.take(size).decode("utf-8", "replace")

    def properties(self, depth: int) -> dict[str, object]:
        out: dict[str, object] = {}
        while self.pos < len(self.data):
            name = self.string()
            if not name and self.data[self.pos : self.pos + 1] == b"\x09":
                self.pos += 1  # object end
                break
            out[name] = self.value(depth + 1)
        return out

    def value(self, depth: int = 0) -> object:
        if depth > _MAX_DEPTH:
            raise ValueError("AMF0 nested too deep")
        marker = self.take(1)[0]
        if marker == 0:
            return struct.unpack(">d", self.take(8))[0]
        if marker == 1:
            return self.take(1) != b"\x00"
        if marker == 2:
            return self.string()
        if marker == 0x0C:
            return self.string(long=True)
        if marker in (3, 8):  # object, ECMA array (its count is a hint only)
            if marker == 8:
                self.take(4)
            return self.properties(depth)
        if marker == 0x0A:  # strict array
            count = struct.unpack(">I", self.take(4))[0]
            return [self.value(depth + 1) for _ in range(min(count, 1024))]
        if marker in (5, 6):  # null, undefined
            return None
        if marker == 0x0B:  # date: a double and a time zone
            self.take(10)
            return None
        raise ValueError(f"AMF0 type {marker} is not read here")


def parse_metadata(data: bytes) -> dict[str, object]:
    """An onMetaData script tag's payload -> its properties; {} for anything else."""
    reader = _Reader(data)
    try:
        if reader.value() not in ("onMetaData", "@setDataFrame"):
            return {}
        first = reader.value()
        if first == "onMetaData":  # @setDataFrame wraps it
            first = reader.value()
    except (ValueError, struct.error):
        return {}
    return first if isinstance(first, dict) else {}


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if value == value and 0 < value < 1e9 else None  # not NaN, sane


def _codec(value: object, names: dict[int, str]) -> str | None:
    if isinstance(value, str):
        return _FOURCC.get(value.encode()[:4], value[:16] or None)
    number = _number(value)
    if number is None:
        return None
    code = int(number)
    if code in names:
        return names[code]
    fourcc = code.to_bytes(4, "big") if code < 2**32 else b""
    return _FOURCC.get(fourcc)


def _video_codec_of(tag: FlvTag | None) -> str | None:
    """The codec the video sequence header names (enhanced RTMP: a FourCC)."""
    if tag is None or not tag.data:
        return None
    first = tag.data[0]
    if first & 0x80:
        return _FOURCC.get(tag.data[1:5])
    return _VIDEO_CODECS.get(first & 0x0F)


def _avc_size_of(tag: FlvTag | None) -> tuple[float, float] | None:
    """The size an H.264 sequence header (classic, or avc1 in a FourCC header) says."""
    if tag is None or len(tag.data) < 6 or not tag.is_sequence_header:
        return None
    first = tag.data[0]
    if (first & 0x80 and tag.data[1:5] != b"avc1") or (not first & 0x80 and first & 0x0F != 7):
        return None
    size = avc_size(tag.data[5:])
    return (float(size[0]), float(size[1])) if size else None


def _audio_codec_of(tag: FlvTag | None) -> str | None:
    if tag is None or not tag.data:
        return None
    if tag.data[0] >> 4 == 9:
        return _AUDIO_FOURCC.get(tag.data[1:5])
    return _AUDIO_CODECS.get(tag.data[0] >> 4)


def describe_session(
    metadata: FlvTag | None, video: FlvTag | None, audio: FlvTag | None
) -> SessionInfo:
    props = parse_metadata(metadata.data) if metadata is not None else {}
    width, height = _number(props.get("width")), _number(props.get("height"))
    if not (width and height):  # e.g. a multitrack publish's second picture
        width, height = _avc_size_of(video) or (width, height)
    fps = _number(props.get("framerate")) or _number(props.get("fps"))
    encoder = props.get("encoder")
    return SessionInfo(
        width=int(width) if width else None,
        height=int(height) if height else None,
        fps=round(fps, 2) if fps else None,
        video_codec=_video_codec_of(video) or _codec(props.get("videocodecid"), _VIDEO_CODECS),
        audio_codec=_audio_codec_of(audio) or _codec(props.get("audiocodecid"), _AUDIO_CODECS),
        video_kbps=_number(props.get("videodatarate")),
        encoder=encoder[:64] if isinstance(encoder, str) else None,
    )
