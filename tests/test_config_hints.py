"""`check`'s hints: the nearest known key, and quoting an on/off YAML read as a boolean."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Literal

import pytest

from mqttrelay.config import ConfigError, parse_config
from mqttrelay.config.hints import boolean_hint, known_keys, nearest_key
from mqttrelay.config.model import Config, IngestConfig, StreamConfig
from mqttrelay.config.profiles import ProfileConfig


@pytest.mark.parametrize(
    ("unknown", "known", "expected"),
    [
        ("hodl_s", IngestConfig.model_fields, "hold_s"),
        ("Hold_S", IngestConfig.model_fields, "hold_s"),
        ("hold", IngestConfig.model_fields, "hold_s"),
        ("ingst", Config.model_fields, "ingest"),
        ("schedule", Config.model_fields, "schedules"),
        ("kye", StreamConfig.model_fields, "key"),
        ("colour", StreamConfig.model_fields, None),
        ("x", [], None),
    ],
)
def test_nearest_key(unknown: str, known: list[str], expected: str | None) -> None:
    assert nearest_key(unknown, known) == expected


def test_known_keys_follow_sections_lists_and_maps() -> None:
    assert known_keys(Config, ()) == list(Config.model_fields)
    assert known_keys(Config, ("ingest",)) == list(IngestConfig.model_fields)
    assert known_keys(Config, ("streams", 3)) == list(StreamConfig.model_fields)
    assert known_keys(Config, ("profiles", "vertical")) == list(ProfileConfig.model_fields)
    assert "image" in known_keys(Config, ("standby",))  # an optional section
    assert known_keys(Config, ("nope",)) == []
    assert known_keys(Config, ("streams", "x")) == []
    assert known_keys(Config, ("timezone",)) == []


def test_boolean_hint() -> None:
    action = Literal["on", "off"]
    on = boolean_hint("literal_error", True, action, "Input should be 'on' or 'off'")
    assert on == 'YAML reads an unquoted on as true; write "on" in quotes'
    off = boolean_hint("literal_error", False, action, "Input should be 'on' or 'off'")
    assert off == 'YAML reads an unquoted off as false; write "off" in quotes'
    text = boolean_hint("string_type", True, str, "Input should be a valid string")
    assert text is not None and text.startswith("Input should be a valid string (YAML reads")
    assert boolean_hint("literal_error", "of", action, "m") is None  # a typo, not YAML
    assert boolean_hint("greater_than_equal", True, int, "m") is None


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(text, env={})
    return info.value.problems


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ingest: {hodl_s: 3}", "ingest.hodl_s: unknown key; did you mean 'hold_s'?"),
        ("ingst: {}", "ingst: unknown key; did you mean 'ingest'?"),
        (
            "streams: [{id: a, url: 'rtmp://h/a', kye: k}]",
            "streams[0].kye: unknown key; did you mean 'key'?",
        ),
        (
            "profiles: {v: {width: 16, height: 16, video_bitrate_kbps: 100, fitt: crop}}",
            "profiles.v.fitt: unknown key; did you mean 'fit'?",
        ),
        ("standby: {imag: x.png}", "standby.imag: unknown key; did you mean 'image'?"),
        ("streams: [{id: a, url: 'rtmp://h/a', colour: red}]", "streams[0].colour: unknown key"),
        (
            "streams: [{id: a, url: 'rtmp://h/a'}]\n"
            "schedules: [{stream: a, action: on, cron: '0 19 * * fri'}]",
            'schedules[0].action: YAML reads an unquoted on as true; write "on" in quotes',
        ),
        (
            "streams: [{id: a, url: 'rtmp://h/a'}]\n"
            "schedules: [{stream: a, action: off, cron: '0 19 * * fri'}]",
            'schedules[0].action: YAML reads an unquoted off as false; write "off" in quotes',
        ),
        (
            "streams: [{id: a, url: 'rtmp://h/a', name: yes}]",
            "streams[0].name: Input should be a valid string (YAML reads an unquoted on, off, "
            "yes or no as true or false: quote it)",
        ),
    ],
)
def test_problems_carry_the_hint(text: str, expected: str) -> None:
    assert problems(text) == [expected]


def test_check_prints_the_hints(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(
        "ingest:\n  hodl_s: 3\nstreams:\n  - id: a\n    url: rtmp://h/a\n"
        "schedules:\n  - stream: a\n    action: on\n    cron: '0 19 * * fri'\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "mqttrelay", "check", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"{path}: ingest.hodl_s: unknown key; did you mean 'hold_s'?",
        f'{path}: schedules[0].action: YAML reads an unquoted on as true; write "on" in quotes',
    ]
