"""The bitrate history the page draws on load, and the 422s said in plain words:
pure parts as values, then through the API on a real router."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from mqttrelay.app import Service
from mqttrelay.config import Config
from mqttrelay.control.views import IngestState, StreamState
from mqttrelay.relays.status import Status
from mqttrelay.transports.http.history import BitrateHistory, HistorySampler
from mqttrelay.transports.http.messages import readable, with_messages

from .kit import CANARY_KEY, api_client, assert_no_canary, write_offline_config


def _state(sid: str, status: str, kbps: float) -> StreamState:
    return StreamState(
        sid,
        sid,
        "rtmp://h/a/****",
        True,
        Status(status),
        kbps,
        None,
        0,
        0,
        0,
        0,
        None,
        None,
        None,
        0,
    )


def test_history_is_a_ring_buffer_that_forgets_gone_destinations() -> None:
    history = BitrateHistory(period_s=2, span_s=10)  # 6 samples each
    for i in range(10):
        history.record(100.0 + 2 * i, {"a": 490.0 + i, "b": 0.0}, 500.0)
    assert [t for t, _ in history.series("a")] == [108.0, 110.0, 112.0, 114.0, 116.0, 118.0]
    assert history.series("a")[-1] == (118.0, 499.0)
    history.record(120.0, {"b": 1.0}, 0.0)
    assert history.series("a") == [] and len(history.series("b")) == 6
    body = history.as_json(121.0)
    assert set(body) == {"now", "period_s", "span_s", "ingest", "streams"}
    assert list(body["streams"]) == ["b"]  # type: ignore[call-overload]


def test_history_counts_only_what_is_sent() -> None:
    history = BitrateHistory()
    states = [_state("live", "live", 480), _state("gone", "failed", 1500),
              _state("slow", "congested", 200), _state("off", "off", 30)]  # fmt: skip
    history.record_states(1.0, states, IngestState("cached", True, 500.0, None))
    assert [history.series(s.id)[0][1] for s in states] == [480.0, 0.0, 200.0, 0.0]
    assert list(history.ingest) == [(1.0, 500.0)]
    history.record_states(3.0, [], IngestState("cached", False, 12.0, None))
    assert list(history.ingest)[-1] == (3.0, 0.0)


@pytest.mark.parametrize(
    ("loc", "msg", "kind", "words"),
    [
        (
            ["body", "url"],
            "Value error, url must start with rtmp://, rtmps://, srt://",
            "value_error",
            "The server address must start with rtmp://, rtmps:// or srt://",
        ),
        (["body", "url"], "Value error, url has no host", "value_error",
         "The server address has no host"),
        (["body", "key"], "Value error, key must not contain '${'", "value_error",
         "The stream key must not contain '${'"),
        (["body", "id"], "String should match pattern '^[a-z0-9_-]+$'",
         "string_pattern_mismatch", "The id may only hold lowercase letters, digits, - and _"),
        (["body", "id"], "Field required", "missing", "The id is missing"),
        (["body", "id"], "String should have at most 64 characters", "string_too_long",
         "The id: string should have at most 64 characters"),
        (["body", "colour"], "Extra inputs are not permitted", "extra_forbidden",
         "colour is not something this form takes"),
        (["body"], "JSON decode error", "json_invalid", "The request is not valid JSON"),
    ],
)  # fmt: skip
def test_validation_errors_in_plain_words(loc: list[str], msg: str, kind: str, words: str) -> None:
    assert readable(loc, msg, kind) == words


def test_a_422_keeps_its_detail_and_adds_words() -> None:
    body = with_messages([{"loc": ("body", "url"), "msg": "Value error, url has no host",
                           "type": "value_error", "input": "rtmp:///x"}])  # fmt: skip
    assert body["detail"] == [{"loc": ["body", "url"], "msg": "Value error, url has no host",
                               "type": "value_error",
                               "message": "The server address has no host"}]  # fmt: skip
    assert body["message"] == "The server address has no host"


async def test_history_and_plain_words_through_the_api(
    tmp_path: Path, services: Callable[[Config], Service]
) -> None:
    path = write_offline_config(tmp_path, ["facebook"])
    async with api_client(path, services) as (client, router):
        app = client._transport.app  # type: ignore[attr-defined]
        sampler: HistorySampler = app.state.history
        sampler.sample()
        sampler.sample()
        r = await client.get("/api/history")
        assert r.status_code == 200
        data = r.json()
        assert data["period_s"] == 2 and data["span_s"] == 600
        assert [v for _, v in data["streams"]["facebook"]] == [0.0, 0.0]
        assert len(data["ingest"]) == 2 and data["now"] >= data["ingest"][-1][0]
        sampler.start()  # the task app.py starts: it samples at once, then every 2 s
        await asyncio.sleep(0.1)
        await sampler.stop()
        assert len((await client.get("/api/history")).json()["ingest"]) == 3

        for body, words in [
            ({"id": "a", "url": "http://x/y"},
             "The server address must start with rtmp://, rtmps:// or srt://"),
            ({"id": "a", "url": "rtmp://h/app", "key": f"rtmp://h/app/{CANARY_KEY}"},
             "The stream key looks like a server address"),
            ({"id": "a", "url": f"rtmps://a.rtmps.youtube.com:443/live2/{CANARY_KEY}"},
             "The server address goes on past rtmps://a.rtmps.youtube.com:443/live2/"),
        ]:  # fmt: skip
            r = await client.post("/api/streams", json=body)
            assert r.status_code == 422, r.text
            assert words in r.json()["message"], r.text
            assert all("message" in d and "loc" in d for d in r.json()["detail"])
            assert_no_canary(r)
        assert router.stream_ids == ["facebook"]
