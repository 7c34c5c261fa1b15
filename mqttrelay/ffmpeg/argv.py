"""Every ffmpeg and ffprobe command line mqttrelay runs, as pure functions."""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from mqttrelay.config.ingest import IngestMode
from mqttrelay.config.profiles import ProfileConfig
from mqttrelay.ffmpeg.output import StreamShape

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
FLV_OUT = ["-f", "flv", "-flvflags", "no_duration_filesize"]
# A relay's muxer writes the sound on after at most 0.2 s without a picture: while a
# slow link's relay skips the rest of a group (hub/subscription.py), its default (up
# to 10 s) held the sound back until the next keyframe, 1.1-1.7 s of silence at the
# platform (benchmarks/RESULTS.md, shaped link).
RELAY_INTERLEAVE = ["-max_interleave_delta", "200000"]

# output profiles (encoder.py)
VAAPI_DEVICE = "/dev/dri/renderD128"
_DEFAULT_PRESETS = {"libx264": "veryfast", "h264_qsv": "veryfast", "h264_nvenc": "p4"}

# the standby loop (standby.py)
LOOP_S = 2  # whole seconds: the loop holds whole keyframe groups
CARD_TEXT = "We\u2019ll be right back"  # a typographic apostrophe needs no escaping
CARD_COLOUR = "0x1d2733"
# x264 encodes these; anything else is converted to yuv420p (what OBS sends)
PIXEL_FORMATS = ("yuv420p", "yuvj420p", "yuv422p", "yuv444p", "nv12")

# the ingest's picture (snapshot.py)
SNAPSHOT_MAX_WIDTH = 1280


def _output_options(target: str) -> list[str]:
    scheme = urlsplit(target).scheme.lower()
    if scheme == "srt":
        return ["-f", "mpegts", target]
    opts = list(FLV_OUT)
    if scheme == "rtmp":
        # Small-packet delays cost ~180 ms of the RTMP handshake (DESIGN.md).
        opts += ["-tcp_nodelay", "1"]
    return [*opts, target]


def _common(ffmpeg: str) -> list[str]:
    return [ffmpeg, "-hide_banner", "-nostats", "-loglevel", "error"]


def _quiet(ffmpeg: str) -> list[str]:
    """A one-off job on its stdin/stdout: no stats to turn off, no console input."""
    return [ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error"]


def build_tap_argv(ffmpeg: str, ingest_url: str) -> list[str]:
    """The one process that reads the ingest and writes FLV to its stdout.

    No read timeout: it waits at the ingest for OBS (idle_streams on), and the
    hub notices a stall by itself (hub.SILENCE_END_S).
    """
    return [
        *_common(ffmpeg), "-nostdin", *FAST_PROBE, *RTMP_INPUT, "-i", ingest_url,
        "-map", "0:v?", "-map", "0:a?", "-c", "copy", *FLV_OUT, "pipe:1",
    ]  # fmt: skip


def build_relay_argv(
    ffmpeg: str, target: str, mode: IngestMode, ingest_url: str, tcurl: str | None = None
) -> list[str]:
    """A relay to one destination; stats go to stdout as -progress blocks.

    In cached mode the relay reads FLV from its stdin; in direct mode it pulls
    ingest_url itself. tcurl: the tcUrl the platform sees when target is a local
    TLS tunnel (tls_tunnel.py).
    """
    argv = [*_common(ffmpeg), "-progress", "pipe:1", "-stats_period", STATS_PERIOD_S]
    if mode == "cached":
        argv += [*FAST_PROBE, "-f", "flv", "-i", "pipe:0"]
    else:
        argv += ["-nostdin", "-rw_timeout", INPUT_RW_TIMEOUT_US, *FAST_PROBE, *RTMP_INPUT]
        argv += ["-i", ingest_url]
    argv += ["-map", "0:v?", "-map", "0:a?", "-c", "copy", *RELAY_INTERLEAVE]
    if tcurl is not None:
        argv += ["-rtmp_tcurl", tcurl]
    return argv + _output_options(target)


def picture_filter(profile: ProfileConfig) -> str:
    """The -vf chain that makes OBS's picture the profile's size and rate."""
    w, h = profile.width, profile.height
    if profile.fit == "crop":  # fill the box, cut what sticks out (9:16 from 16:9)
        chain = [f"scale={w}:{h}:force_original_aspect_ratio=increase", f"crop={w}:{h}"]
    elif profile.fit == "pad":  # fit in the box, black bars
        chain = [
            f"scale={w}:{h}:force_original_aspect_ratio=decrease:force_divisible_by=2",
            f"pad={w}:{h}:(ow-iw)/2:(oh-ih)/2",
        ]
    else:  # inside the box, aspect ratio kept
        chain = [f"scale={w}:{h}:force_original_aspect_ratio=decrease:force_divisible_by=2"]
    chain.append("setsar=1")
    if profile.fps is not None:
        chain.append(f"fps={profile.fps:g}")
    chain.append("format=nv12,hwupload" if profile.encoder == "h264_vaapi" else "format=yuv420p")
    return ",".join(chain)


def build_profile_argv(ffmpeg: str, profile: ProfileConfig) -> list[str]:
    """An output profile's encoder: FLV from the hub on stdin, the re-encoded
    picture as FLV on stdout, -progress blocks among the errors on stderr."""
    kbps = profile.video_bitrate_kbps
    argv = [*_common(ffmpeg), "-progress", "pipe:2", "-stats_period", STATS_PERIOD_S]
    if profile.encoder == "h264_vaapi":
        argv += ["-vaapi_device", VAAPI_DEVICE]
    argv += [*FAST_PROBE, "-f", "flv", "-i", "pipe:0", "-map", "0:v", "-map", "0:a?"]
    argv += ["-vf", picture_filter(profile), "-c:v", profile.encoder]
    preset = profile.preset or _DEFAULT_PRESETS.get(profile.encoder)
    if preset:
        argv += ["-preset", preset]
    if profile.encoder == "libx264":
        # no lookahead or B-frames: the first picture leaves at once (switch-on),
        # and keyframes only where asked (platforms want them every 2 s)
        argv += ["-tune", "zerolatency", "-sc_threshold", "0"]
    argv += ["-b:v", f"{kbps}k", "-maxrate", f"{kbps}k", "-bufsize", f"{kbps * 2}k"]
    argv += ["-force_key_frames", f"expr:gte(t,n_forced*{profile.keyframe_s:g})"]
    if profile.audio_bitrate_kbps is None:
        argv += ["-c:a", "copy"]
    else:
        argv += ["-c:a", "aac", "-b:a", f"{profile.audio_bitrate_kbps}k"]
    return [*argv, *FLV_OUT, "pipe:1"]


def probe_argv(ffprobe: str) -> list[str]:
    """ffprobe of a session's first seconds (FLV on stdin) -> its streams as JSON."""
    return [ffprobe, "-v", "error", "-show_streams", "-of", "json", "-f", "flv", "-i", "pipe:0"]


def loop_argv(ffmpeg: str, shape: StreamShape, image: Path | None, font: str | None) -> list[str]:
    """ffmpeg that writes LOOP_S seconds of the card (and silence) in this shape as FLV."""
    w, h, rate = shape.width, shape.height, shape.frame_rate
    fps = f"{rate.numerator}/{rate.denominator}"
    gop = max(1, round(float(rate)))  # a keyframe every second
    pix_fmt = shape.pix_fmt if shape.pix_fmt in PIXEL_FORMATS else "yuv420p"
    if image is not None:
        picture = ["-loop", "1", "-framerate", fps, "-i", str(image)]
        fit = f"scale={w}:{h}:force_original_aspect_ratio=decrease,pad={w}:{h}:(ow-iw)/2:(oh-ih)/2,"
    else:
        text = (
            f",drawtext=fontfile={font}:text={CARD_TEXT}:fontcolor=white:"
            "fontsize=h/12:x=(w-text_w)/2:y=(h-text_h)/2"
            if font
            else ""
        )
        picture = ["-f", "lavfi", "-i", f"color=c={CARD_COLOUR}:s={w}x{h}:r={fps}{text}"]
        fit = ""
    argv = [*_quiet(ffmpeg), *picture]
    audio_out: list[str] = ["-an"]
    if shape.sample_rate:
        layout = "mono" if shape.channels == 1 else "stereo"
        argv += [
            "-f",
            "lavfi",
            "-i",
            f"anullsrc=channel_layout={layout}:sample_rate={shape.sample_rate}",
        ]
        audio_out = ["-c:a", "aac", "-b:a", "64k", "-ar", str(shape.sample_rate),
                     "-ac", str(shape.channels or 2)]  # fmt: skip
    return [
        *argv,
        "-t", str(LOOP_S),
        "-vf", f"{fit}format={pix_fmt},setsar=1",
        "-r", fps,
        "-c:v", "libx264", "-preset", "veryfast", "-tune", "stillimage",
        "-g", str(gop), "-keyint_min", str(gop), "-sc_threshold", "0", "-bf", "0",
        *audio_out,
        "-f", "flv", "pipe:1",
    ]  # fmt: skip


def snapshot_argv(ffmpeg: str) -> list[str]:
    """One FLV keyframe on stdin -> one JPEG on stdout, at most 1280 wide."""
    return [
        *_quiet(ffmpeg),
        "-f", "flv", "-i", "pipe:0",
        "-frames:v", "1", "-an",
        "-vf", f"scale='min({SNAPSHOT_MAX_WIDTH},iw)':-2",
        "-q:v", "4", "-f", "image2pipe", "-c:v", "mjpeg", "pipe:1",
    ]  # fmt: skip


def query_argv(ffmpeg: str, what: Literal["-version", "-protocols", "-encoders"]) -> list[str]:
    """What this ffmpeg is and has (ffmpeg_check.py reads the answers with output.py)."""
    return [ffmpeg, "-hide_banner", what]


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
