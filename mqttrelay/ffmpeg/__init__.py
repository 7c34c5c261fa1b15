"""ffmpeg, as pure values: every command line mqttrelay runs (argv.py) and the
one reader of what ffmpeg and ffprobe write back (output.py). The modules that
run processes (tap, relay, encoder, standby, snapshot, check.py) import
from here and build no argv and parse no output of their own."""

from mqttrelay.ffmpeg.argv import (
    FAST_PROBE,
    LOOP_S,
    build_profile_argv,
    build_relay_argv,
    build_tap_argv,
    build_test_source_argv,
    loop_argv,
    picture_filter,
    probe_argv,
    query_argv,
    snapshot_argv,
)
from mqttrelay.ffmpeg.output import (
    BitrateMeter,
    Progress,
    ProgressParser,
    StreamShape,
    bitrate_kbps,
    encoders_listed,
    ffmpeg_version,
    last_line,
    output_protocols,
    parse_probe,
    progress_field,
)

__all__ = [
    "FAST_PROBE",
    "LOOP_S",
    "BitrateMeter",
    "Progress",
    "ProgressParser",
    "StreamShape",
    "bitrate_kbps",
    "build_profile_argv",
    "build_relay_argv",
    "build_tap_argv",
    "build_test_source_argv",
    "encoders_listed",
    "ffmpeg_version",
    "last_line",
    "loop_argv",
    "output_protocols",
    "parse_probe",
    "picture_filter",
    "probe_argv",
    "progress_field",
    "query_argv",
    "snapshot_argv",
]
