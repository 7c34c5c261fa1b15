"""Reading what ffmpeg and ffprobe write (pure): -progress blocks, live bitrate,
the listings of `ffmpeg -version/-protocols/-encoders`, ffprobe's streams.

Lines that are not -progress fields are ffmpeg's messages: they may carry a
stream key, so whoever shows them masks them first (lib/redact.py).
"""

from __future__ import annotations

import json
import re
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from typing import TypeVar

N = TypeVar("N", int, float)


@dataclass(frozen=True, slots=True)
class Progress:
    """One -progress block; None where ffmpeg does not know yet (N/A)."""

    total_size: int | None = None
    out_time_us: int | None = None
    speed: float | None = None  # media time per wall time: below 1, it falls behind
    fps: float | None = None
    dropped_frames: int = 0
    ended: bool = False


def progress_field(line: str) -> tuple[str, str] | None:
    """A -progress line's (key, value); None for anything else (a message)."""
    key, sep, value = line.strip().partition("=")
    if not sep or not key or " " in key:
        return None
    return key, value.strip()


class ProgressParser:
    """Collects key=value lines; returns a Progress at each block's end."""

    def __init__(self) -> None:
        self._fields: dict[str, str] = {}
        self._partial = ""

    def feed(self, text: str) -> list[Progress]:
        """Any piece of the output (one read); a line cut in two is kept for the next."""
        lines = (self._partial + text).split("\n")
        self._partial = lines.pop()
        return [p for line in lines if (p := self.feed_line(line)) is not None]

    def feed_line(self, line: str) -> Progress | None:
        """One line: the block it ends, or None (a field kept, or not a field at all)."""
        field = progress_field(line)
        if field is None:
            return None
        key, value = field
        if key != "progress":
            self._fields[key] = value
            return None
        fields, self._fields = self._fields, {}
        return Progress(
            total_size=_number(fields.get("total_size"), int),
            out_time_us=_number(fields.get("out_time_us") or fields.get("out_time_ms"), int),
            speed=_number(fields.get("speed", "").rstrip("x"), float),
            fps=_number(fields.get("fps"), float),
            dropped_frames=_number(fields.get("drop_frames"), int) or 0,
            ended=value == "end",
        )


def _number(value: str | None, kind: Callable[[str], N]) -> N | None:
    """The field as `kind`; None where it is missing or not a number."""
    if value is None:
        return None
    try:
        return kind(value)
    except ValueError:
        return None  # ffmpeg writes N/A before it knows


def bitrate_kbps(bytes_before: int, bytes_after: int, seconds: float) -> float:
    """Live bitrate from the change in total_size over a wall-clock interval."""
    if seconds <= 0 or bytes_after < bytes_before:
        return 0.0
    return round((bytes_after - bytes_before) * 8 / 1000 / seconds, 1)


class BitrateMeter:
    """Live kbit/s from total_size samples over the last window_s seconds.

    The first settle_s are only a baseline: they hold the burst of the cached
    keyframe group, which is not the stream's rate.
    """

    def __init__(self, window_s: float = 3.0, settle_s: float = 1.0) -> None:
        self._window_s = window_s
        self._settle_s = settle_s
        self._first_at: float | None = None
        self._samples: deque[tuple[float, int]] = deque()

    def add(self, at: float, total_size: int) -> float:
        if self._first_at is None:
            self._first_at = at
        if at - self._first_at < self._settle_s:
            self._samples = deque([(at, total_size)])  # still the burst: a new baseline
            return 0.0
        self._samples.append((at, total_size))
        while len(self._samples) > 2 and at - self._samples[1][0] >= self._window_s:
            self._samples.popleft()
        if len(self._samples) < 2:
            return 0.0
        start_at, start_size = self._samples[0]
        return bitrate_kbps(start_size, total_size, at - start_at)


def last_line(output: bytes) -> str | None:
    """The last line a finished ffmpeg wrote (its reason), or None if it wrote nothing."""
    lines = output.decode("utf-8", "replace").strip().splitlines()
    return lines[-1] if lines else None


# -- listings -------------------------------------------------------------------
def ffmpeg_version(text: str) -> tuple[int, int] | None:
    """`ffmpeg -version`'s first line -> (major, minor); None for a git build."""
    match = re.match(r"ffmpeg version n?(\d+)\.(\d+)", text)
    return (int(match[1]), int(match[2])) if match else None


def output_protocols(text: str) -> set[str]:
    """`ffmpeg -protocols` -> the names listed under "Output:"."""
    names: set[str] = set()
    section = ""
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.endswith(":"):
            section = stripped[:-1].lower()
        elif section == "output" and stripped:
            names.add(stripped)
    return names


def encoders_listed(text: str) -> set[str]:
    """`ffmpeg -encoders` -> the encoder names (" V....D libx264  ...")."""
    names = set()
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 2 and len(parts[0]) == 6 and parts[0][0] in "VAS" and parts[1] != "=":
            names.add(parts[1])
    return names


# -- ffprobe ----------------------------------------------------------------------
@dataclass(frozen=True)
class StreamShape:
    """What the platforms were receiving, as the standby loop must match it."""

    width: int
    height: int
    frame_rate: Fraction
    pix_fmt: str
    sample_rate: int | None  # None: the session had no audio
    channels: int | None

    def describe(self) -> str:
        audio = f", {self.sample_rate} Hz x{self.channels}" if self.sample_rate else ""
        return f"{self.width}x{self.height} {float(self.frame_rate):.3g} fps {self.pix_fmt}{audio}"


def parse_probe(text: str) -> StreamShape | None:
    """ffprobe's `-show_streams -of json` output -> the shape, or None if it has no video."""
    try:
        streams = json.loads(text).get("streams", [])
    except (json.JSONDecodeError, AttributeError):
        return None
    video = next((s for s in streams if s.get("codec_type") == "video"), None)
    audio = next((s for s in streams if s.get("codec_type") == "audio"), None)
    if video is None:
        return None
    try:
        rate = _rate(video.get("avg_frame_rate"))
        if not 1 <= rate <= 240:
            rate = _rate(video.get("r_frame_rate"))
        width, height = int(video["width"]), int(video["height"])
        sample_rate = int(audio["sample_rate"]) if audio else None
        channels = int(audio["channels"]) if audio else None
    except (KeyError, ValueError, ZeroDivisionError, TypeError):
        return None
    if not (1 <= rate <= 240 and 16 <= width <= 8192 and 16 <= height <= 8192):
        return None
    return StreamShape(
        width,
        height,
        rate.limit_denominator(1001),
        video.get("pix_fmt") or "yuv420p",
        sample_rate,
        channels,
    )


def _rate(text: object) -> Fraction:
    """ffprobe's "30000/1001"; 0 for "0/0" or anything unreadable."""
    try:
        return Fraction(str(text))
    except (ValueError, ZeroDivisionError):
        return Fraction(0)
