"""config.yaml's `streams` and `schedules` sections: the destinations and
the switches at set times (pure)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from zoneinfo import ZoneInfo

from apscheduler.triggers.cron import CronTrigger
from pydantic import Field, field_validator, model_validator

from mqttrelay.config.checks import (
    MAIN_SOURCE,
    SOURCE_ID_PATTERN,
    STREAM_ID_PATTERN,
    Section,
    check_stream_id,
    check_stream_key,
)
from mqttrelay.config.urls import check_destination_url


class StreamConfig(Section):
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


class ScheduleConfig(Section):
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
