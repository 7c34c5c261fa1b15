"""What the router reports of a destination, the ingest and a source: the
shapes every transport shows (MQTT states, the API, the page, metrics), made
from a relay or an ingest reader as it is now."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Literal, Protocol

from pydantic import Field

from mqttrelay.config import MAIN_SOURCE, IngestMode
from mqttrelay.hub.source import IngestReport
from mqttrelay.ingest.session_info import SessionInfo
from mqttrelay.lib.redact import Redactor, display_url
from mqttrelay.relays.relay import Relay
from mqttrelay.relays.relay_errors import ErrorKind
from mqttrelay.relays.status import Status


# The API's documents show these very shapes (transports/http/models.py): the
# descriptions below are what /api/docs says of each field.
@dataclass(frozen=True)
class StreamState:
    id: str
    name: str
    url: Annotated[str, Field(description="the destination with its key masked")]
    enabled: bool
    status: Status
    bitrate_kbps: float
    pid: int | None
    uptime_s: float
    restarts: int
    cpu_percent: float
    rss_mb: float
    last_error: str | None
    next_change_at: str | None  # ISO time of the next timer for this stream
    next_change_to: Literal["on", "off"] | None
    version: Annotated[int, Field(description="grows with every change; newer answers win")]
    key_set: Annotated[bool, Field(description="a key is set (the key itself is never shown)")] = (
        False
    )
    profile: Annotated[str | None, Field(description="its output profile; null: copy")] = None
    retry_at: Annotated[str | None, Field(description="while retrying: when it tries again")] = None
    # how the link to the platform keeps up (cached mode, while it runs)
    delay_ms: Annotated[
        int | None,
        Field(description="how far behind OBS the platform is fed (ms); null when not running"),
    ] = None
    backlog_bytes: Annotated[
        int | None, Field(description="bytes waiting for the platform's link")
    ] = None
    dropped_share: Annotated[
        float | None,
        Field(description="share of the stream dropped for a slow link over the last 30 s (0-1)"),
    ] = None
    down_since: Annotated[
        str | None, Field(description="while retrying: since when it is down")
    ] = None
    problem: Annotated[
        str | None,
        Field(description="a long outage in words (it is still tried); null when none"),
    ] = None
    error_kind: Annotated[
        ErrorKind | None,
        Field(description="what last_error is about, for machines (docs/http.md, 'Errors')"),
    ] = None
    error_detail: Annotated[
        str | None, Field(description="ffmpeg's (masked) lines behind last_error")
    ] = None
    source: Annotated[str, Field(description="the ingest source it relays (GET /api/sources)")] = (
        MAIN_SOURCE
    )


@dataclass(frozen=True)
class IngestState:
    mode: str
    live: bool
    bitrate_kbps: float
    last_error: str | None
    standby: bool = False  # the standby picture stands in for OBS
    standby_held: bool = False  # held by hand ("be right back")
    standby_available: bool = False  # a standby section, cached mode
    # as OBS announces them (cached mode, while live)
    width: int | None = None
    height: int | None = None
    fps: float | None = None
    video_codec: str | None = None
    audio_codec: str | None = None
    video_kbps: float | None = None
    problem: Annotated[
        str | None,
        Field(
            description="a publisher is there, but none of its video arrives: why, and what to do"
        ),
    ] = None  # (lib.video_check)


@dataclass(frozen=True)
class SourceState:
    id: str
    name: str  # its stream name at the ingest (what OBS publishes to)
    backup: str | None  # the source standing in while this one is away
    on_backup: bool  # its destinations get the backup's picture now
    backup_problem: str | None  # why the backup cannot stand in (another shape)
    streams: list[str]  # the destinations relaying it
    ingest: IngestState


class Upcoming(Protocol):
    @property
    def at(self) -> datetime: ...

    @property
    def enabled(self) -> bool: ...


def on_off(enabled: bool) -> Literal["on", "off"]:
    return "on" if enabled else "off"


def stream_view(
    relay: Relay, enabled: bool, upcoming: Upcoming | None, version: int, redactor: Redactor
) -> StreamState:
    """A destination as its relay is now; `enabled`: its switch, `upcoming`: its
    next timer, `version`: the router's."""
    cpu, rss = relay.process_stats()
    return StreamState(
        id=relay.stream.id,
        name=relay.stream.name,
        url=display_url(relay.stream.url, relay.stream.key),
        enabled=enabled,
        status=relay.status,
        bitrate_kbps=relay.bitrate_kbps,
        pid=relay.pid,
        uptime_s=relay.uptime_s,
        restarts=relay.restarts,
        cpu_percent=cpu,
        rss_mb=rss,
        last_error=redactor.mask(relay.last_error) if relay.last_error else None,
        next_change_at=upcoming.at.isoformat() if upcoming else None,
        next_change_to=on_off(upcoming.enabled) if upcoming else None,
        version=version,
        key_set=relay.stream.key is not None,
        profile=relay.stream.profile,
        retry_at=relay.retry_at.isoformat() if relay.retry_at else None,
        delay_ms=relay.delay_ms,
        backlog_bytes=relay.backlog_bytes,
        dropped_share=relay.dropped_share,
        down_since=relay.down_since.isoformat() if relay.down_since else None,
        problem=relay.problem,
        error_kind=relay.error_kind,
        error_detail=redactor.mask(relay.error_detail) if relay.error_detail else None,
        source=relay.stream.source,
    )


def ingest_view(source: IngestReport, mode: IngestMode, redactor: Redactor) -> IngestState:
    info = source.session_info() or SessionInfo()
    return IngestState(
        mode=mode,
        live=source.live,
        bitrate_kbps=source.bitrate_kbps,
        last_error=redactor.mask(source.last_error) if source.last_error else None,
        standby=source.standby,
        standby_held=source.standby_held,
        standby_available=source.has_standby,
        width=info.width,
        height=info.height,
        fps=info.fps,
        video_codec=info.video_codec,
        audio_codec=info.audio_codec,
        video_kbps=info.video_kbps,
        problem=source.video_problem,
    )
