"""docs/config.md and the JSON Schema: made from the model, checked against the files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema_rs
import pytest
import yaml
from pydantic import BaseModel, Field

from mqttrelay.config import parse_config
from mqttrelay.config.reference import (
    SCHEMA_FILE,
    json_schema,
    missing_descriptions,
    render_reference,
    render_schema,
    rows,
)

ROOT = Path(__file__).resolve().parent.parent
STALE = "is stale: run scripts/config-docs"


def test_docs_config_md_is_what_the_model_makes() -> None:
    assert (ROOT / "docs" / "config.md").read_text(encoding="utf-8") == render_reference(), (
        f"docs/config.md {STALE}"
    )


def test_the_published_schema_is_what_the_model_makes() -> None:
    assert (ROOT / SCHEMA_FILE).read_text(encoding="utf-8") == render_schema(), (
        f"{SCHEMA_FILE} {STALE}"
    )


def test_every_key_says_what_it_does() -> None:
    assert missing_descriptions() == []
    keys = {key for key, _, _ in rows()}
    assert {"ingest.hold_s", "streams[].max_delay_s", "profiles.<name>.fit", "schedules[].at"} <= (
        keys
    )


class _Leaf(BaseModel):
    z: int = 1


class _Tree(BaseModel):
    a: bool = True
    s: _Leaf | None = None
    lst: list[_Leaf] = []
    d: dict[str, _Leaf] = {}
    r: str


def test_rows_name_keys_as_config_yaml_writes_them() -> None:
    assert [(key, default) for key, default, _ in rows(_Tree)] == [
        ("a", "`true`"),
        ("s", "none"),
        ("s.z", "`1`"),
        ("lst", "`[]`"),
        ("lst[].z", "`1`"),
        ("d", "`{}`"),
        ("d.<name>.z", "`1`"),
        ("r", "*required*"),
    ]
    assert missing_descriptions(_Tree) == [key for key, _, _ in rows(_Tree)]


class _Bar(BaseModel):
    x: str = Field("", description="a | b,\n  on two lines")


def test_a_description_stays_in_its_cell() -> None:
    assert '| `x` | `""` | a \\| b, on two lines |' in render_reference(_Bar).splitlines()


def test_schema_command_prints_the_schema() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mqttrelay", "schema"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == json_schema()


def validator() -> jsonschema_rs.Draft7Validator:
    schema = json_schema()
    assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"
    assert "$defs" not in json.dumps(schema)  # draft-07 spells them definitions
    return jsonschema_rs.Draft7Validator(schema)


def test_the_shipped_example_is_valid_in_an_editor() -> None:
    text = (ROOT / "config.yaml").read_text()
    assert text.startswith("# yaml-language-server: $schema=docs/config.schema.json\n")
    assert validator().is_valid(yaml.safe_load(text))


def test_env_references_are_valid_where_they_are_allowed() -> None:
    raw = {
        "ingest": {"publish_key": "${OBS_KEY}", "hook_secret": "${HOOK}"},
        "mqtt": {"password": "${MQTT_PASSWORD}"},
        "api": {"token": "${PAGE_TOKEN}"},
        "streams": [{"id": "a", "url": "rtmp://h/app", "key": "${A_KEY}"}],
        "schedules": [{"stream": "a", "action": "on", "at": "2026-05-01 19:00"}],
    }
    check = validator()
    assert check.is_valid(raw), [e.message for e in check.iter_errors(raw)]
    env = {
        "OBS_KEY": "obs",
        "HOOK": "h" * 16,
        "MQTT_PASSWORD": "pw",
        "PAGE_TOKEN": "t" * 16,
        "A_KEY": "k" * 8,
    }
    assert parse_config(yaml.safe_dump(raw), env=env).api.token == "t" * 16


@pytest.mark.parametrize(
    "text",
    [
        "ingest: {hodl_s: 3}",
        "schedules: [{stream: a, action: on, cron: '0 19 * * *'}]",  # YAML: action: true
        "mqtt: {port: 99999}",
        "ingest: {mode: fast}",
        "streams: [{id: a}]",
    ],
)
def test_an_editor_flags_what_check_refuses(text: str) -> None:
    assert not validator().is_valid(yaml.safe_load(text))
