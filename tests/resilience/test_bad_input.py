"""Resilience: bad input of every kind against a running `mqttrelay run`.

Injection URLs through a config reload, garbage MQTT topics and payloads,
garbage HTTP bodies: each is refused with a clear message, and afterwards
nothing was started, nothing was written, and the service still obeys.
"""

from __future__ import annotations

import asyncio
import json
import random
from pathlib import Path

import httpx
import pytest
import yaml

from ..kit import CANARY_KEY, collector
from ..support import Mosquitto, NginxRtmp, ServiceProcess, eventually, owned_processes

pytestmark = [pytest.mark.integration, pytest.mark.resilience]

INJECTIONS = [
    "-y",
    "-i /etc/passwd",
    "file:///tmp/owned.flv",
    "file:owned.flv",
    "concat:a.flv|b.flv",
    "pipe:1",
    "subfile,,start,0,end,0,,:/etc/passwd",
    "rtmp://host/app -y out.flv",
    "rtmp://host/app\n-y",
    "rtmp://host/app\r\nX: y",
    "http://host/app",
    "tcp://127.0.0.1:1/",
    "rtmp:///nohost",
    " rtmp://host/app",
]


def written(service: ServiceProcess, state_file: Path) -> dict[str, object]:
    """The service's working folder and its state file (but for its heartbeat)."""
    files: dict[str, object] = {
        str(p): p.read_bytes() for p in sorted(service.cwd.rglob("*")) if p.is_file()
    }
    state = json.loads(state_file.read_text())
    state.pop("last_seen")
    return files | {"state": state}


async def test_injection_urls_and_garbage_are_refused_and_change_nothing(
    tmp_path: Path,
    ingest: NginxRtmp,
    platforms: NginxRtmp,
    broker: Mosquitto,
    service: ServiceProcess,
) -> None:
    state_file = tmp_path / "state.json"
    good_config = service.config.read_text()
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{service.port}", timeout=10) as http:
        await http.put("/api/streams/tiktok", json={"enabled": True})

        async def saved() -> bool:
            return '"tiktok": true' in state_file.read_text()

        await eventually(saved, 10, "the state file to hold tiktok on")
        processes = {p.pid for p in owned_processes(state_file)}
        before = written(service, state_file)

        for url in INJECTIONS:
            raw = yaml.safe_load(good_config)
            raw["streams"][0]["url"] = url
            service.config.write_text(yaml.safe_dump(raw))
            refused = await http.post("/api/reload")
            assert refused.status_code == 422, (url, refused.text)
            assert any("streams[0].url" in p for p in refused.json()["detail"]), refused.text
        service.config.write_text(good_config)

        bodies: list[bytes] = [
            b"",
            b"null",
            b"[]",
            b'{"enabled": "maybe"}',
            b'{"enabled": true, "extra": 1}',
            b"{" * 4000,
            b"\xff\xfe",
            b'{"enabled": 1e999}',
        ]
        for body in bodies:
            response = await http.put(
                "/api/streams/youtube", content=body, headers={"Content-Type": "application/json"}
            )
            assert response.status_code in (413, 422), (body[:20], response.status_code)
        too_big = await http.put(
            "/api/streams/youtube",
            content=b'{"enabled": true, "x": "' + b"a" * 20000 + b'"}',
            headers={"Content-Type": "application/json"},
        )
        assert too_big.status_code == 413
        for path in ("/api/streams/..%2f..%2fetc", "/api/streams/-y", "/api/streams/all"):
            assert (await http.put(path, json={"enabled": True})).status_code in (404, 422)

        rng = random.Random(7)
        async with collector(broker.port) as col:
            topics = [
                "streamrelay/youtube/set/extra",
                "streamrelay/-y/set",
                "streamrelay/../set",
                "streamrelay/youtube",
                "streamrelay/YOUTUBE/set",
            ]
            for topic in topics:
                await col.publish(topic, b"ON")
            for _ in range(100):
                payload = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 200)))
                await col.publish("streamrelay/youtube/set", payload)
            await col.publish("streamrelay/youtube/set", b"OFF")  # the service still obeys
            await col.wait("streamrelay/youtube/state", b"OFF")

        states = {s["id"]: s["enabled"] for s in (await http.get("/api/streams")).json()}
        assert states == {"facebook": False, "tiktok": True, "youtube": False,
                          "onestream": False, "kick": False}  # fmt: skip
        await asyncio.sleep(1)
        assert {p.pid for p in owned_processes(state_file)} == processes  # nothing started
        assert written(service, state_file) == before  # nothing written
        assert not await asyncio.to_thread(lambda: list(tmp_path.rglob("owned*")))
        assert (await http.get("/api/health")).json()["status"] == "ok"
    assert service.proc is not None and service.proc.poll() is None
    log = service.log.read_text()
    assert "Traceback" not in log and CANARY_KEY not in log
