"""What several sections check: names, hosts, keys, the base of every section
and the error a config that cannot be used raises (pure)."""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict

from mqttrelay.config.urls import check_safe_text

STREAM_ID_PATTERN = r"^[a-z0-9_-]+$"
SOURCE_ID_PATTERN = r"^[a-z0-9_-]+$"
MAIN_SOURCE = "main"  # ingest.url
RESERVED_STREAM_IDS = {"all", "ingest", "status"}  # these name MQTT topics of their own
_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")
# Names rendered into nginx.conf and URLs: nothing nginx's parser or a URL gives a meaning
_HOST_NAME = re.compile(
    r"^(?:[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\]|[0-9A-Fa-f:.]+)$"
)
MIN_TOKEN_LENGTH = 16
MAX_STREAMS = 100  # destinations; each is an ffmpeg when on (docs/security.md)
MIN_KEY_LENGTH = 8  # no platform issues shorter keys; a shorter one is a typo


class ConfigError(Exception):
    """A config that cannot be used; `problems` holds one line per problem."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


class Section(BaseModel):
    """A section of config.yaml: unknown keys are errors, values never change."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def ingest_app_and_stream(url: str) -> tuple[str, str]:
    """rtmp://host:1935/live/stream -> ("live", "stream")."""
    path = urlsplit(url).path.strip("/")
    app, _, name = path.partition("/")
    return app, name


def split_listen(value: str) -> tuple[str, int]:
    """ "0.0.0.0:1935" or "[::]:1935" -> (host, port); ValueError naming what is wrong."""
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(
            "ingest.listen must be <address>:<port>, e.g. 0.0.0.0:1935 or 127.0.0.1:1935"
        )
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    check_host_name(host, "ingest.listen's address")
    return host, int(port)


def check_host_name(value: str, what: str) -> str:
    """A DNS name or an IP address, and nothing that could end a config line or a URL."""
    if not _HOST_NAME.match(value):
        raise ValueError(f"{what} must be a host name or an IP address")
    return value


def check_stream_id(value: str) -> str:
    """Past its pattern: not one of the ids that name topics of their own."""
    if value in RESERVED_STREAM_IDS:
        raise ValueError(f"'{value}' is reserved; choose another id")
    return value


def check_stream_key(value: str) -> str:
    if not value:
        raise ValueError("key is empty (leave it out when the url holds everything)")
    check_safe_text(value, "key")
    if len(value) < MIN_KEY_LENGTH:
        raise ValueError(
            f"key is {len(value)} character(s) long; platforms' keys have {MIN_KEY_LENGTH} or more "
            "(a typo, or the wrong environment variable?)"
        )
    return value


def check_entered_key(value: str) -> str:
    """A key typed on the page, sent to the API or set in Home Assistant: the
    file's checks, and nothing a paste gets wrong. Errors never repeat the key."""
    if "${" in value:  # the file would read it as an environment variable
        raise ValueError("key must not contain '${'")
    if "://" in value:
        raise ValueError(
            "key looks like a server address: put that in the server address field, "
            "and here only the key"
        )
    return check_stream_key(value)


def check_stream_name(value: str) -> str:
    """A name typed on the page: shown in Home Assistant, one line."""
    if _CONTROL_CHARS.search(value):
        raise ValueError("name must not contain control characters")
    if len(value) > 100:
        raise ValueError("name is longer than 100 characters")
    return value
