"""The ffmpeg of an output profile: FLV from the hub on stdin, the re-encoded
picture as FLV on stdout, progress on stderr (pure)."""

from __future__ import annotations

from dataclasses import dataclass

from mqttrelay.config.profiles import ProfileConfig
from mqttrelay.ffmpeg.argv import FAST_PROBE

VAAPI_DEVICE = "/dev/dri/renderD128"
_DEFAULT_PRESETS = {"libx264": "veryfast", "h264_qsv": "veryfast", "h264_nvenc": "p4"}


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
    kbps = profile.video_bitrate_kbps
    argv = [ffmpeg, "-hide_banner", "-nostats", "-loglevel", "error"]
    argv += ["-progress", "pipe:2", "-stats_period", "1"]
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
    return [*argv, "-f", "flv", "-flvflags", "no_duration_filesize", "pipe:1"]


@dataclass(frozen=True)
class EncoderProgress:
    speed: float | None  # media time per wall time: below 1, it falls behind
    dropped_frames: int
    fps: float | None


def parse_progress_block(fields: dict[str, str]) -> EncoderProgress:
    """One -progress block's key=value fields."""

    def number(name: str) -> float | None:
        try:
            return float(fields.get(name, "").rstrip("x"))
        except ValueError:
            return None

    return EncoderProgress(
        speed=number("speed"), dropped_frames=int(number("drop_frames") or 0), fps=number("fps")
    )


def encoders_listed(text: str) -> set[str]:
    """`ffmpeg -encoders` -> the encoder names (" V....D libx264  ...")."""
    names = set()
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 2 and len(parts[0]) == 6 and parts[0][0] in "VAS" and parts[1] != "=":
            names.add(parts[1])
    return names
