"""Round-trip edits of config.yaml's text (pure)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mqttrelay.config import parse_config
from mqttrelay.config.edit import (
    EditError,
    add_stream,
    remove_stream,
    schedules_naming,
    update_section,
    update_stream,
)

SAMPLE = (Path(__file__).parent.parent / "config.yaml").read_text()
ENV = {
    "FACEBOOK_KEY": "f-key-123",
    "TIKTOK_KEY": "t-key-123",
    "YOUTUBE_KEY": "y-key-123",
    "ONESTREAM_KEY": "o-key-123",
}


def test_an_edit_that_changes_nothing_leaves_the_sample_byte_for_byte() -> None:
    first = parse_config(SAMPLE, env=ENV).streams[0].id
    assert update_stream(SAMPLE, first, {}) == SAMPLE


def test_adding_keeps_every_comment_and_reference() -> None:
    text = add_stream(
        SAMPLE, {"id": "kick", "url": "rtmps://k.example:443/app/", "key": "z-key-123"}
    )
    kept = [line for line in SAMPLE.splitlines() if line.strip()]
    assert [line for line in text.splitlines() if line.strip() and line in kept] == kept
    config = parse_config(text, env=ENV)
    assert config.streams[-1].id == "kick" and config.streams[-1].target.endswith("/app/z-key-123")
    assert "${FACEBOOK_KEY}" in text
    assert "\n\nschedules:" in text  # the blank line before the next section stays


def test_changing_a_name_keeps_an_env_key_and_null_values() -> None:
    text = "streams:\n  - id: a\n    url: rtmp://h/x\n    key: ${K}   # from the environment\n"
    text += "mqtt:\n  password: null\n"
    out = update_stream(text, "a", {"name": "Alpha"})
    assert "key: ${K}   # from the environment" in out
    assert "password: null" in out
    assert parse_config(out, env={"K": "v-key-123"}).streams[0].name == "Alpha"


def test_removing_a_key_and_a_stream() -> None:
    text = "streams:\n  - id: a\n    url: rtmp://h/x\n    key: k\n  - id: b\n    url: srt://h:1\n"
    assert "key" not in update_stream(text, "a", {"key": None})
    assert [s.id for s in parse_config(remove_stream(text, "a")).streams] == ["b"]
    with pytest.raises(EditError, match="unknown stream 'c'"):
        remove_stream(text, "c")
    with pytest.raises(EditError, match="cannot be changed"):
        update_stream(text, "a", {"id": "z"})


def test_an_empty_or_flow_list_grows_as_a_block() -> None:
    for text in ("", "streams: []\n", "# only a comment\n"):
        out = add_stream(text, {"id": "a", "url": "rtmp://h/x"})
        assert "\n  - id: a\n" in "\n" + out or out.startswith("streams:\n  - id: a")
        assert [s.id for s in parse_config(out).streams] == ["a"]


def test_sections_and_schedules() -> None:
    out = update_section("# c\n", "ffmpeg", {"path": "/usr/bin/ffmpeg"})
    assert parse_config(out).ffmpeg.path == "/usr/bin/ffmpeg"
    out = update_section(SAMPLE, "ingest", {"mode": "direct"})
    assert parse_config(out, env=ENV).ingest.mode == "direct"
    assert "# where OBS publishes" in out
    assert schedules_naming(SAMPLE, "tiktok") == [0, 1]
    assert schedules_naming(SAMPLE, "nobody") == []


@pytest.mark.parametrize("text", ["[1, 2]\n", "streams: {a: 1}\n", "a: [\n"])
def test_files_that_cannot_be_edited_say_why(text: str) -> None:
    with pytest.raises(EditError):
        add_stream(text, {"id": "a", "url": "rtmp://h/x"})
