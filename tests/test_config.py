from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mqttrelay.config import ConfigError, load_config, parse_config

GOOD = """
timezone: Europe/Paris
state_file: state.json
ingest:
  url: rtmp://127.0.0.1:1935/live/stream
  mode: cached
streams:
  - id: facebook
    name: Facebook
    url: rtmps://live-api-s.facebook.com:443/rtmp/
    key: ${FB_KEY}
  - id: tiktok
    url: rtmp://push.tiktok.example/live
    key: tt-key-1234
    enabled: true
schedules:
  - stream: tiktok
    action: "on"
    cron: "0 19 * * fri"
"""


def problems(text: str, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(text, env=env or {})
    return info.value.problems


def test_good_config_and_env_secret(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(GOOD)
    config = load_config(path, env={"FB_KEY": "FB-SECRET"})
    fb = config.stream("facebook")
    assert fb is not None and fb.target == "rtmps://live-api-s.facebook.com:443/rtmp/FB-SECRET"
    tiktok = config.stream("tiktok")
    assert tiktok is not None and tiktok.target == "rtmp://push.tiktok.example/live/tt-key-1234"
    assert tiktok.name == "tiktok" and tiktok.enabled
    assert config.state_file == tmp_path / "state.json"
    assert "FB-SECRET" in config.secrets


def test_missing_env_var_is_named() -> None:
    assert problems(GOOD) == ["streams[0].key: environment variable FB_KEY is not set"]


@pytest.mark.parametrize(
    ("snippet", "expected"),
    [
        ("streams: [{id: a, url: 'file:///etc/passwd'}]", "streams[0].url: url must start with"),
        ("streams: [{id: a, url: 'concat:a|b'}]", "streams[0].url: url must start with"),
        ("streams: [{id: a, url: '-y'}]", "streams[0].url: url must not start with '-'"),
        ("streams: [{id: a, url: 'rtmp://h/a b'}]", "streams[0].url: url must not contain spaces"),
        ('streams: [{id: a, url: "rtmp://h/a\\nb"}]', "streams[0].url: url must not contain"),
        ("streams: [{id: a, url: 'rtmp:///nohost'}]", "streams[0].url: url has no host"),
        ("streams: [{id: a, url: 'rtmp://h/a', key: '-x'}]", "streams[0].key: key must not"),
        ("streams: [{id: A!, url: 'rtmp://h/a'}]", "streams[0].id: String should match"),
        ("streams: [{id: all, url: 'rtmp://h/a'}]", "streams[0].id: 'all' is reserved"),
        ("streams: [{id: a, url: 'rtmp://h/a', colour: red}]", "streams[0].colour: unknown key"),
        ("streams: [{id: a, url: 'rtmp://h/a'}, {id: a, url: 'rtmp://h/b'}]", "used twice"),
        ("timezone: Mars/Base", "timezone: unknown time zone 'Mars/Base'"),
        ("ingest: {mode: fast}", "ingest.mode: Input should be 'cached' or 'direct'"),
        ("ingest: {hold_s: -1}", "ingest.hold_s: Input should be greater than or equal to 0"),
        ("ingest: {url: 'http://x/live'}", "ingest.url: ingest url must start with rtmp"),
        ("schedules: [{stream: nope, action: 'on', cron: '0 19 * * fri'}]", "unknown stream"),
        ("schedules: [{stream: all, action: 'on', cron: '0 19 *'}]", "five fields"),
        ("schedules: [{stream: all, action: 'on'}]", "exactly one of 'cron' or 'at'"),
        ("schedules: [{stream: all, action: 'on', cron: '61 * * * *'}]", "schedules[0].cron: bad"),
        ("schedules: [{stream: all, action: 'on', cron: '0 19 * * funday'}]", "funday"),
        ("schedules: [{stream: all, action: 'on', at: 'soon'}]", "schedules[0].at"),
        ("schedules: [{stream: all, action: on, cron: '0 19 * * *'}]", "schedules[0].action"),
        ("mqtt: {port: 99999}", "mqtt.port: Input should be less than or equal to 65535"),
        ("- just a list", "(top level): must be a mapping"),
        ("streams: [", "(yaml) line"),
        ("extra: 1", "extra: unknown key"),
    ],
)
def test_bad_config_problem_names_the_field(snippet: str, expected: str) -> None:
    found = problems(snippet)
    assert any(expected in p for p in found), found


def test_several_problems_are_all_reported() -> None:
    found = problems("timezone: Nowhere/Here\nmqtt: {port: 0}\nextra: 1\n")
    assert len(found) == 3


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=300))
def test_fuzzed_config_text_only_gives_config_errors(text: str) -> None:
    try:
        parse_config(text, env={})
    except ConfigError as exc:
        assert exc.problems and all(isinstance(p, str) and p for p in exc.problems)


yaml_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=10,
)


@settings(max_examples=150, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["ingest", "streams", "mqtt", "api", "timezone", "schedules"]), yaml_values
    )
)
def test_fuzzed_config_structure_only_gives_config_errors(raw: dict[str, object]) -> None:
    import yaml

    try:
        parse_config(yaml.safe_dump(raw), env={})
    except ConfigError as exc:
        assert exc.problems


def test_check_command_prints_one_line_per_problem(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("timezone: Nowhere/Here\nstreams: [{id: a, url: 'file:/x', key: K-12345678}]\n")
    result = subprocess.run(
        [sys.executable, "-m", "mqttrelay", "check", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert any("timezone" in line for line in lines) and any(
        "streams[0].url" in line for line in lines
    )


def test_check_command_ok_and_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("streams: [{id: a, url: 'rtmp://h/app', key: K-12345678}]\n")
    ok = subprocess.run(
        [sys.executable, "-m", "mqttrelay", "check", "--config", str(path)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert ok.returncode == 0 and "OK" in ok.stdout
    missing = subprocess.run(
        [sys.executable, "-m", "mqttrelay", "check", "--config", str(tmp_path / "nope.yaml")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert missing.returncode != 0 and "cannot read" in missing.stderr
    assert "Traceback" not in missing.stderr


def test_example_config_in_repo_is_valid() -> None:
    example = Path(__file__).resolve().parent.parent / "config.yaml"
    config = load_config(
        example,
        env={
            "FACEBOOK_KEY": "x" * 8,
            "YOUTUBE_KEY": "y" * 8,
            "TIKTOK_KEY": "z" * 8,
            "ONESTREAM_KEY": "w" * 8,
        },
    )
    assert config.streams
