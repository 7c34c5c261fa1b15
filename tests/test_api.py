"""The HTTP API on a real manager, called in the same event loop."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from mqttrelay.app import Service, StartupError, check_api_exposure
from mqttrelay.config import Config, load_config
from mqttrelay.control.router import Router
from mqttrelay.transports.http.api import create_app

from .conftest import CANARY_KEY
from .support import free_port

TOKEN = "test-token-123"


def write_offline_config(tmp_path: Path, streams: list[str], token: str | None = None) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "state_file": "state.json",
                "ingest": {"url": f"rtmp://127.0.0.1:{free_port()}/live/stream"},
                "mqtt": {"enabled": False},
                "api": {"port": free_port(), "token": token},
                "streams": [
                    {
                        "id": s,
                        "name": s.title(),
                        "url": "rtmps://live-api-s.example.com:443/rtmp/",
                        "key": f"{s}-{CANARY_KEY}",
                    }
                    for s in streams
                ],
            }
        )
    )
    return path


@contextlib.asynccontextmanager
async def api_client(
    config_path: Path, managers: Callable[..., Service], token: str | None = None
) -> AsyncIterator[tuple[httpx.AsyncClient, Router]]:
    service = managers(load_config(config_path), config_path)
    manager = service.router
    await service.start()
    app = create_app(service.api)
    transport = httpx.ASGITransport(app=app)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with httpx.AsyncClient(
        transport=transport, base_url="http://127.0.0.1", headers=headers
    ) as client:
        yield client, manager


def assert_no_canary(response: httpx.Response) -> None:
    assert CANARY_KEY not in response.text


async def test_streams_endpoints(tmp_path: Path, managers: Callable[[Config], Service]) -> None:
    path = write_offline_config(tmp_path, ["facebook", "tiktok"])
    async with api_client(path, managers) as (client, manager):
        response = await client.get("/api/streams")
        assert response.status_code == 200
        body = response.json()
        assert [s["id"] for s in body] == ["facebook", "tiktok"]
        assert body[0]["url"] == "rtmps://live-api-s.example.com:443/rtmp/****"
        assert body[0]["status"] == "off" and body[0]["enabled"] is False
        assert_no_canary(response)

        one = await client.get("/api/streams/tiktok")
        assert one.status_code == 200 and one.json()["name"] == "Tiktok"
        assert (await client.get("/api/streams/nope")).status_code == 404

        put = await client.put("/api/streams/tiktok", json={"enabled": True})
        assert put.status_code == 200
        assert put.json()["enabled"] is True and put.json()["status"] in ("waiting", "starting")
        assert manager.stream_state("tiktok").enabled
        assert_no_canary(put)
        off = await client.put("/api/streams/tiktok", json={"enabled": False})
        assert off.json()["enabled"] is False

        assert (await client.put("/api/streams/nope", json={"enabled": True})).status_code == 404
        for bad in ({}, {"enabled": "maybe"}, {"enabled": True, "extra": 1}, [1]):
            response = await client.put("/api/streams/tiktok", json=bad)
            assert response.status_code == 422, bad
        text = await client.put(
            "/api/streams/tiktok", content=b"enabled=true", headers={"Content-Type": "text/plain"}
        )
        assert text.status_code == 415
        broken = await client.put(
            "/api/streams/tiktok", content=b"{", headers={"Content-Type": "application/json"}
        )
        assert broken.status_code == 422
        huge = await client.put(
            "/api/streams/tiktok",
            content=b'{"enabled": true, "x": "' + b"a" * 20000 + b'"}',
            headers={"Content-Type": "application/json"},
        )
        assert huge.status_code == 413
        assert not manager.stream_state("tiktok").enabled


async def test_timers(tmp_path: Path, managers: Callable[[Config], Service]) -> None:
    path = write_offline_config(tmp_path, ["facebook"])
    async with api_client(path, managers) as (client, manager):
        await client.put("/api/streams/facebook", json={"enabled": True})
        made = await client.post("/api/streams/facebook/timer", json={"action": "off", "in_s": 1})
        assert made.status_code == 200, made.text
        assert made.json()["action"] == "off"
        later = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
        second = await client.post(
            "/api/streams/facebook/timer", json={"action": "on", "at": later}
        )
        assert second.status_code == 200
        listed = (await client.get("/api/streams/facebook/timer")).json()
        assert [t["action"] for t in listed] == ["off", "on"]
        state = (await client.get("/api/streams/facebook")).json()
        assert state["next_change_to"] == "off"

        for _ in range(50):  # the 1 s timer fires
            if not manager.stream_state("facebook").enabled:
                break
            await asyncio.sleep(0.1)
        assert not manager.stream_state("facebook").enabled
        listed = (await client.get("/api/streams/facebook/timer")).json()
        assert len(listed) == 1 and listed[0]["id"] == second.json()["id"]

        gone = await client.delete("/api/streams/facebook/timer")
        assert gone.status_code == 200 and len(gone.json()) == 1
        assert (await client.get("/api/streams/facebook/timer")).json() == []

        past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
        bad_bodies: list[Any] = [
            {"action": "off"},
            {"action": "off", "in_s": 5, "at": later},
            {"action": "sideways", "in_s": 5},
            {"action": "off", "in_s": -1},
            {"action": "off", "in_s": 10**9},
            {"action": "on", "at": past},
            {"action": "on", "at": "not a time"},
        ]
        for body in bad_bodies:
            response = await client.post("/api/streams/facebook/timer", json=body)
            assert response.status_code == 422, body
        missing = await client.post("/api/streams/nope/timer", json={"action": "on", "in_s": 5})
        assert missing.status_code == 404
        assert (await client.get("/api/streams/nope/timer")).status_code == 404


async def test_token_required_everywhere_when_set(
    tmp_path: Path, managers: Callable[[Config], Service]
) -> None:
    path = write_offline_config(tmp_path, ["facebook"], token=TOKEN)
    async with api_client(path, managers, token=TOKEN) as (client, _):
        assert (await client.get("/api/streams")).status_code == 200
        assert (await client.get("/metrics")).status_code == 200
        no_auth = {"Authorization": ""}
        wrong = {"Authorization": "Bearer nope"}
        for headers in (no_auth, wrong):
            for method, url in [
                ("GET", "/api/streams"),
                ("GET", "/api/streams/facebook"),
                ("GET", "/api/health"),
                ("GET", "/metrics"),
                ("POST", "/api/reload"),
                ("GET", "/api/streams/facebook/timer"),
            ]:
                response = await client.request(method, url, headers=headers)
                assert response.status_code == 401, (method, url, headers)
            put = await client.put("/api/streams/facebook", json={"enabled": True}, headers=headers)
            assert put.status_code == 401
        page = await client.get("/", headers=no_auth)
        assert page.status_code == 200 and "mqttrelay" in page.text  # the page asks for it


def test_exposed_api_needs_a_token(tmp_path: Path) -> None:
    config = Config.model_validate({"api": {"host": "0.0.0.0"}})
    with pytest.raises(StartupError, match=r"api\.token is not set"):
        check_api_exposure(config)
    check_api_exposure(Config.model_validate({"api": {"host": "0.0.0.0", "token": "x" * 16}}))
    check_api_exposure(Config.model_validate({"api": {"host": "127.0.0.1"}}))


async def test_health_metrics_hooks_page(
    tmp_path: Path, managers: Callable[[Config], Service]
) -> None:
    path = write_offline_config(tmp_path, ["facebook"])
    async with api_client(path, managers) as (client, _):
        health = (await client.get("/api/health")).json()
        assert health["status"] == "ok" and health["ingest"]["live"] is False
        assert health["mqtt"] == {"enabled": False, "connected": False}
        metrics = await client.get("/metrics")
        assert 'mqttrelay_stream_enabled{stream="facebook"} 0.0' in metrics.text
        assert "mqttrelay_ingest_live 0.0" in metrics.text
        assert "mqttrelay_mqtt_connected 0.0" in metrics.text
        hook = await client.post(
            "/api/hooks/on_publish",
            content=b"call=publish&app=live&name=stream",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert hook.status_code == 200
        done = await client.post(
            "/api/hooks/on_publish_done",
            content=b"call=publish_done&name=stream",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert done.status_code == 200
        page = await client.get("/")
        assert page.status_code == 200 and 'data-testid="stop-all"' in page.text
        assert_no_canary(page)
        schema = (await client.get("/openapi.json")).json()
        assert "/api/streams/{stream_id}" in schema["paths"]


async def test_reload_adds_removes_and_keeps_untouched(
    tmp_path: Path, managers: Callable[[Config], Service]
) -> None:
    path = write_offline_config(tmp_path, ["facebook", "tiktok", "youtube"])
    async with api_client(path, managers) as (client, manager):
        await client.put("/api/streams/facebook", json={"enabled": True})
        raw = yaml.safe_load(path.read_text())
        streams = raw["streams"]
        streams[1]["key"] = "new-" + CANARY_KEY  # tiktok changed
        streams[2]["name"] = "YT"  # youtube renamed only
        raw["streams"] = [streams[0], streams[1], streams[2], {**streams[0], "id": "kick"}]
        path.write_text(yaml.safe_dump(raw))
        result = await client.post("/api/reload")
        assert result.status_code == 200, result.text
        assert result.json() == {
            "added": ["kick"],
            "removed": [],
            "changed": ["tiktok"],
            "renamed": ["youtube"],
            "restart_required": [],
        }
        assert (await client.get("/api/streams/youtube")).json()["name"] == "YT"
        assert manager.stream_state("facebook").enabled

        raw["streams"] = [s for s in raw["streams"] if s["id"] != "kick"]
        path.write_text(yaml.safe_dump(raw))
        result = await client.post("/api/reload")
        assert result.json()["removed"] == ["kick"]
        assert (await client.get("/api/streams/kick")).status_code == 404

        path.write_text("streams: [{id: BAD}]")
        refused = await client.post("/api/reload")
        assert refused.status_code == 422
        assert any("streams[0]" in p for p in refused.json()["detail"])
        assert [s.id for s in manager.snapshot()] == ["facebook", "tiktok", "youtube"]
