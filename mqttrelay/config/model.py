"""config.yaml's sections as pydantic models, with their checks (pure)."""

from __future__ import annotations

import ipaddress
import re
from datetime import datetime
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from apscheduler.triggers.cron import CronTrigger
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from mqttrelay.config.profiles import PROFILE_NAME_PATTERN, ProfileConfig

STREAM_ID_PATTERN = r"^[a-z0-9_-]+$"
RESERVED_STREAM_IDS = {"all", "ingest", "status"}  # these name MQTT topics of their own
DESTINATION_SCHEMES = ("rtmp", "rtmps", "srt")
_UNSAFE_CHARS = re.compile(r"[\s\x00-\x1f\x7f]")
_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")
# Names rendered into nginx.conf and URLs: nothing nginx's parser or a URL gives a meaning
_HOST_NAME = re.compile(
    r"^(?:[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\]|[0-9A-Fa-f:.]+)$"
)
_RTMP_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")
MIN_TOKEN_LENGTH = 16


class ConfigError(Exception):
    """A config that cannot be used; `problems` holds one line per problem."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


class _Model(BaseModel):
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


def _check_safe_text(value: str, what: str) -> str:
    if _UNSAFE_CHARS.search(value):
        raise ValueError(f"{what} must not contain spaces or control characters")
    if value.startswith("-"):
        raise ValueError(f"{what} must not start with '-'")
    return value


def check_destination_url(url: str) -> str:
    """Only rtmp/rtmps/srt URLs with a host: anything else could make ffmpeg
    read or write files (file:, pipe:, concat:) or take the URL as an option."""
    _check_safe_text(url, "url")
    parts = urlsplit(url)
    if parts.scheme.lower() not in DESTINATION_SCHEMES:
        raise ValueError(f"url must start with {', '.join(s + '://' for s in DESTINATION_SCHEMES)}")
    if not parts.hostname:
        raise ValueError("url has no host")
    try:
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError as exc:
        raise ValueError(f"url has a bad port: {exc}") from None
    return url


def check_stream_id(value: str) -> str:
    """Past its pattern: not one of the ids that name topics of their own."""
    if value in RESERVED_STREAM_IDS:
        raise ValueError(f"'{value}' is reserved; choose another id")
    return value


def check_stream_key(value: str) -> str:
    if not value:
        raise ValueError("key is empty (leave it out when the url holds everything)")
    return _check_safe_text(value, "key")


def check_stream_name(value: str) -> str:
    """A name typed on the page: shown in Home Assistant, one line."""
    if _CONTROL_CHARS.search(value):
        raise ValueError("name must not contain control characters")
    if len(value) > 100:
        raise ValueError("name is longer than 100 characters")
    return value


class IngestConfig(_Model):
    url: str = "rtmp://127.0.0.1:1935/live/stream"
    stat_url: str | None = None
    mode: Literal["cached", "direct"] = "cached"
    hold_s: Annotated[float, Field(ge=0, le=3600)] = 30
    manage: bool = False
    publish_key: str | None = None
    hook_secret: str | None = None  # default: made once, kept beside the state file
    # the built-in RTMP ingest: OBS publishes here, to url's /<app>/<stream name>
    listen: str | None = None

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str | None) -> str | None:
        if value is not None:
            split_listen(value)
        return value

    @field_validator("url")
    @classmethod
    def _ingest_url(cls, value: str) -> str:
        _check_safe_text(value, "url")
        parts = urlsplit(value)
        if parts.scheme.lower() not in ("rtmp", "rtmps"):
            raise ValueError("ingest url must start with rtmp:// or rtmps://")
        check_host_name(parts.hostname or "", "the ingest url's host")
        try:
            parts.port  # noqa: B018 - raises on a bad port
        except ValueError as exc:
            raise ValueError(f"url has a bad port: {exc}") from None
        names = parts.path.strip("/").split("/")
        if len(names) != 2 or not all(_RTMP_NAME.match(n) for n in names) or parts.query:
            raise ValueError(
                "ingest url must end in /<application>/<stream name>, each of letters, "
                "digits, '_', '-' or '.' (e.g. rtmp://127.0.0.1:1935/live/stream)"
            )
        return value

    @field_validator("hook_secret")
    @classmethod
    def _hook_secret(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[A-Za-z0-9_-]{16,}", value):
            raise ValueError("hook_secret must be 16 or more letters, digits, '_' or '-'")
        return value

    @model_validator(mode="after")
    def _lan_needs_key(self) -> IngestConfig:
        host = urlsplit(self.url).hostname or ""
        if self.listen is not None:
            if self.manage:
                raise ValueError(
                    "ingest.listen (the built-in ingest) and ingest.manage (nginx) both take "
                    "OBS: set one of them"
                )
            if self.mode != "cached":
                raise ValueError("ingest.listen needs ingest.mode: cached (relays read the hub)")
            listen_host = split_listen(self.listen)[0]
            if not is_loopback(listen_host) and not self.publish_key:
                raise ValueError(
                    f"ingest.listen is on {listen_host}, where other machines can publish to "
                    "it: set ingest.publish_key (OBS then uses the stream key "
                    "'stream?key=<publish_key>')"
                )
            return self
        if not is_loopback(host) and not self.publish_key:
            raise ValueError(
                f"ingest.url is on {host}, where other machines can publish to it: set "
                "ingest.publish_key (OBS then uses the stream key 'stream?key=<publish_key>')"
            )
        return self

    @field_validator("stat_url")
    @classmethod
    def _stat_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        _check_safe_text(value, "stat_url")
        if urlsplit(value).scheme.lower() not in ("http", "https"):
            raise ValueError("stat_url must start with http:// or https://")
        return value


class FfmpegConfig(_Model):
    path: str = "ffmpeg"
    # rtmps:// through a local stunnel (faster switch-on); null: ffmpeg's own TLS
    stunnel: str | None = "stunnel"
    # a platform must take the first data this soon after a relay starts
    connect_timeout_s: Annotated[float, Field(ge=1, le=120)] = 10


class StandbyConfig(_Model):
    """While OBS is away, relays send this picture with silence (cached mode)."""

    enabled: bool = True
    image: Path | None = None  # a PNG or JPEG; default: a built-in "We'll be right back" card
    max_s: Annotated[float, Field(ge=0, le=86_400)] = 600


class MqttConfig(_Model):
    enabled: bool = True
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=1, le=65535)] = 1883
    username: str | None = None
    password: str | None = None
    tls: bool = False  # TLS to the broker (usually port 8883)
    ca_certs: Path | None = None  # CA file when the broker's certificate is not public
    base_topic: str = "streamrelay"
    discovery_prefix: str = "homeassistant"
    node_id: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]+$")] = "studio"

    @field_validator("base_topic", "discovery_prefix")
    @classmethod
    def _topic(cls, value: str) -> str:
        if not value or any(c in value for c in "#+\x00") or value.startswith("/"):
            raise ValueError("must be a non-empty MQTT topic without wildcards or a leading '/'")
        return value.rstrip("/")


class ApiConfig(_Model):
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = 8088
    token: str | None = None
    # Host names the page is reached by besides IP addresses, localhost, api.host
    # and this machine's name: any other Host header is refused (DNS rebinding).
    allowed_hosts: list[str] = []
    # Origins that may show the page in a frame (e.g. Home Assistant's); none by default
    frame_ancestors: list[str] = []
    # Home Assistant's ingress proxy (172.30.32.2 in an add-on): its requests carry
    # X-Ingress-Path and come signed in by Home Assistant, so they need no token
    ingress_proxy: str | None = None

    @field_validator("host")
    @classmethod
    def _host(cls, value: str) -> str:
        return check_host_name(value, "api.host")

    @field_validator("ingress_proxy")
    @classmethod
    def _ingress_proxy(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            return str(ipaddress.ip_address(value))
        except ValueError:
            raise ValueError(
                f"ingress_proxy must be an IP address (e.g. 172.30.32.2), not '{value[:40]}'"
            ) from None

    @field_validator("allowed_hosts")
    @classmethod
    def _allowed_hosts(cls, value: list[str]) -> list[str]:
        for name in value:
            check_host_name(name.removeprefix("*."), f"allowed_hosts entry '{name[:40]}'")
        return [name.lower() for name in value]

    @field_validator("frame_ancestors")
    @classmethod
    def _frame_ancestors(cls, value: list[str]) -> list[str]:
        for origin in value:
            parts = urlsplit(origin)
            if parts.scheme not in ("http", "https") or parts.path or parts.query:
                raise ValueError(f"'{origin[:60]}' is not an origin like http://homeassistant:8123")
            check_host_name(parts.hostname or "", "a frame_ancestors host")
        return value


class StreamConfig(_Model):
    id: Annotated[str, Field(pattern=STREAM_ID_PATTERN, max_length=64)]
    name: str = ""
    url: str
    key: str | None = None
    enabled: bool = False
    profile: str | None = None  # a name in `profiles`; none: OBS's stream as it is (copy)
    # On a link slower than the stream, whole keyframe groups are dropped past this delay.
    max_delay_s: Annotated[float, Field(ge=0.5, le=60)] = 2.0
    # The video codecs this platform takes (e.g. [h264] for one without Enhanced RTMP);
    # none: it is not checked. OBS's HEVC or AV1 then gets a clear reason, not a black picture.
    video_codecs: list[Literal["h264", "hevc", "av1", "vp9"]] | None = None

    @field_validator("id")
    @classmethod
    def _not_reserved(cls, value: str) -> str:
        return check_stream_id(value)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return check_destination_url(value)

    @field_validator("key")
    @classmethod
    def _key(cls, value: str | None) -> str | None:
        return None if value is None else check_stream_key(value)

    @model_validator(mode="after")
    def _default_name(self) -> StreamConfig:
        if not self.name:
            object.__setattr__(self, "name", self.id)
        return self

    @property
    def target(self) -> str:
        """The URL ffmpeg writes to: url + key, with a '/' between them when needed."""
        if self.key is None:
            return self.url
        sep = "" if self.url.endswith("/") else "/"
        return f"{self.url}{sep}{self.key}"


class ScheduleConfig(_Model):
    stream: str
    action: Literal["on", "off"]
    cron: str | None = None
    at: datetime | None = None

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if len(value.split()) != 5:
            raise ValueError("cron must have five fields: minute hour day month weekday")
        try:
            CronTrigger.from_crontab(value, timezone=ZoneInfo("UTC"))
        except ValueError as exc:
            raise ValueError(f"bad cron expression: {exc}") from None
        return value

    @model_validator(mode="after")
    def _one_trigger(self) -> ScheduleConfig:
        if (self.cron is None) == (self.at is None):
            raise ValueError("give exactly one of 'cron' or 'at'")
        return self


ProfileName = Annotated[str, Field(pattern=PROFILE_NAME_PATTERN, max_length=32)]


class Config(_Model):
    timezone: str = "UTC"
    state_file: Path = Path("state.json")
    ingest: IngestConfig = IngestConfig()
    ffmpeg: FfmpegConfig = FfmpegConfig()
    mqtt: MqttConfig = MqttConfig()
    api: ApiConfig = ApiConfig()
    standby: StandbyConfig | None = None  # absent: relays hold for ingest.hold_s, as before
    profiles: dict[
        Annotated[str, Field(pattern=PROFILE_NAME_PATTERN, max_length=32)], ProfileConfig
    ] = {}
    streams: list[StreamConfig] = []
    schedules: list[ScheduleConfig] = []

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone '{value}' (use an IANA name such as Europe/Paris)"
            ) from None
        return value

    @model_validator(mode="after")
    def _cross_checks(self) -> Config:
        seen: set[str] = set()
        for stream in self.streams:
            if stream.id in seen:
                raise ValueError(f"stream id '{stream.id}' is used twice")
            seen.add(stream.id)
            if stream.profile is not None and stream.profile not in self.profiles:
                known = ", ".join(sorted(self.profiles)) or "none defined"
                raise ValueError(
                    f"stream '{stream.id}': unknown profile '{stream.profile}' (profiles: {known})"
                )
            if stream.profile is not None and self.ingest.mode != "cached":
                raise ValueError(
                    f"stream '{stream.id}': profiles need ingest.mode: cached (they are fed "
                    "from its keyframe cache)"
                )
        for n, schedule in enumerate(self.schedules):
            if schedule.stream != "all" and schedule.stream not in seen:
                raise ValueError(f"schedules[{n}].stream: unknown stream '{schedule.stream}'")
        return self

    def stream(self, stream_id: str) -> StreamConfig | None:
        return next((s for s in self.streams if s.id == stream_id), None)

    @property
    def secrets(self) -> list[str]:
        """Every secret value this config holds, for masking."""
        values = [s.key for s in self.streams] + [
            self.mqtt.password,
            self.api.token,
            self.ingest.publish_key,
            self.ingest.hook_secret,
        ]
        return [v for v in values if v]


def policy_problems(config: Config) -> list[str]:
    """Settings that work but should not be used; `check` fails on them, `run` warns."""
    problems = []
    token = config.api.token
    if token is not None and len(token) < MIN_TOKEN_LENGTH:
        problems.append(
            f"api.token: {len(token)} characters is too easy to guess; use "
            f"{MIN_TOKEN_LENGTH} or more (python3 -c 'import secrets; "
            "print(secrets.token_urlsafe(24))')"
        )
    return problems
