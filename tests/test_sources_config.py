"""ingest.sources, ingest.backup and streams[].source as plain values."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from mqttrelay.config import Config
from mqttrelay.control.reload import plan_reload
from mqttrelay.relays.factory import encoder_key

MAIN = "rtmp://127.0.0.1:1935/live/stream"
TALL = "rtmp://127.0.0.1:1935/live/vertical"


def config(sources: list[dict[str, Any]], source: str = "main", **ingest: Any) -> Config:
    return Config.model_validate(
        {
            "ingest": {"url": MAIN, "sources": sources, **ingest},
            "streams": [{"id": "a", "url": "rtmp://p.example/app", "source": source}],
        }
    )


def problem(sources: list[dict[str, Any]], source: str = "main", **ingest: Any) -> str:
    with pytest.raises(ValidationError) as caught:
        config(sources, source, **ingest)
    return str(caught.value)


def test_sources_and_their_defaults() -> None:
    plain = Config.model_validate({"streams": [{"id": "a", "url": "rtmp://p.example/x"}]})
    assert plain.streams[0].source == "main"
    assert plain.ingest.source_urls == {"main": plain.ingest.url}
    tall = [{"id": "vertical", "url": TALL, "backup": "main"}]
    both = config(tall, "vertical", backup="vertical")
    assert both.ingest.source_urls == {"main": MAIN, "vertical": TALL}
    assert both.ingest.backups == {"main": "vertical", "vertical": "main"}
    assert both.streams[0].source == "vertical"


@pytest.mark.parametrize(
    ("sources", "source", "ingest", "expected"),
    [
        ([], "vertical", {}, "unknown source 'vertical' (sources: main)"),
        ([{"id": "main", "url": TALL}], "main", {}, "source id 'main' is used twice"),
        (
            [{"id": "v", "url": "rtmp://127.0.0.1:1935/other/vertical"}],
            "main",
            {},
            "same ingest as ingest.url",
        ),
        (
            [{"id": "v", "url": "rtmp://127.0.0.1:1936/live/vertical"}],
            "main",
            {},
            "same ingest as ingest.url",
        ),
        ([{"id": "v", "url": MAIN}], "main", {}, "its url is already a source"),
        ([{"id": "v", "url": "file:///etc/passwd"}], "main", {}, "rtmp:// or rtmps://"),
        ([{"id": "V!", "url": TALL}], "main", {}, "String should match pattern"),
        ([{"id": "v", "url": TALL, "backup": "x"}], "main", {}, "unknown backup 'x'"),
        ([{"id": "v", "url": TALL, "backup": "v"}], "main", {}, "cannot be its own backup"),
        ([], "main", {"backup": "nope"}, "source 'main': unknown backup 'nope'"),
    ],
)
def test_bad_sources_are_named(
    sources: list[dict[str, Any]], source: str, ingest: dict[str, Any], expected: str
) -> None:
    assert expected in problem(sources, source, **ingest)


def test_a_destination_moved_to_another_source_gets_a_new_relay() -> None:
    old = config([{"id": "vertical", "url": TALL}])
    new = config([{"id": "vertical", "url": TALL}], "vertical")
    assert [s.id for s in plan_reload(old, new).changed] == ["a"]


def test_encoders_are_per_profile_and_source() -> None:
    assert encoder_key("square", "main") == "square"
    assert encoder_key("square", "vertical") == "square@vertical"
