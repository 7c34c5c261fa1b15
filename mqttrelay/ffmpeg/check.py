"""Is this path an ffmpeg mqttrelay can use? It is checked before the settings
take it: a regular executable nobody else may change, that says it is ffmpeg
and that has the protocols relays need."""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Mapping
from pathlib import Path

from mqttrelay.config.profiles import ProfileConfig
from mqttrelay.ffmpeg import encoders_listed, ffmpeg_version, output_protocols, query_argv
from mqttrelay.lib import process

CHECK_TIMEOUT_S = 10.0
# what relays write with: rtmp:// and srt:// destinations; rtmps:// needs TLS
NEEDED_PROTOCOLS = {"rtmp": ("rtmp",), "rtmps": ("rtmps", "tls"), "srt": ("srt",)}


def missing_protocols(protocols: set[str]) -> list[str]:
    return [name for name, any_of in NEEDED_PROTOCOLS.items() if not protocols & set(any_of)]


def file_problem(path: str) -> str | None:
    """Why this path is not a program mqttrelay should run, or None."""
    if not path or path.startswith("-") or any(c in path for c in "\n\r\x00"):
        return "give the path of the ffmpeg program (e.g. /usr/bin/ffmpeg)"
    if not Path(path).name.startswith("ffmpeg"):
        return f"{path}: not named ffmpeg (mqttrelay runs only a program called ffmpeg…)"
    found = shutil.which(path) if os.sep not in path else path
    if found is None:
        return f"{path}: not found on PATH"
    target = Path(found)
    try:
        info = target.stat()
    except OSError as exc:
        return f"{path}: {exc.strerror or exc}"
    if not stat.S_ISREG(info.st_mode) or not os.access(target, os.X_OK):
        return f"{path}: not an executable file"
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH) or info.st_uid not in (0, os.geteuid()):
        return f"{path}: other users can change it; use an ffmpeg owned by root or this user"
    return None


async def _output(argv: list[str], owner: str) -> tuple[int, str]:
    code, out, _ = await process.run_to_end(argv, owner, None, CHECK_TIMEOUT_S)
    return code, out.decode("utf-8", "replace")


async def ffmpeg_problem(path: str, owner: str) -> str | None:
    """None if `path` is a usable ffmpeg, else one line saying what is wrong."""
    problem = file_problem(path)
    if problem is not None:
        return problem
    try:
        code, version = await _output(query_argv(path, "-version"), owner)
        if code != 0 or not version.startswith("ffmpeg version"):
            return f"{path}: this is not ffmpeg (`{path} -version` does not say 'ffmpeg version')"
        code, listing = await _output(query_argv(path, "-protocols"), owner)
    except TimeoutError:
        return f"{path}: did not answer within {CHECK_TIMEOUT_S:.0f} s"
    except OSError as exc:
        return f"{path}: cannot run it: {exc.strerror or exc}"
    missing = missing_protocols(output_protocols(listing))
    if code != 0 or missing:
        return f"{path}: this ffmpeg cannot write {', '.join(missing) or 'any protocol'}"
    return None


async def encoder_problems(ffmpeg: str, profiles: Mapping[str, ProfileConfig]) -> list[str]:
    """One line per profile whose encoder this ffmpeg lacks (`ffmpeg -encoders`)."""
    if not profiles:
        return []
    try:
        _, listing = await _output(query_argv(ffmpeg, "-encoders"), "mqttrelay-check")
    except (OSError, TimeoutError) as exc:
        return [f"ffmpeg.path: cannot run {ffmpeg} -encoders: {exc}"]
    have = encoders_listed(listing)
    return [
        f"profiles.{name}.encoder: {p.encoder} is not in this ffmpeg ({ffmpeg} -encoders); "
        f"it has {', '.join(sorted(e for e in have if e.startswith(('libx264', 'h264'))))}"
        for name, p in profiles.items()
        if p.encoder not in have
    ]


# Enhanced RTMP (HEVC, AV1, VP9 in FLV) came in ffmpeg 6.1, multitrack and new
# audio codecs in 8.0: an older relay reads none of it from the hub.
ENHANCED_RTMP_SINCE = (6, 1)


def enhanced_rtmp_problem(path: str, version_text: str) -> str | None:
    """What this ffmpeg cannot relay from the built-in ingest, or None."""
    version = ffmpeg_version(version_text)
    if version is None or version >= ENHANCED_RTMP_SINCE:
        return None
    return (
        f"{path} is ffmpeg {version[0]}.{version[1]}, which reads and writes no Enhanced RTMP: "
        "HEVC, AV1 or VP9 from OBS cannot be relayed (H.264 can); set ffmpeg.path to an ffmpeg "
        "6.1 or later (e.g. the one in the imageio-ffmpeg wheel)"
    )


async def ffmpeg_enhanced_rtmp_problem(path: str, owner: str) -> str | None:
    try:
        _, version = await _output(query_argv(path, "-version"), owner)
    except (OSError, TimeoutError):
        return None  # ffmpeg_problem says why it cannot run
    return enhanced_rtmp_problem(path, version)
