"""Enhanced RTMP media payloads made single-track (pure, no I/O).

An RTMP audio/video message payload is exactly an FLV tag's payload. E-RTMP
(v1: FourCC headers for HEVC, AV1, VP9; v2: multitrack, Opus, AC-3, FLAC)
marks its headers with bit 7 of the first video byte or sound format 9. What
a hub gets is one track: `video_track(data, n)` and `audio_track(data, n)` take
track n out of a message (a multitrack packet carries one track or many; a
message that is not multitrack is track 0, OBS's main output) and drop the
others. H.264 and AAC in FourCC form become classic FLV (track id 0), which
every ffmpeg and platform reads; other codecs stay E-RTMP v1.
"""

from __future__ import annotations

from collections.abc import Iterator

# video: byte 0 = IsExHeader | FrameType << 4 | VideoPacketType
EX_VIDEO = 0x80
V_SEQ_START, V_CODED, V_SEQ_END, V_CODED_X, V_METADATA, V_MPEG2TS_SEQ, V_MULTITRACK, V_MODEX = (
    range(8)
)
# audio: byte 0 = 9 << 4 | AudioPacketType
EX_AUDIO_FORMAT = 9
A_SEQ_START, A_CODED, A_MULTICHANNEL, A_MULTITRACK, A_MODEX = 0, 1, 4, 5, 7
ONE_TRACK, MANY_TRACKS, MANY_TRACKS_MANY_CODECS = 0, 1, 2
VIDEO_FOURCCS = ("avc1", "hvc1", "av01", "vp09")
AUDIO_FOURCCS = ("mp4a", "Opus", "ac-3", "ec-3", "fLaC", ".mp3")
_AVC_CODEC_ID = 7
_AAC_FIRST_BYTE = 0xAF  # AAC, 44 kHz, 16 bit, stereo (what FLV always says for AAC)


def video_track0(data: bytes) -> bytes | None:
    """The payload the hub gets for a video message's track 0, or None to drop it."""
    return video_track(data, 0)


def audio_track0(data: bytes) -> bytes | None:
    """The payload the hub gets for an audio message's track 0, or None to drop it."""
    return audio_track(data, 0)


def video_track(data: bytes, track: int) -> bytes | None:
    """Track `track` of a video message as a single-track payload, or None when the
    message does not carry it (or carries nothing a hub needs)."""
    if not data or not data[0] & EX_VIDEO:
        return data if track == 0 else None  # classic FLV video: track 0
    frame_type = (data[0] >> 4) & 0x07
    packet_type = data[0] & 0x0F
    if packet_type == V_MODEX:
        return None  # v2 modifier packets (nanosecond offsets): not needed downstream
    found = _fourcc_body(data, packet_type, V_MULTITRACK, track)
    if found is None:
        return None
    packet_type, fourcc, body = found
    if fourcc == b"avc1":
        return _classic_avc(frame_type, packet_type, body)
    return bytes([EX_VIDEO | frame_type << 4 | packet_type]) + fourcc + body


def audio_track(data: bytes, track: int) -> bytes | None:
    """Track `track` of an audio message as a single-track payload, or None."""
    if not data or data[0] >> 4 != EX_AUDIO_FORMAT:
        return data if track == 0 else None  # classic FLV audio: track 0
    packet_type = data[0] & 0x0F
    if packet_type == A_MODEX:
        return None
    found = _fourcc_body(data, packet_type, A_MULTITRACK, track)
    if found is None:
        return None
    packet_type, fourcc, body = found
    if fourcc == b"mp4a":
        if packet_type in (A_SEQ_START, A_CODED):
            return bytes([_AAC_FIRST_BYTE, 0 if packet_type == A_SEQ_START else 1]) + body
        return None  # AAC's channel layout is in its config already; classic FLV has no place
    return bytes([EX_AUDIO_FORMAT << 4 | packet_type]) + fourcc + body


def _fourcc_body(
    data: bytes, packet_type: int, multitrack: int, track: int
) -> tuple[int, bytes, bytes] | None:
    """(packet type, FourCC, body) of an extended video or audio payload's track
    `track` (a payload that is not multitrack is track 0), or None when it is
    too short or does not carry that track."""
    if packet_type == multitrack:
        return _find_track(data, track)
    if track != 0 or len(data) < 5:
        return None
    return packet_type, data[1:5], data[5:]


def _find_track(data: bytes, track: int) -> tuple[int, bytes, bytes] | None:
    """(packet type, FourCC, body) of one track of a multitrack packet, or None."""
    for track_id, fourcc, body in _tracks(data):
        if track_id == track:
            return (data[1] & 0x0F, fourcc, body) if len(fourcc) == 4 else None
    return None


def _tracks(data: bytes) -> Iterator[tuple[int, bytes, bytes]]:
    """(track id, FourCC, body) of each track of a multitrack packet, up to the
    first that does not fit."""
    if len(data) < 2:
        return
    multitrack_type = data[1] >> 4
    pos = 2
    fourcc = b""
    if multitrack_type != MANY_TRACKS_MANY_CODECS:
        fourcc, pos = data[pos : pos + 4], pos + 4
    while pos < len(data):
        if multitrack_type == MANY_TRACKS_MANY_CODECS:
            fourcc, pos = data[pos : pos + 4], pos + 4
        if pos >= len(data):
            return
        track_id = data[pos]
        pos += 1
        if multitrack_type == ONE_TRACK:
            size = len(data) - pos
        else:
            if pos + 3 > len(data):
                return
            size = int.from_bytes(data[pos : pos + 3], "big")
            pos += 3
        yield track_id, fourcc, data[pos : pos + size]
        pos += size


def track_ids(type_id: int, data: bytes) -> list[int]:
    """The track ids an audio (8) or video (9) message carries: [0] unless it
    is a multitrack packet."""
    if not data:
        return []
    if type_id == 9 and data[0] & EX_VIDEO:
        packet_type, multitrack, modex = data[0] & 0x0F, V_MULTITRACK, V_MODEX
    elif type_id == 8 and data[0] >> 4 == EX_AUDIO_FORMAT:
        packet_type, multitrack, modex = data[0] & 0x0F, A_MULTITRACK, A_MODEX
    else:
        return [0]
    if packet_type == modex:
        return []
    if packet_type != multitrack:
        return [0]
    return [track_id for track_id, _, _ in _tracks(data)]


def _classic_avc(frame_type: int, packet_type: int, body: bytes) -> bytes | None:
    """avc1 in a FourCC header as a classic H.264 tag (AVCPacketType and a
    composition time, which CodedFramesX leaves out as zero)."""
    first = bytes([frame_type << 4 | _AVC_CODEC_ID])
    if packet_type == V_CODED:
        return first + b"\x01" + body  # body starts with its 3-byte composition time
    if packet_type == V_CODED_X:
        return first + b"\x01\x00\x00\x00" + body
    if packet_type == V_SEQ_START:
        return first + b"\x00\x00\x00\x00" + body
    if packet_type == V_SEQ_END:
        return first + b"\x02\x00\x00\x00" + body
    return None  # metadata packets have no classic form


def video_codec(data: bytes) -> str | None:
    """The codec a video payload carries: a FourCC, or 'avc1' for classic H.264."""
    if not data:
        return None
    if data[0] & EX_VIDEO:
        if len(data) >= 5 and data[0] & 0x0F not in (V_MULTITRACK, V_MODEX):
            return data[1:5].decode("latin-1")
        return None
    return "avc1" if data[0] & 0x0F == _AVC_CODEC_ID else f"flv{data[0] & 0x0F}"
