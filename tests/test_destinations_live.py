"""Destinations managed while live, against the real lab: nginx-rtmp ingest and
platforms, an ffmpeg publisher, mosquitto, and `mqttrelay run` for restarts."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import stat
import subprocess
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest
import yaml

from mqttrelay.app import Service
from mqttrelay.config import Config, load_config
from mqttrelay.transports.mqtt.bridge import MqttBridge

from .kit import (
    BUILTIN_KEY,
    CANARY_KEY,
    BuiltinIngest,
    Ingest,
    both_ingests,
    collector,
    ingest_section,
    wait_gone,
    wait_ingest_live,
    wait_publishing,
    wait_status,
)
from .support import (
    Mosquitto,
    NginxRtmp,
    Publisher,
    ServiceProcess,
    eventually,
    free_port,
    require_tool,
    stat_streams,
)

pytestmark = pytest.mark.integration


def lab_config(tmp_path: Path, ingest: Ingest, platforms: NginxRtmp, broker: Mosquitto) -> Path:
    path = tmp_path / "config.yaml"
    dest = f"rtmp://127.0.0.1:{platforms.rtmp_port}/dest"
    raw = {
        "state_file": "state.json",
        "ingest": ingest_section(ingest),
        "mqtt": {"port": broker.port, "node_id": "studio"},
        "api": {"port": free_port()},
        "streams": [
            {"id": "facebook", "url": dest, "key": f"fb-{CANARY_KEY}"},
            {"id": "tiktok", "url": dest, "key": f"tt-{CANARY_KEY}"},
        ],
    }
    path.write_text("# the lab\n" + yaml.safe_dump(raw, sort_keys=False))
    return path


@contextlib.asynccontextmanager
async def lab_service(
    path: Path, services: Callable[..., Service]
) -> AsyncIterator[tuple[httpx.AsyncClient, Service, MqttBridge]]:
    service = services(load_config(path), path)
    await service.start()
    bridge = service.bridge
    assert bridge is not None
    bridge.start()
    app = service.api
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            yield client, service, bridge
    finally:
        await bridge.stop()


def jpeg_size(data: bytes) -> tuple[int, int]:
    """ffprobe reads the JPEG: (width, height)."""
    out = subprocess.run(
        [require_tool("ffprobe"), "-v", "error", "-show_entries", "stream=width,height",
         "-of", "json", "-i", "pipe:0"],
        input=data, capture_output=True, check=True, timeout=30,
    ).stdout  # fmt: skip
    stream = json.loads(out)["streams"][0]
    return stream["width"], stream["height"]


@pytest.mark.slow
@both_ingests()
async def test_add_rekey_delete_while_live_with_picture_and_home_assistant(
    ingest_kind: str,
    tmp_path: Path,
    ingest: Ingest,
    platforms: NginxRtmp,
    publisher: Publisher,
    broker: Mosquitto,
    services: Callable[[Config], Service],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)  # what a key may leak into is every line
    path = lab_config(tmp_path, ingest, platforms, broker)
    async with collector(broker.port) as seen, lab_service(path, services) as (client, svc, _):
        router = svc.router
        await wait_ingest_live(router)
        await router.set_enabled("facebook", True)
        await wait_publishing(platforms, f"fb-{CANARY_KEY}")

        # what OBS sends, and its picture
        r = await client.get("/api/ingest/snapshot")
        assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
        assert jpeg_size(r.content) == (320, 240)
        ingest_state = router.ingest_state()
        assert (ingest_state.width, ingest_state.height) == (320, 240)
        assert ingest_state.fps == 25 and ingest_state.video_codec == "H.264"
        assert ingest_state.audio_codec == "AAC"
        health = (await client.get("/api/health")).json()["ingest"]
        assert (health["live"], health["width"], health["video_codec"]) == (True, 320, "H.264")
        assert "mqttrelay_ingest_live 1.0" in (await client.get("/metrics")).text
        for read in ("/", "/api/health", "/api/settings", "/api/sources", "/api/streams"):
            r = await client.get(read)
            assert r.status_code == 200 and BUILTIN_KEY not in r.text, read  # the publish key

        # added: live at once, with its Home Assistant entities
        body = {"id": "youtube", "name": "YouTube", "enabled": True, "key": f"yt-{CANARY_KEY}",
                "url": f"rtmp://127.0.0.1:{platforms.rtmp_port}/dest"}  # fmt: skip
        r = await client.post("/api/streams", json=body)
        assert r.status_code == 201, r.text
        await wait_publishing(platforms, f"yt-{CANARY_KEY}")
        switch_topic = "homeassistant/switch/studio/youtube/config"

        async def discovered() -> bool:
            payload = seen.last(switch_topic)
            return bool(payload) and json.loads(payload or b"{}")["name"] == "YouTube"

        await eventually(discovered, 20, "the new destination's switch in Home Assistant")

        # a new key: that relay moves to it, the other relay is untouched
        youtube_pid = router.stream_state("youtube").pid
        r = await client.patch("/api/streams/facebook", json={"key": f"fb2-{CANARY_KEY}"})
        assert r.status_code == 200 and CANARY_KEY not in r.text
        await wait_publishing(platforms, f"fb2-{CANARY_KEY}")
        await wait_gone(platforms, f"fb-{CANARY_KEY}")
        assert router.stream_state("youtube").pid == youtube_pid

        # deleted: the relay stops and its entities go
        assert (await client.delete("/api/streams/youtube")).status_code == 204
        await wait_gone(platforms, f"yt-{CANARY_KEY}")
        await seen.wait(switch_topic, b"")

        # Home Assistant's picture and the ingest's resolution
        async def picture() -> bool:
            payload = seen.last("streamrelay/host/studio/ingest/picture")
            return bool(payload) and payload.startswith(b"\xff\xd8")  # type: ignore[union-attr]

        await eventually(picture, 30, "a JPEG on the picture topic")
        info = json.loads(seen.last("streamrelay/host/studio/ingest/info") or b"{}")
        assert info["resolution"] == "320x240" and info["video_codec"] == "H.264"
        assert "homeassistant/image/studio/ingest_picture/config" in {s.topic for s in seen.seen}

        # the ingest mode changed while live: the relay that is on comes back, in direct mode
        r = await client.patch("/api/settings", json={"ingest_mode": "direct"})
        if isinstance(ingest, BuiltinIngest):  # which it has not: one clear error
            assert r.status_code == 422 and "ingest.listen needs ingest.mode: cached" in r.text
            assert router.ingest_state().mode == "cached"
        else:
            assert r.status_code == 200, r.text
            assert router.ingest_state().mode == "direct"
            await wait_status(router, "facebook", "live", 45)
            assert router.stream_state("tiktok").status == "off"
            assert (await client.get("/api/ingest/snapshot")).status_code == 503
            # direct mode has no picture: its Home Assistant entity goes
            await seen.wait("homeassistant/image/studio/ingest_picture/config", b"")

        for item in seen.seen:
            for secret in (CANARY_KEY, BUILTIN_KEY):
                assert secret.encode() not in item.payload, item.topic
    for secret in (CANARY_KEY, BUILTIN_KEY):
        assert secret not in caplog.text
        assert secret not in (tmp_path / "state.json").read_text()
    assert load_config(path).ingest.mode == ("cached" if ingest_kind == "builtin" else "direct")


def test_destinations_and_settings_survive_a_restart_and_a_reload(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "state_file": "state.json",
                "ingest": {"url": f"rtmp://127.0.0.1:{free_port()}/live/stream"},
                "mqtt": {"enabled": False},
                "api": {"port": free_port()},
            }
        )
    )
    service = ServiceProcess(path, tmp_path / "service.log")
    url = f"http://127.0.0.1:{service.port}"
    try:
        service.start()
        service.wait_api()
        body = {"id": "kick", "url": "rtmps://127.0.0.1:9/app/", "key": f"k-{CANARY_KEY}"}
        assert httpx.post(f"{url}/api/streams", json=body).status_code == 201
        r = httpx.patch(f"{url}/api/settings", json={"ingest_mode": "direct"}, timeout=30)
        assert r.status_code == 200, r.text
        assert service.stop() == 0

        service.start()
        service.wait_api()
        streams = httpx.get(f"{url}/api/streams").json()
        assert [(s["id"], s["key_set"]) for s in streams] == [("kick", True)]
        assert httpx.get(f"{url}/api/health").json()["ingest"]["mode"] == "direct"
        reload = httpx.post(f"{url}/api/reload").json()
        assert reload["removed"] == [] and reload["restart_required"] == []
        assert [s["id"] for s in httpx.get(f"{url}/api/streams").json()] == ["kick"]
        assert service.stop() == 0
    finally:
        service.cleanup()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert f"k-{CANARY_KEY}" in path.read_text()  # the key at rest, readable by its user only
    log = (tmp_path / "service.log").read_text()
    assert CANARY_KEY not in log and "Traceback" not in log
    assert CANARY_KEY not in (tmp_path / "state.json").read_text()


@both_ingests()
async def test_snapshot_is_503_with_a_reason_when_obs_is_away(
    tmp_path: Path,
    ingest: Ingest,
    platforms: NginxRtmp,
    broker: Mosquitto,
    services: Callable[[Config], Service],
) -> None:
    path = lab_config(tmp_path, ingest, platforms, broker)
    async with lab_service(path, services) as (client, _, _):
        await asyncio.sleep(0.5)
        r = await client.get("/api/ingest/snapshot")
        assert r.status_code == 503 and "not live" in r.json()["detail"]
        assert (await stat_streams(platforms)) == {}
