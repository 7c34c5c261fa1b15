"""config.yaml: its sections (model.py) and reading the file (file.py). Every
part of mqttrelay imports from here; app.py hands each part its section."""

from mqttrelay.config.file import (
    format_validation_error,
    image_problem,
    load_config,
    parse_config,
)
from mqttrelay.config.model import (
    DESTINATION_SCHEMES,
    MIN_TOKEN_LENGTH,
    RESERVED_STREAM_IDS,
    STREAM_ID_PATTERN,
    ApiConfig,
    Config,
    ConfigError,
    FfmpegConfig,
    IngestConfig,
    MqttConfig,
    ScheduleConfig,
    StandbyConfig,
    StreamConfig,
    check_destination_url,
    check_host_name,
    ingest_app_and_stream,
    is_loopback,
    policy_problems,
)

__all__ = [
    "DESTINATION_SCHEMES",
    "MIN_TOKEN_LENGTH",
    "RESERVED_STREAM_IDS",
    "STREAM_ID_PATTERN",
    "ApiConfig",
    "Config",
    "ConfigError",
    "FfmpegConfig",
    "IngestConfig",
    "MqttConfig",
    "ScheduleConfig",
    "StandbyConfig",
    "StreamConfig",
    "check_destination_url",
    "check_host_name",
    "format_validation_error",
    "image_problem",
    "ingest_app_and_stream",
    "is_loopback",
    "load_config",
    "parse_config",
    "policy_problems",
]
