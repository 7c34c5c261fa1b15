"""Pure helpers around ffmpeg: argv building and progress parsing."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from urllib.parse import urlsplit

# Probing ends as soon as audio and video are both known, but never maps audio
# alone: -analyzeduration must outlast one keyframe interval (DESIGN.md).
FAST_PROBE = ["-fpsprobesize", "0", "-analyzeduration", "5000000"]
# Read timeout for RTMP inputs, in microseconds (-timeout means "listen" there).
INPUT_RW_TIMEOUT_US = "10000000"
STATS_PERIOD_S = "1"
# The RTMP input's demuxer: live_flv mends the timestamp jump back to zero when
# OBS publishes again to a player that stayed connected (idle_streams on),
# where the plain flv demuxer lets the muxer clamp every later timestamp.
RTMP_INPUT = ["-f", "live_flv"]


def _output_options(target: str) -> list[str]:
    scheme = urlsplit(target).scheme.lower()
    if scheme == "srt":
        return ["-f", "mpegts", target]
    opts = ["-f", "flv", "-flvflags", "no_duration_filesize"]
    if scheme == "rtmp":
        # Small-packet delays cost ~180 ms of the RTMP handshake (DESIGN.md).
        opts += ["-tcp_nodelay", "1"]
    return [*opts, target]


def _common(ffmpeg: str) -> list[str]:
    return [ffmpeg, "-hide_banner", "-nostats", "-loglevel", "error"]


def build_tap_argv(ffmpeg: str, ingest_url: str) -> list[str]:
    """The one process that reads the ingest and writes FLV to its stdout.

    No read timeout: it waits at the ingest for OBS (idle_streams on), and the
    hub notices a stall by itself (hub.SILENCE_END_S).
    """
    return [
        *_common(ffmpeg),
        "-nostdin",
        *FAST_PROBE,
        *RTMP_INPUT,
        "-i",
        ingest_url,
        "-map",
        "0:v?",
        "-map",
        "0:a?",
        "-c",
        "copy",
        "-f",
        "flv",
        "-flvflags",
        "no_duration_filesize",
        "pipe:1",
    ]


def build_relay_argv(
    ffmpeg: str, target: str, ingest_url: str | None = None, tcurl: str | None = None
) -> list[str]:
    """A relay to one destination; stats go to stdout as -progress blocks.

    With ingest_url None the relay reads FLV from its stdin (cached mode);
    otherwise it pulls the ingest itself (direct mode). tcurl: the tcUrl the
    platform sees when target is a local TLS tunnel (tls_tunnel.py).
    """
    argv = [*_common(ffmpeg), "-progress", "pipe:1", "-stats_period", STATS_PERIOD_S]
    if ingest_url is None:
        argv += [*FAST_PROBE, "-f", "flv", "-i", "pipe:0"]
    else:
        argv += ["-nostdin", "-rw_timeout", INPUT_RW_TIMEOUT_US, *FAST_PROBE, *RTMP_INPUT]
        argv += ["-i", ingest_url]
    argv += ["-map", "0:v?", "-map", "0:a?", "-c", "copy"]
    if tcurl is not None:
        argv += ["-rtmp_tcurl", tcurl]
    return argv + _output_options(target)


def build_test_source_argv(
    ffmpeg: str,
    url: str,
    gop_frames: int = 50,
    size: str = "320x240",
    rate: int = 25,
    sample_rate: int = 44100,
    channels: int = 1,
) -> list[str]:
    """A stand-in for OBS: colour bars and a tone, H.264 + AAC, a keyframe every
    gop_frames (2 s at 25 fps), published in real time."""
    source = (
        "-hide_banner -loglevel error -nostdin -re"
        f" -f lavfi -i testsrc=size={size}:rate={rate}"
        f" -f lavfi -i sine=frequency=440:sample_rate={sample_rate}"
        " -c:v libx264 -preset ultrafast -tune zerolatency -pix_fmt yuv420p -b:v 400k"
        f" -g {gop_frames} -keyint_min {gop_frames}"
        f" -c:a aac -b:a 64k -ac {channels} -f flv"
    )
    return [ffmpeg, *source.split(), url]


@dataclass(frozen=True, slots=True)
class Progress:
    """One -progress block."""

    total_size: int | None
    out_time_us: int | None
    speed: str | None
    ended: bool


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
        key, sep, value = line.strip().partition("=")
        if not sep:
            return None
        if key != "progress":
            self._fields[key] = value.strip()
            return None
        fields, self._fields = self._fields, {}
        return Progress(
            total_size=_int_or_none(fields.get("total_size")),
            out_time_us=_int_or_none(fields.get("out_time_us") or fields.get("out_time_ms")),
            speed=fields.get("speed"),
            ended=value.strip() == "end",
        )


def _int_or_none(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return int(value)
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
