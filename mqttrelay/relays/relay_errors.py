"""Why a relay failed, in the platform's terms (pure): a kind, a reason, a hint
and the raw lines behind them.

The patterns are ffmpeg 5.1's and stunnel 5's own lines, as seen against real
servers (tests/test_relay_errors.py holds them): a closed port, a name that does
not resolve, nginx-rtmp refusing the publish, TLS servers failing the handshake.
The lines come in masked (lib/process.read_stderr); the destination comes as its
display URL, so no key can reach a reason.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

ErrorKind = Literal[
    "refused",
    "unreachable",
    "dns",
    "tls",
    "rejected",
    "dropped",
    "timeout",
    "stalled",
    "ffmpeg",
    "codec",
]

# Live at least this long before the platform closed: it ended a running stream
# rather than refusing the key (nginx-rtmp's `deny publish` closes within ~1 s).
DROPPED_AFTER_S = 5.0
DETAIL_LINES = 6
_DEFAULT_PORTS = {"rtmp": 1935, "rtmps": 443, "rtmpt": 80}
KEY_HINT = "check the stream key (TikTok keys change every broadcast)"


@dataclass(frozen=True)
class RelayError:
    kind: ErrorKind
    reason: str
    hint: str
    detail: str  # masked raw lines, newest last

    @property
    def headline(self) -> str:
        """What last_error says: the reason and what to do."""
        return f"{self.reason}: {self.hint}" if self.hint else self.reason


def where(display_url: str) -> str:
    """host:port of a destination, from its display URL (key masked)."""
    parts = urlsplit(display_url)
    host = parts.hostname or "the platform"
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port or _DEFAULT_PORTS.get(parts.scheme.lower())
    except ValueError:
        port = None
    return f"{host}:{port}" if port else host


# ffmpeg: "[tcp @ 0x..] Failed to resolve hostname nosuch.invalid: Name or service not known"
# stunnel: 'Error resolving "nosuch.invalid": Neither nodename nor servname known (EAI_NONAME)'
_DNS = re.compile(r"(?:Failed to resolve hostname (\S+)|Error resolving \"([^\"]+)\"): (.+)")
_NOT_FOUND = ("not known", "No address associated", "EAI_NONAME", "EAI_NODATA")
# ffmpeg: "Connection to tcp://127.0.0.1:1?tcp_nodelay=1 failed: Connection refused"
# stunnel: "s_connect: connect 127.0.0.1:1: Connection refused (111)"
_REFUSED = re.compile(r"Connection refused")
_UNREACHABLE = re.compile(r"(Network is unreachable|No route to host|Connection timed out)")
# ffmpeg's TLS (GnuTLS): "[tls @ 0x..] A TLS fatal alert has been received."
_FFMPEG_TLS = re.compile(r"\[tls @ [^\]]*\] (.+?)\.?$")
# stunnel: "SSL_connect: ../ssl3_record.c:350: error:0A00010B:SSL routines::wrong version number"
_STUNNEL_TLS = re.compile(r"SSL_\w+: .*SSL routines:[^:]*:(.+)$")
_NOT_TLS = ("wrong version number", "unexpected TLS packet", "packet length too long")
# "[rtmp @ 0x..] Server error: Already publishing"
_SERVER_ERROR = re.compile(r"Server error: (.+)")
# Writing to a connection the server closed after the publish (the key):
# "av_interleaved_write_frame(): Connection reset by peer" (or Broken pipe), then
# "Error writing trailer of rtmp://...: ..." and "Error closing file rtmp://...: ...".
# A reset during the RTMP handshake ("Cannot read RTMP handshake response") is not one.
_CLOSED_WHILE_WRITING = re.compile(
    r"(?:av_interleaved_write_frame\(\)|Error writing trailer|Error closing file)"
    r".*: (?:Broken pipe|Connection reset by peer|End of file)$"
)


def exited(
    lines: Sequence[str], code: int | None, display_url: str, live_s: float = 0.0
) -> RelayError:
    """ffmpeg (and its TLS tunnel) ended: what the platform or the network did.

    lines: ffmpeg's and stunnel's masked stderr, oldest first; live_s: how long
    the platform took the stream in this run."""
    place = where(display_url)
    detail = "\n".join(lines[-DETAIL_LINES:]) or "no error output"
    for line in reversed(lines):
        found = _DNS.search(line)
        if found:
            name = found.group(1) or found.group(2)
            why = found.group(3)
            if any(s in why for s in _NOT_FOUND):
                return RelayError(
                    "dns", f"Name not found: {name}", "is the server address right?", detail
                )
            return RelayError(
                "dns",
                f"Can't look up {name} ({why.strip().rstrip('.').lower()})",
                "is this machine online, and its DNS server working?",
                detail,
            )
    for line in reversed(lines):
        found = _STUNNEL_TLS.search(line) or _FFMPEG_TLS.search(line)
        if found:
            what = found.group(1).strip()
            if any(s in what for s in _NOT_TLS):
                hint = "this port does not speak TLS; check rtmps:// against rtmp:// and the port"
            else:
                hint = "the server refused the TLS handshake; check the address and the port"
            return RelayError("tls", f"TLS failed with {place} ({what})", hint, detail)
    for line in reversed(lines):
        if _REFUSED.search(line):
            return RelayError(
                "refused",
                f"Can't reach {place} (connection refused)",
                "is the server address right?",
                detail,
            )
        found = _UNREACHABLE.search(line)
        if found:
            return RelayError(
                "unreachable",
                f"Can't reach {place} ({found.group(1).lower()})",
                "is this machine online, and the server address right?",
                detail,
            )
    for line in reversed(lines):
        found = _SERVER_ERROR.search(line)
        if found:
            return RelayError(
                "rejected",
                f"The platform refused the stream ({found.group(1).strip()})",
                "check the server URL and the stream key; is another encoder using this key?",
                detail,
            )
    closed = any(_CLOSED_WHILE_WRITING.search(line) for line in lines)
    if closed and live_s >= DROPPED_AFTER_S:
        return RelayError(
            "dropped",
            f"The platform closed the connection after {live_s:.0f} s of streaming",
            "retrying; if it repeats, see the platform's dashboard (stream ended or replaced?)",
            detail,
        )
    if closed:
        return RelayError(
            "rejected",
            "The platform closed the connection right after the stream key was sent",
            KEY_HINT,
            detail,
        )
    if len(lines) == 1 and lines[0].endswith(": Input/output error"):
        # nginx-rtmp closes at once on an unknown application: ffmpeg says only this
        return RelayError(
            "rejected",
            "The platform closed the connection before the stream started",
            "check the server URL (its path) and the stream key",
            detail,
        )
    last = lines[-1] if lines else "no error output"
    return RelayError("ffmpeg", f"ffmpeg exited with code {code}", last, detail)


def timed_out(limit_s: float, display_url: str) -> RelayError:
    """Connected (or not) and nothing went through within limit_s."""
    place = where(display_url)
    return RelayError(
        "timeout",
        f"{place} did not answer within {limit_s:.0f} s",
        "the connection, TLS or RTMP handshake hung; check the port, and rtmp:// against rtmps://",
        f"no data taken within {limit_s:.0f} s (connection, handshake or first data)",
    )


def stalled(stall_s: float, display_url: str) -> RelayError:
    """The platform stopped taking data while the ingest is live."""
    place = where(display_url)
    return RelayError(
        "stalled",
        f"No output to {place} for {stall_s:.0f} s while the ingest is live",
        "the connection is too slow or the platform stopped reading; restarting",
        f"no output for {stall_s:.0f} s while the ingest is live",
    )


def other(message: str) -> RelayError:
    """Anything the relay says in its own words (ffmpeg missing, the tunnel, a
    full buffer): the message is the reason."""
    return RelayError("ffmpeg", message, "", message)


# SessionInfo's codec names -> the names a destination's video_codecs uses
CODEC_NAMES = {"H.264": "h264", "HEVC": "hevc", "AV1": "av1", "VP9": "vp9"}


def codec_problem(
    codec: str | None, accepted: Sequence[str] | None, enhanced_rtmp_problem: str | None
) -> RelayError | None:
    """Why OBS's video cannot go to this destination as it is, or None.
    codec: what OBS sends (SessionInfo); accepted: the destination's
    video_codecs (None: not said); enhanced_rtmp_problem: what the relay's
    ffmpeg cannot carry (ffmpeg_check.enhanced_rtmp_problem), if anything."""
    name = CODEC_NAMES.get(codec or "")
    if name is None:
        return None
    if accepted is not None and name not in accepted:
        takes = ", ".join(a.upper() if a != "h264" else "H.264" for a in accepted)
        return RelayError(
            "codec",
            f"this destination takes {takes} only (video_codecs) and OBS sends {codec}",
            "set OBS's encoder to H.264, or give this destination a profile (it re-encodes)",
            f"OBS sends {codec}; video_codecs: {list(accepted)}",
        )
    if name != "h264" and enhanced_rtmp_problem is not None:
        return RelayError(
            "codec", f"OBS sends {codec}; {enhanced_rtmp_problem}", "", enhanced_rtmp_problem
        )
    return None
