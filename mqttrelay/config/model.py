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
from mqttrelay.config.urls import check_destination_url, check_safe_text

STREAM_ID_PATTERN = r"^[a-z0-9_-]+$"
SOURCE_ID_PATTERN = r"^[a-z0-9_-]+$"
MAIN_SOURCE = "main"  # ingest.url
RESERVED_STREAM_IDS = {"all", "ingest", "status"}  # these name MQTT topics of their own
_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")
# Names rendered into nginx.conf and URLs: nothing nginx's parser or a URL gives a meaning
_HOST_NAME = re.compile(
    r"^(?:[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\]|[0-9A-Fa-f:.]+)$"
)
_RTMP_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")
MIN_TOKEN_LENGTH = 16
MAX_STREAMS = 100  # destinations; each is an ffmpeg when on (docs/security.md)
MIN_KEY_LENGTH = 8  # no platform issues shorter keys; a shorter one is a typo


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


def check_ingest_url(value: str) -> str:
    """rtmp(s)://host[:port]/<application>/<stream name>, nothing more: the checks
    of ingest.url, for every source."""
    return IngestConfig._ingest_url(value)


def _same_ingest(a: str, b: str) -> bool:
    """Same scheme, host, port and application: one nginx-rtmp application serves both."""
    pa, pb = urlsplit(a), urlsplit(b)
    return (pa.scheme.lower(), pa.hostname, pa.port, ingest_app_and_stream(a)[0]) == (
        pb.scheme.lower(),
        pb.hostname,
        pb.port,
        ingest_app_and_stream(b)[0],
    )


class SourceConfig(_Model):
    """One more feed on the same ingest (e.g. OBS's vertical canvas)."""

    id: Annotated[
        str,
        Field(
            pattern=SOURCE_ID_PATTERN,
            max_length=32,
            description="`[a-z0-9_-]+`, named by `streams[].source`; `main` is `ingest.url`",
        ),
    ]
    url: str = Field(
        description="the feed on the same ingest as `ingest.url` (same scheme, host, port "
        "and application), another stream name: e.g. `rtmp://127.0.0.1:1935/live/vertical`"
    )
    backup: str | None = Field(
        default=None,
        description="another source whose picture this source's destinations get while "
        'this one is away (see "Several feeds" in docs/ingest.md)',
    )
    video_track: Annotated[
        int,
        Field(
            ge=0,
            le=255,
            description="built-in ingest (`ingest.listen`): the Enhanced RTMP video track of "
            "`url`'s publisher this source relays (0 to 255; 0 is OBS's main picture, 1 the "
            "next one of a multitrack publish, e.g. the vertical canvas). Another source may "
            'then have the same `url` with another track (see "Multitrack" in '
            "docs/ingest.md)",
        ),
    ] = 0
    audio_track: Annotated[
        int,
        Field(
            ge=0,
            le=255,
            description="built-in ingest: the Enhanced RTMP audio track this source relays "
            "(0 to 255; 0 is OBS's first audio track). A destination picks its sound by "
            "its source: to send one picture with two sounds, make two sources on the same "
            "`url` and `video_track`",
        ),
    ] = 0

    @property
    def tracks(self) -> tuple[int, int]:
        return self.video_track, self.audio_track

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return check_ingest_url(value)


class IngestConfig(_Model):
    """Where OBS publishes (an nginx-rtmp server) and how mqttrelay reads it."""

    url: str = Field(
        default="rtmp://127.0.0.1:1935/live/stream",
        description="the stream OBS publishes to nginx-rtmp; `rtmp://` or `rtmps://`, ending in "
        "`/<application>/<stream name>` (letters, digits, `_`, `-`, `.`)",
    )
    stat_url: str | None = Field(
        default=None,
        description="nginx-rtmp stat page (`rtmp_stat all`); used in direct mode to know "
        "whether OBS is live",
    )
    mode: Literal["cached", "direct"] = Field(
        default="cached",
        description="`cached`: one reader and a keyframe cache feed every relay (fast "
        "switch-on, survives OBS restarts). `direct`: each relay pulls the ingest itself "
        "(fallback)",
    )
    hold_s: Annotated[
        float,
        Field(
            ge=0,
            le=3600,
            description="cached mode: keep platform connections open this long while OBS is "
            "away (0 to 3600)",
        ),
    ] = 30
    manage: bool = Field(
        default=False,
        description="`true`: mqttrelay renders the ingest's nginx config, checks it with "
        "`nginx -t`, runs nginx, restarts it if it dies and stops it on exit (files in "
        "`.mqttrelay-nginx/` beside the state file). `false`: you run nginx yourself "
        "(`mqttrelay nginx-conf`)",
    )
    publish_key: str | None = Field(
        default=None,
        description="when set, the ingest's `on_publish` hook refuses publishers whose URL "
        "lacks `?key=<publish_key>` (in OBS: stream key `stream?key=...`). **Required** when "
        "`ingest.url` is not a loopback address: otherwise anyone on the LAN could publish "
        "to your platforms; `${VAR}` works",
    )
    hook_secret: str | None = Field(
        default=None,
        description="the secret in the hook URLs nginx-rtmp calls "
        "(`/api/hooks/on_publish?secret=...`); none: made at first start and kept in "
        "`.mqttrelay-hook-secret` beside the state file (0600). 16+ letters, digits, `_`, "
        "`-`; `${VAR}` works",
    )
    listen: str | None = Field(
        default=None,
        description="`<address>:<port>` (e.g. `0.0.0.0:1935`): the built-in RTMP ingest, no "
        "nginx (see docs/ingest.md). OBS publishes to "
        "`ingest.url`'s `/<application>/<stream name>` on this address (and to each "
        "`ingest.sources` url's, for that source); needs `ingest.mode: "
        "cached`, excludes `ingest.manage`, and a non-loopback address needs "
        "`ingest.publish_key`",
    )

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str | None) -> str | None:
        if value is not None:
            split_listen(value)
        return value

    sources: list[SourceConfig] = Field(
        default=[],
        description="more feeds on the same ingest besides `ingest.url` (the source `main`): "
        "each an `id`, a `url` and optionally a `backup`; `streams[].source` picks one",
    )
    backup: str | None = Field(
        default=None,
        description="the source whose picture `main`'s destinations get while OBS's main "
        'feed is away (see "Several feeds" in docs/ingest.md)',
    )

    @field_validator("url")
    @classmethod
    def _ingest_url(cls, value: str) -> str:
        check_safe_text(value, "url")
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
    def _sources(self) -> IngestConfig:
        urls = {MAIN_SOURCE: self.url}
        tracks = {(self.url, (0, 0)): MAIN_SOURCE}
        for source in self.sources:
            if source.id in urls:
                raise ValueError(f"ingest.sources: source id '{source.id}' is used twice")
            if not _same_ingest(source.url, self.url):
                raise ValueError(
                    f"ingest.sources '{source.id}': its url must be on the same ingest as "
                    "ingest.url (same scheme, host, port and application)"
                )
            if source.tracks != (0, 0) and self.listen is None:
                raise ValueError(
                    f"ingest.sources '{source.id}': video_track and audio_track need the "
                    "built-in ingest (ingest.listen); nginx-rtmp passes on one track"
                )
            other = tracks.get((source.url, source.tracks))
            if other is not None:
                raise ValueError(
                    f"ingest.sources '{source.id}': its url and tracks are already source "
                    f"'{other}' (another track of that publish: set video_track or audio_track)"
                    if self.listen
                    else f"ingest.sources '{source.id}': its url is already a source"
                )
            urls[source.id] = source.url
            tracks[source.url, source.tracks] = source.id
        for source_id, backup in self.backups.items():
            if backup not in urls:
                raise ValueError(
                    f"source '{source_id}': unknown backup '{backup}' (sources: {', '.join(urls)})"
                )
            if backup == source_id:
                raise ValueError(f"source '{source_id}' cannot be its own backup")
        return self

    @property
    def source_urls(self) -> dict[str, str]:
        """Every source's id and url, `main` first."""
        return {MAIN_SOURCE: self.url} | {s.id: s.url for s in self.sources}

    @property
    def source_tracks(self) -> dict[str, tuple[int, int]]:
        """Every source's (video track, audio track), `main` first: (0, 0)."""
        return {MAIN_SOURCE: (0, 0)} | {s.id: s.tracks for s in self.sources}

    @property
    def backups(self) -> dict[str, str]:
        """source id -> its backup's id, for the sources that name one."""
        named = {MAIN_SOURCE: self.backup} | {s.id: s.backup for s in self.sources}
        return {k: v for k, v in named.items() if v is not None}

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
            key = self.publish_key
            if key is not None and not re.fullmatch(r"[A-Za-z0-9_-]{16,}", key):
                # mqttrelay itself answers each guess: a short key could be guessed
                raise ValueError(
                    "with ingest.listen, publish_key must be 16 or more letters, digits, '_' or '-'"
                )
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
        check_safe_text(value, "stat_url")
        if urlsplit(value).scheme.lower() not in ("http", "https"):
            raise ValueError("stat_url must start with http:// or https://")
        return value


class FfmpegConfig(_Model):
    """The programs relays run."""

    path: str = Field(
        default="ffmpeg",
        description="the ffmpeg binary; its `ffprobe` beside it reads a session's shape for "
        "the standby loop",
    )
    stunnel: str | None = Field(
        default="stunnel",
        description="`rtmps://` destinations go through a local stunnel (TLS with "
        "`TCP_NODELAY`; switch-on as fast as RTMP, see docs/how-it-works.md); "
        "`null`, or stunnel not installed (a warning says so): ffmpeg does the TLS itself, "
        "about 0.2 s slower to switch on",
    )
    connect_timeout_s: Annotated[
        float,
        Field(
            ge=1,
            le=120,
            description="a platform that accepts the connection but takes no data for this "
            "long (a hung server, a firewall dropping replies) makes the relay retry with "
            'backoff, `last_error` "live.example.com:1935 did not answer within 10 s: …" '
            "(`error_kind` `timeout`); direct mode adds 15 s for its keyframe wait and probe "
            "(1 to 120)",
        ),
    ] = 10


class StandbyConfig(_Model):
    """While OBS is away, relays send this picture with silence (cached mode)."""

    enabled: bool = Field(default=True, description="`false` keeps the section but holds as before")
    image: Path | None = Field(
        default=None,
        description="a PNG or JPEG (at most 20 MB) shown during standby, scaled to fit and "
        "centred on black; relative to the config file's folder. None: a dark card saying "
        '"We\'ll be right back", drawn by ffmpeg (needs `fonts-dejavu-core`, which '
        "`scripts/setup` installs)",
    )
    max_s: Annotated[
        float,
        Field(
            ge=0,
            le=86_400,
            description="how long the platforms get the standby picture; then relays stop as "
            "after `hold_s` (and start again by themselves when OBS is back)",
        ),
    ] = 600


class MqttConfig(_Model):
    """The MQTT broker, and Home Assistant's discovery."""

    enabled: bool = Field(default=True, description="`false` runs without MQTT")
    host: str = Field(
        default="127.0.0.1", description="the broker (e.g. Home Assistant's Mosquitto add-on)"
    )
    port: Annotated[int, Field(ge=1, le=65535, description="the broker's port")] = 1883
    username: str | None = Field(default=None, description="broker login")
    password: str | None = Field(default=None, description="broker password; `${VAR}` works")
    tls: bool = Field(default=False, description="TLS to the broker (port 8883 usually)")
    ca_certs: Path | None = Field(
        default=None, description="a CA file when the broker's certificate is not public"
    )
    base_topic: str = Field(
        default="streamrelay", description="prefix of every topic (`B` in the MQTT section)"
    )
    discovery_prefix: str = Field(
        default="homeassistant", description="Home Assistant's discovery prefix"
    )
    node_id: Annotated[
        str,
        Field(
            pattern=r"^[A-Za-z0-9_-]+$",
            description="unique per mqttrelay host: client ids `mqttrelay-<node_id>` and "
            "`mqttrelay-<node_id>-status`, the `B/host/<node_id>/...` topics, the Home "
            "Assistant device, unique and entity ids",
        ),
    ] = "studio"

    @field_validator("base_topic", "discovery_prefix")
    @classmethod
    def _topic(cls, value: str) -> str:
        if not value or any(c in value for c in "#+\x00") or value.startswith("/"):
            raise ValueError("must be a non-empty MQTT topic without wildcards or a leading '/'")
        return value.rstrip("/")


class ApiConfig(_Model):
    """The web page and HTTP API."""

    host: str = Field(
        default="127.0.0.1",
        description="where the web page and API listen. Anything but a loopback address "
        "needs `api.token`, or mqttrelay refuses to start",
    )
    port: Annotated[int, Field(ge=0, le=65535, description="the page's and API's port")] = 8088
    token: str | None = Field(
        default=None,
        description="when set, every `/api` route, `/metrics`, `/api/docs` and "
        "`/openapi.json` need `Authorization: Bearer <token>`; the page asks for it once and "
        'keeps it in the browser until "Sign out". Use 16 characters or more: a shorter '
        "one is refused (`check`, `run`, the container's `page_token`) when `api.host` is not "
        "loopback; on loopback `check` fails on it and `run` warns; `${VAR}` works",
    )
    allowed_hosts: list[str] = Field(
        default=[],
        description="host names the page is reached by, besides IP addresses, `localhost`, "
        "`api.host` and this machine's name (`<hostname>` and `<hostname>.local`); "
        "`*.example.net` allows a domain's names. A request with any other `Host` is "
        "refused (400), against DNS rebinding",
    )
    frame_ancestors: list[str] = Field(
        default=[],
        description="origins that may show the page in a frame (e.g. "
        "`http://homeassistant.local:8123`); by default no site may frame it",
    )
    ingress_proxy: str | None = Field(
        default=None,
        description="the address of Home Assistant's ingress proxy (`172.30.32.2`, set by "
        "the add-on). A request from that address carrying `X-Ingress-Path` needs no token "
        "(Home Assistant signed the user in) and the page may be framed by its own origin; "
        "from any other address the header counts for nothing. The page's URLs are all "
        "relative, so it works under the ingress path",
    )

    @field_validator("host")
    @classmethod
    def _host(cls, value: str) -> str:
        return check_host_name(value, "api.host")

    @model_validator(mode="after")
    def _token_for_the_lan(self) -> ApiConfig:
        short = self.token is not None and len(self.token) < MIN_TOKEN_LENGTH
        if short and not is_loopback(self.host):
            raise ValueError(
                f"token is {len(self.token or '')} characters, too easy to guess for a page "
                f"other machines reach (host {self.host}); use {MIN_TOKEN_LENGTH} or more"
            )
        return self

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
    """One destination (a platform)."""

    id: Annotated[
        str,
        Field(
            pattern=STREAM_ID_PATTERN,
            max_length=64,
            description="`[a-z0-9_-]+`, used in MQTT topics and URLs; `all`, `ingest` and "
            "`status` are reserved",
        ),
    ]
    name: str = Field(default="", description="what people see; empty: the id")
    url: str = Field(
        description="`rtmp://`, `rtmps://` or `srt://` with a host; no spaces, control "
        "characters or leading `-`. An `srt://` query takes only the options a caller needs "
        "(`streamid`, `passphrase`, `pbkeylen`, `latency` and the other tuning options of "
        "ffmpeg's libsrt); `mode`, `localip`, `localport` and the rest are refused"
    )
    key: str | None = Field(
        default=None,
        description="the stream key, 8 characters or more; the relay writes to `url + key` (a "
        "`/` is added between them when `url` has none). Without a key the url is used as "
        "it is, and its last path segment and query are treated as secret; `${VAR}` works",
    )
    enabled: bool = Field(
        default=False,
        description="initial state, used only when the state file has none for this stream",
    )
    profile: str | None = Field(
        default=None,
        description="a name in `profiles` (see docs/profiles.md); none: "
        "OBS's stream as it is (copy)",
    )
    source: Annotated[
        str,
        Field(
            pattern=SOURCE_ID_PATTERN,
            max_length=32,
            description="the ingest feed this destination relays: `main` (`ingest.url`) or "
            "an `ingest.sources` id",
        ),
    ] = MAIN_SOURCE
    max_delay_s: Annotated[
        float,
        Field(
            ge=0.5,
            le=60,
            description="on a link too slow for the stream, how far (0.5-60 s) this platform "
            "may fall behind OBS before whole keyframe groups are dropped: the delay stays "
            "under this plus one keyframe interval, the connection is kept, and the status "
            'says `congested` (see "A slow link" in docs/how-it-works.md)',
        ),
    ] = 2.0
    video_codecs: list[Literal["h264", "hevc", "av1", "vp9"]] | None = Field(
        default=None,
        description="the video codecs this platform takes, of `h264`, `hevc`, `av1`, `vp9` "
        "(e.g. `[h264]` for one without Enhanced RTMP). When OBS sends another, the relay "
        "does not start and says why (`error_kind` `codec`) instead of sending a picture the "
        "platform drops; none: not checked",
    )

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
    """A switch at set times (see docs/schedules.md)."""

    stream: str = Field(description="a stream's id, or `all`")
    action: Literal["on", "off"] = Field(
        description='`"on"` or `"off"`, quoted: YAML reads a bare on/off as true/false'
    )
    cron: str | None = Field(
        default=None,
        description="five fields: minute hour day month weekday, in `timezone` (give `cron` "
        "or `at`)",
    )
    at: datetime | None = Field(
        default=None,
        description="once, at this date-time; without an offset it is in `timezone` (give "
        "`cron` or `at`)",
    )

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
    """mqttrelay's config.yaml."""

    timezone: str = Field(default="UTC", description="IANA zone for schedules, e.g. `Europe/Paris`")
    state_file: Path = Field(
        default=Path("state.json"),
        description="desired on/off state of each stream, pending timers and when the service "
        "last ran, kept across restarts; relative to the config file's folder",
    )
    ingest: IngestConfig = Field(default=IngestConfig(), description=IngestConfig.__doc__)
    ffmpeg: FfmpegConfig = Field(default=FfmpegConfig(), description=FfmpegConfig.__doc__)
    mqtt: MqttConfig = Field(default=MqttConfig(), description=MqttConfig.__doc__)
    api: ApiConfig = Field(default=ApiConfig(), description=ApiConfig.__doc__)
    standby: StandbyConfig | None = Field(
        default=None,
        description="while OBS is away, feed every live relay a standby picture with silence "
        "instead of nothing (see docs/standby.md). Without this section "
        "relays hold for `ingest.hold_s`; `standby: {}` turns it on with the built-in card. "
        "Cached mode only",
    )
    profiles: dict[
        Annotated[str, Field(pattern=PROFILE_NAME_PATTERN, max_length=32)], ProfileConfig
    ] = Field(
        default={},
        description="output profiles by name (`[a-z0-9_-]+`): size, fit, frame rate, bitrate "
        "caps, encoder (see docs/profiles.md)",
    )
    streams: list[StreamConfig] = Field(
        default=[], description=f"the destinations, at most {MAX_STREAMS}"
    )
    schedules: list[ScheduleConfig] = Field(
        default=[], description="switches at set times (see docs/schedules.md)"
    )

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
        if len(self.streams) > MAX_STREAMS:
            raise ValueError(
                f"{len(self.streams)} streams; mqttrelay runs at most {MAX_STREAMS} destinations"
            )
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
            if stream.source not in self.ingest.source_urls:
                known = ", ".join(self.ingest.source_urls)
                raise ValueError(
                    f"stream '{stream.id}': unknown source '{stream.source}' (sources: {known})"
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
