"""The shapes the HTTP API reads and answers, as its OpenAPI document shows them."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.dataclasses import dataclass

from mqttrelay.control.one_shot_timers import Timer
from mqttrelay.control.views import IngestState, SourceState, StreamState

MAX_TIMER_S = 7 * 24 * 3600


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


# The router's own shapes, under the API's names: their fields, types and
# descriptions are written once, in control/views.py.
@dataclass(frozen=True)
class StreamOut(StreamState):
    pass


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


@dataclass(frozen=True)
class IngestOut(IngestState):
    pass


@dataclass(frozen=True, kw_only=True)
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
