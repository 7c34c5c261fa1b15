"""What may be shown of a secret (pure): masked URLs, masked text, escaped log input.

Stream keys travel inside URLs (ffmpeg prints them in its own error lines), in
user-info (`srt://user:pw@host`) and in query strings (`?passphrase=...`); every
one of these is masked before anything is logged, published or answered.
The secrets themselves live in one Redactor per service, never in a global.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import urlsplit

MASK = "****"
MIN_FRAGMENT = 8  # shorter secrets are masked as whole words only

_URL_IN_TEXT = re.compile(r"\b(?:rtmps?|rtmpt|rtmpe|srt)://[^\s'\"<>]+", re.IGNORECASE)
_CONTROL = re.compile(r"[\x00-\x1f\x7f\x85\u2028\u2029]")


def _masked_head(scheme: str, netloc: str) -> str:
    """scheme://host:port, with user:password@ masked."""
    if "@" in netloc:
        netloc = f"{MASK}@{netloc.rpartition('@')[2]}"
    return f"{scheme}://{netloc}" if scheme else ""


def mask_url(url: str) -> str:
    """Hide the secret parts of a URL: user-info, its last path segment and its query.

    rtmps://host:443/rtmp/KEY -> rtmps://host:443/rtmp/****,
    srt://host:9000?streamid=KEY -> srt://host:9000?****.
    """
    parts = urlsplit(url)
    path = parts.path
    if "/" in path.strip("/"):
        prefix, _, last = path.rstrip("/").rpartition("/")
        path = f"{prefix}/{MASK}" if last else path
    elif path.strip("/"):
        path = f"/{MASK}"
    if parts.query:
        path = f"{path}?{MASK}"
    return _masked_head(parts.scheme, parts.netloc) + path


def display_url(url: str, key: str | None) -> str:
    """What a user may see of a destination: the url, and **** for its key.

    User-info and query values of the url are secrets too, key or not.
    """
    if key is None:
        return mask_url(url)
    parts = urlsplit(url)
    shown = _masked_head(parts.scheme, parts.netloc) + parts.path
    if parts.query:
        shown += f"?{MASK}"
    sep = "" if url.endswith("/") else "/"
    return f"{shown}{sep}{MASK}"


def mask(text: str, secrets: Iterable[str] = ()) -> str:
    """Mask every known secret and the secret part of every stream URL in text.

    A secret shorter than MIN_FRAGMENT (a short MQTT password, say; keys are
    refused that short) is masked only where it stands alone, never inside a
    word: a password "a" must not turn "mqttrelay" into "mqttrel****y"."""
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        if len(secret) >= MIN_FRAGMENT:
            text = text.replace(secret, MASK)
        else:
            text = re.sub(rf"(?<![\w-]){re.escape(secret)}(?![\w-])", MASK, text)
    return _URL_IN_TEXT.sub(_mask_match, text)


def _mask_match(match: re.Match[str]) -> str:
    url = match.group(0)
    trimmed = url.rstrip(":,.;)]")  # punctuation that ends a sentence, not the URL
    return mask_url(trimmed) + url[len(trimmed) :]


class Redactor:
    """The secrets this service knows (config keys, tokens, passwords, keys a reload
    added) and the masking of text with them. The service makes one and hands it to
    whoever logs or reads a child's output: the log formatter, the router, the tap,
    relays, encoders, tunnels, snapshots. A secret added is masked by all of them at
    once, from their next line on."""

    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        self._known: set[str] = set()
        self._sorted: tuple[str, ...] = ()
        self.add(secrets)

    @property
    def secrets(self) -> tuple[str, ...]:
        """Longest first: a secret inside a longer one is masked with it."""
        return self._sorted

    def add(self, secrets: Iterable[str | None]) -> None:
        new = {s for s in secrets if s} - self._known
        if new:
            self._known.update(new)
            self._sort()

    def remove(self, secrets: Iterable[str | None]) -> None:
        gone = {s for s in secrets if s} & self._known
        if gone:
            self._known -= gone
            self._sort()

    def _sort(self) -> None:
        self._sorted = tuple(sorted(self._known, key=len, reverse=True))

    def mask(self, text: str) -> str:
        """mask() with every secret known now."""
        return mask(text, self._sorted)


def escape_control(text: str) -> str:
    r"""Control characters as \xNN, so text from outside cannot forge a log line."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group(0)):02x}", text)
