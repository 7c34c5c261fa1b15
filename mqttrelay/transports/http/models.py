"""The shapes the HTTP API reads and answers, as its OpenAPI document shows them."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from mqttrelay.control.one_shot_timers import Timer
from mqttrelay.control.views import SourceState
from mqttrelay.relays.relay_errors import ErrorKind
from mqttrelay.relays.status import Status

MAX_TIMER_S = 7 * 24 * 3600


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StreamOut(BaseModel):
    id: str
    name: str
    url: str = Field(description="the destination with its key masked")
    enabled: bool
    status: Status
    bitrate_kbps: float
    pid: int | None
    uptime_s: float
    restarts: int
    cpu_percent: float
    rss_mb: float
    last_error: str | None
    next_change_at: str | None
    next_change_to: Literal["on", "off"] | None
    version: int = Field(description="grows with every change; newer answers win")
    key_set: bool = Field(False, description="a key is set (the key itself is never shown)")
    profile: str | None = Field(None, description="its output profile; null: copy")
    retry_at: str | None = Field(None, description="while retrying: when it tries again")
    delay_ms: int | None = Field(
        None, description="how far behind OBS the platform is fed (ms); null when not running"
    )
    backlog_bytes: int | None = Field(None, description="bytes waiting for the platform's link")
    dropped_share: float | None = Field(
        None, description="share of the stream dropped for a slow link over the last 30 s (0-1)"
    )
    down_since: str | None = Field(None, description="while retrying: since when it is down")
    problem: str | None = Field(
        None, description="a long outage in words (it is still tried); null when none"
    )
    error_kind: ErrorKind | None = Field(
        None, description="what last_error is about, for machines (docs/http.md, 'Errors')"
    )
    error_detail: str | None = Field(None, description="ffmpeg's (masked) lines behind last_error")
    source: str = Field("main", description="the ingest source it relays (GET /api/sources)")


class StreamUpdate(_Body):
    enabled: bool


class StandbyUpdate(_Body):
    held: bool = Field(description='"be right back": the standby picture while OBS sends')


class TimerIn(_Body):
    """Switch in so many seconds."""

    action: Literal["on", "off"]
    in_s: Annotated[float, Field(gt=0, le=MAX_TIMER_S)]


class TimerAt(_Body):
    """Switch at a time (without an offset: in the config's time zone)."""

    action: Literal["on", "off"]
    at: datetime


class TimerOut(BaseModel):
    id: str
    stream: str
    action: Literal["on", "off"]
    at: datetime


class IngestOut(BaseModel):
    mode: str
    live: bool
    bitrate_kbps: float
    last_error: str | None
    standby: bool = False  # the standby picture stands in for OBS
    standby_held: bool = False  # held by hand: "be right back"
    standby_available: bool = False  # a standby section, cached mode
    width: int | None = None  # as OBS announces them (cached mode, while live)
    height: int | None = None
    fps: float | None = None
    video_codec: str | None = None
    audio_codec: str | None = None
    video_kbps: float | None = None
    problem: str | None = Field(
        default=None,
        description="a publisher is there, but none of its video arrives: why, and what to do",
    )


class SourceOut(IngestOut):
    id: str = Field(description="`main` (ingest.url) or an ingest.sources id")
    name: str = Field(description="its stream name at the ingest (OBS's key, before any ?key=)")
    backup: str | None = Field(description="the source standing in while this one is away")
    on_backup: bool = Field(description="its destinations get the backup's picture now")
    backup_problem: str | None = Field(
        description="why the backup cannot stand in (another size, frame rate or audio)"
    )
    streams: list[str] = Field(description="the destinations relaying it")


class MqttOut(BaseModel):
    enabled: bool
    connected: bool


class HealthOut(BaseModel):
    status: Literal["ok", "degraded"]
    version: str
    ingest: IngestOut
    mqtt: MqttOut
    state_file_error: str | None
    problems: list[str] = Field(
        default=[], description="conflicts with other mqttrelay hosts on the broker"
    )


class HistoryOut(BaseModel):
    now: float = Field(description="the service's clock (unix time), to line the pairs up")
    period_s: float
    span_s: float
    # each sample is [unix time, kbit/s]: a list, as a tuple's schema is not OpenAPI 3.1's
    ingest: list[Annotated[list[float], Field(min_length=2, max_length=2)]]
    streams: dict[str, list[Annotated[list[float], Field(min_length=2, max_length=2)]]]


class TicketOut(BaseModel):
    ticket: str
    expires_in_s: float


class ReloadOut(BaseModel):
    added: list[str]
    removed: list[str]
    changed: list[str]
    renamed: list[str]
    restart_required: list[str]


def timer_out(timer: Timer) -> TimerOut:
    return TimerOut(
        id=timer.id, stream=timer.stream_id, action="on" if timer.enabled else "off", at=timer.due
    )


def source_out(source: SourceState) -> SourceOut:
    fields = asdict(source)
    return SourceOut(**fields.pop("ingest"), **fields)
