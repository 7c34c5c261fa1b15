"""config.yaml as a whole: the root model and the checks across its sections.
Each section has its module (ingest.py, relaying.py, transports.py, streams.py,
profiles.py; shared checks in checks.py); every name is re-exported here and
from mqttrelay.config (pure)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator, model_validator

from mqttrelay.config.checks import (
    MAIN_SOURCE,
    MAX_STREAMS,
    MIN_KEY_LENGTH,
    MIN_TOKEN_LENGTH,
    RESERVED_STREAM_IDS,
    SOURCE_ID_PATTERN,
    STREAM_ID_PATTERN,
    ConfigError,
    Section,
    check_entered_key,
    check_host_name,
    check_stream_id,
    check_stream_key,
    check_stream_name,
    ingest_app_and_stream,
    is_loopback,
    split_listen,
)
from mqttrelay.config.ingest import IngestConfig, SourceConfig, check_ingest_url
from mqttrelay.config.profiles import PROFILE_NAME_PATTERN, ProfileConfig
from mqttrelay.config.relaying import FfmpegConfig, StandbyConfig
from mqttrelay.config.streams import ScheduleConfig, StreamConfig
from mqttrelay.config.transports import ApiConfig, MqttConfig

__all__ = [
    "MAIN_SOURCE",
    "MAX_STREAMS",
    "MIN_KEY_LENGTH",
    "MIN_TOKEN_LENGTH",
    "RESERVED_STREAM_IDS",
    "SOURCE_ID_PATTERN",
    "STREAM_ID_PATTERN",
    "ApiConfig",
    "Config",
    "ConfigError",
    "FfmpegConfig",
    "IngestConfig",
    "MqttConfig",
    "ScheduleConfig",
    "SourceConfig",
    "StandbyConfig",
    "StreamConfig",
    "check_entered_key",
    "check_host_name",
    "check_ingest_url",
    "check_stream_id",
    "check_stream_key",
    "check_stream_name",
    "ingest_app_and_stream",
    "is_loopback",
    "policy_problems",
    "split_listen",
]

ProfileName = Annotated[str, Field(pattern=PROFILE_NAME_PATTERN, max_length=32)]


class Config(Section):
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
