"""Whether a backup feed may stand in for a source (pure).

A backup's picture goes to the primary's platforms on the same connections, so
their decoders must take it as the same stream going on: same size, frame rate
and audio layout. Feeds that differ are refused (the standby picture, or holding,
stands in instead) rather than re-encoded: a re-encode would need an encoder
running for every backup pairing, all the time, to switch within a keyframe."""

from __future__ import annotations

from dataclasses import dataclass

from mqttrelay.ingest.session_info import describe_session
from mqttrelay.lib.flv import FlvTag


@dataclass(frozen=True)
class FeedShape:
    width: int | None
    height: int | None
    fps: float | None
    audio: bytes | None  # the AAC AudioSpecificConfig: sample rate and channels

    def describe(self) -> str:
        fps = f"{self.fps:g} fps" if self.fps else "? fps"
        size = f"{self.width}x{self.height}" if self.width else "?x?"
        return f"{size}, {fps}, audio {audio_layout(self.audio)}"


def audio_layout(config: bytes | None) -> str:
    """'44100 Hz 2 ch' from an AudioSpecificConfig, or 'none'."""
    if not config or len(config) < 2:
        return "none"
    rates = (96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000)
    index = ((config[0] & 0x07) << 1) | (config[1] >> 7)
    channels = (config[1] >> 3) & 0x0F
    rate = rates[index] if index < len(rates) else 0
    return f"{rate} Hz {channels} ch"


def feed_shape(headers: dict[str, FlvTag]) -> FeedShape:
    """From a session's metadata and codec headers ("meta", "video", "audio")."""
    info = describe_session(headers.get("meta"), headers.get("video"), headers.get("audio"))
    audio = headers.get("audio")
    return FeedShape(
        info.width,
        info.height,
        round(info.fps, 2) if info.fps else None,
        bytes(audio.data[2:]) if audio is not None and len(audio.data) > 2 else None,
    )


def pairing_problem(primary: FeedShape | None, backup: FeedShape) -> str | None:
    """Why the backup cannot stand in for the primary, or None. A primary never
    seen yet has no shape the platforms expect: any backup fits."""
    if primary is None or primary == backup:
        return None
    return (
        f"the backup is {backup.describe()}, the primary was {primary.describe()}: a "
        "backup must have the same size, frame rate and audio layout"
    )
