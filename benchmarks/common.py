"""What the benchmark parts share: when a stream has arrived at the platform."""

from __future__ import annotations

from tests.support import StatStream

MEDIA_BYTES = 4000  # headers alone are under 1 KB; the first keyframe is several KB


def arrived(stream: StatStream | None) -> bool:
    """Publishing, both codecs known, and media (not only headers) in."""
    return bool(
        stream
        and stream.publishing
        and stream.video_codec
        and stream.audio_codec
        and stream.bytes_in >= MEDIA_BYTES
    )
