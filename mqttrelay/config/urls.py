"""Destination URLs as ffmpeg will read them (pure): only the schemes and the
SRT options a relay needs, nothing that turns it into a file, a listener or
an option."""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlsplit

DESTINATION_SCHEMES = ("rtmp", "rtmps", "srt")
_UNSAFE_CHARS = re.compile(r"[\s\x00-\x1f\x7f]")

# ffmpeg's libsrt options a caller (a platform's ingest) may need. Refused among
# others: mode (a relay made a listener serves OBS's picture to anyone), localip
# and localport (where the relay's own socket binds).
SRT_OPTIONS = frozenset(
    {
        "streamid",
        "srt_streamid",
        "passphrase",
        "pbkeylen",
        "enforced_encryption",
        "kmrefreshrate",
        "kmpreannounce",
        "latency",
        "rcvlatency",
        "peerlatency",
        "tsbpddelay",
        "tsbpd",
        "tlpktdrop",
        "snddropdelay",
        "nakreport",
        "maxbw",
        "inputbw",
        "oheadbw",
        "pkt_size",
        "payload_size",
        "mss",
        "ffs",
        "transtype",
        "messageapi",
        "smoother",
        "connect_timeout",
        "timeout",
        "lossmaxttl",
        "minversion",
        "linger",
    }
)
_NAMED_SRT_OPTIONS = ("streamid", "passphrase", "pbkeylen", "latency")


def check_safe_text(value: str, what: str) -> str:
    if _UNSAFE_CHARS.search(value):
        raise ValueError(f"{what} must not contain spaces or control characters")
    if value.startswith("-"):
        raise ValueError(f"{what} must not start with '-'")
    return value


def check_destination_url(url: str) -> str:
    """Only rtmp/rtmps/srt URLs with a host: anything else could make ffmpeg
    read or write files (file:, pipe:, concat:) or take the URL as an option."""
    check_safe_text(url, "url")
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in DESTINATION_SCHEMES:
        raise ValueError(f"url must start with {', '.join(s + '://' for s in DESTINATION_SCHEMES)}")
    if not parts.hostname:
        raise ValueError("url has no host")
    try:
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError as exc:
        raise ValueError(f"url has a bad port: {exc}") from None
    if scheme == "srt":
        for name, _ in parse_qsl(parts.query, keep_blank_values=True):
            if name.lower() not in SRT_OPTIONS:
                raise ValueError(
                    f"url must not carry the SRT option '{name[:40]}' (a relay only calls "
                    f"its platform: {', '.join(_NAMED_SRT_OPTIONS)}, ... are)"
                )
    return url


def server_of(url: str) -> tuple[str, str, int | None]:
    """(scheme, host, port) of a destination URL: what a key is issued for."""
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    return parts.scheme.lower(), (parts.hostname or "").lower(), port
