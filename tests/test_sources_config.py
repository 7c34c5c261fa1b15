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


LISTEN = {"listen": "127.0.0.1:1935"}


def test_tracks_of_one_publish_are_sources_of_their_own() -> None:
    """OBS multitrack: the vertical canvas (video track 1) and the VOD sound
    (audio track 1) on ingest.url's stream name, each a source."""
    tracks = [
        {"id": "vertical", "url": MAIN, "video_track": 1},
        {"id": "vod", "url": MAIN, "audio_track": 1},
        {"id": "tall_vod", "url": MAIN, "video_track": 1, "audio_track": 1},
    ]
    both = config(tracks, "vertical", **LISTEN)
    assert both.ingest.source_tracks == {
        "main": (0, 0), "vertical": (1, 0), "vod": (0, 1), "tall_vod": (1, 1)
    }  # fmt: skip
    assert config([{"id": "v", "url": TALL}]).ingest.source_tracks["v"] == (0, 0)


@pytest.mark.parametrize(
    ("sources", "ingest", "expected"),
    [
        (
            [{"id": "v", "url": MAIN, "video_track": 1}],
            {},
            "ingest.sources 'v': video_track and audio_track need the built-in ingest",
        ),
        (
            [{"id": "v", "url": TALL, "audio_track": 2}],
            {},
            "need the built-in ingest (ingest.listen)",
        ),
        (
            [{"id": "v", "url": MAIN}],
            LISTEN,
            "ingest.sources 'v': its url and tracks are already source 'main' (another track",
        ),
        (
            [
                {"id": "a", "url": MAIN, "video_track": 1},
                {"id": "b", "url": MAIN, "video_track": 1},
            ],
            LISTEN,
            "ingest.sources 'b': its url and tracks are already source 'a'",
        ),
        ([{"id": "v", "url": MAIN, "video_track": 256}], LISTEN, "less than or equal to 255"),
        ([{"id": "v", "url": MAIN, "audio_track": -1}], LISTEN, "greater than or equal to 0"),
        ([{"id": "v", "url": MAIN, "video_track": "one"}], LISTEN, "valid integer"),
    ],
)
def test_bad_tracks_are_named(
    sources: list[dict[str, Any]], ingest: dict[str, Any], expected: str
) -> None:
    assert expected in problem(sources, "main", **ingest)
