"""config.yaml's `ingest` section: where OBS publishes, its feeds (pure)."""

from __future__ import annotations

import re
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from mqttrelay.config.checks import (
    MAIN_SOURCE,
    SOURCE_ID_PATTERN,
    Section,
    check_host_name,
    ingest_app_and_stream,
    is_loopback,
    split_listen,
)
from mqttrelay.config.urls import check_safe_text

# How relays read the ingest: one reader and a keyframe cache (the hub), or
# each relay its own ffmpeg pulling from nginx-rtmp.
IngestMode = Literal["cached", "direct"]

_RTMP_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


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


class SourceConfig(Section):
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


class IngestConfig(Section):
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
    mode: IngestMode = Field(
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
