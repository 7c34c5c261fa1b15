"""Enhanced RTMP media payloads made single-track (pure, no I/O).

An RTMP audio/video message payload is exactly an FLV tag's payload. E-RTMP
(v1: FourCC headers for HEVC, AV1, VP9; v2: multitrack, Opus, AC-3, FLAC)
marks its headers with bit 7 of the first video byte or sound format 9. What
the hub gets is one track, the one with id 0 (OBS's main output): a multitrack
packet gives up its track 0 and other tracks are dropped (multitrack sources
are a later step). H.264 and AAC in FourCC form become classic FLV, which every
ffmpeg and platform reads; other codecs stay E-RTMP v1.
"""

from __future__ import annotations

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
    """The payload the hub gets for a video message, or None to drop it."""
    if not data or not data[0] & EX_VIDEO:
        return data  # classic FLV video
    frame_type = (data[0] >> 4) & 0x07
    packet_type = data[0] & 0x0F
    if packet_type == V_MODEX:
        return None  # v2 modifier packets (nanosecond offsets): not needed downstream
    found = _fourcc_body(data, packet_type, V_MULTITRACK)
    if found is None:
        return None
    packet_type, fourcc, body = found
    if fourcc == b"avc1":
        return _classic_avc(frame_type, packet_type, body)
    return bytes([EX_VIDEO | frame_type << 4 | packet_type]) + fourcc + body


def audio_track0(data: bytes) -> bytes | None:
    """The payload the hub gets for an audio message, or None to drop it."""
    if not data or data[0] >> 4 != EX_AUDIO_FORMAT:
        return data  # classic FLV audio
    packet_type = data[0] & 0x0F
    if packet_type == A_MODEX:
        return None
    found = _fourcc_body(data, packet_type, A_MULTITRACK)
    if found is None:
        return None
    packet_type, fourcc, body = found
    if fourcc == b"mp4a" and packet_type in (A_SEQ_START, A_CODED):
        return bytes([_AAC_FIRST_BYTE, 0 if packet_type == A_SEQ_START else 1]) + body
    return bytes([EX_AUDIO_FORMAT << 4 | packet_type]) + fourcc + body


def _fourcc_body(data: bytes, packet_type: int, multitrack: int) -> tuple[int, bytes, bytes] | None:
    """(packet type, FourCC, body) of an extended video or audio payload (its track 0
    when it is a multitrack packet), or None when it is too short."""
    if packet_type == multitrack:
        return _track0(data)
    if len(data) < 5:
        return None
    return packet_type, data[1:5], data[5:]


def _track0(data: bytes) -> tuple[int, bytes, bytes] | None:
    """(packet type, FourCC, body) of track 0 of a multitrack packet, or None."""
    if len(data) < 2:
        return None
    multitrack_type, packet_type = data[1] >> 4, data[1] & 0x0F
    pos = 2
    fourcc = b""
    if multitrack_type != MANY_TRACKS_MANY_CODECS:
        fourcc, pos = data[pos : pos + 4], pos + 4
    while pos < len(data):
        if multitrack_type == MANY_TRACKS_MANY_CODECS:
            fourcc, pos = data[pos : pos + 4], pos + 4
        if pos >= len(data):
            return None
        track_id = data[pos]
        pos += 1
        if multitrack_type == ONE_TRACK:
            size = len(data) - pos
        else:
            if pos + 3 > len(data):
                return None
            size = int.from_bytes(data[pos : pos + 3], "big")
            pos += 3
        body = data[pos : pos + size]
        if track_id == 0:
            return (packet_type, fourcc, body) if len(fourcc) == 4 else None
        pos += size
    return None


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
