"""`mqttrelay run` as users run it: a real process, SIGTERM, SIGKILL and restart."""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest
import yaml

from .kit import CANARY_KEY, collector
from .support import (
    Mosquitto,
    NginxRtmp,
    Publisher,
    ServiceProcess,
    eventually,
    free_port,
    stat_streams,
    wait_port,
)

pytestmark = pytest.mark.integration


def write_config(
    tmp_path: Path, ingest: NginxRtmp, platforms: NginxRtmp, mode: str, mqtt_port: int | None = None
) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "state_file": "state.json",
                "mqtt": {"port": mqtt_port} if mqtt_port else {"enabled": False},
                "api": {"port": free_port()},
                "ingest": {"url": ingest.url("stream"), "mode": mode, "stat_url": ingest.stat_url},
                "streams": [
                    {
                        "id": "youtube",
                        "url": f"rtmp://127.0.0.1:{platforms.rtmp_port}/dest",
                        "key": "${YT_KEY}",
                        "enabled": True,
                    },
                    {
                        "id": "tiktok",
                        "url": f"rtmp://127.0.0.1:{platforms.rtmp_port}/dest/tt-{CANARY_KEY}",
                    },
                ],
            }
        )
    )
    return path


@pytest.fixture
def service(tmp_path: Path) -> Iterator[ServiceProcess]:
    svc = ServiceProcess(
        tmp_path / "config.yaml", tmp_path / "service.log", env={"YT_KEY": f"yt-{CANARY_KEY}"}
    )
    yield svc
    svc.cleanup()


async def wait_dest(platforms: NginxRtmp, key: str, present: bool, deadline_s: float = 40) -> None:
    async def check() -> bool:
        stream = (await stat_streams(platforms)).get(key)
        live = bool(stream and stream.publishing and stream.video_codec)
        return live == present

    await eventually(check, deadline_s, f"{key} {'publishing' if present else 'gone'}")


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["cached", "direct"])
async def test_sigkill_and_restart_keeps_state_and_leaves_no_orphans(
    mode: str,
    tmp_path: Path,
    ingest: NginxRtmp,
    platforms: NginxRtmp,
    publisher: Publisher,
    service: ServiceProcess,
) -> None:
    write_config(tmp_path, ingest, platforms, mode)
    service.start()
    await wait_dest(platforms, f"yt-{CANARY_KEY}", True)
    state = json.loads((tmp_path / "state.json").read_text())
    assert state["streams"] == {"youtube": True, "tiktok": False}
    old = {p.pid for p in service.children()}
    assert old

    assert service.proc is not None
    service.proc.send_signal(signal.SIGKILL)
    service.proc.wait()
    service.start()

    async def replaced() -> bool:
        current = {p.pid for p in service.children()}
        return bool(current) and not current & old

    await eventually(replaced, 40, "the old run's ffmpeg to be gone and new ones started")
    await wait_dest(platforms, f"yt-{CANARY_KEY}", True)
    assert not [
        pid for pid in old if psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie"
    ]

    assert service.proc is not None
    service.proc.send_signal(signal.SIGTERM)
    assert service.proc.wait(30) == 0
    await asyncio.sleep(0.5)
    assert service.children() == []
    log = service.log.read_text()
    assert "Traceback" not in log
    assert CANARY_KEY not in log
    assert CANARY_KEY not in (tmp_path / "state.json").read_text()


async def test_last_will_on_sigkill_and_offline_on_sigterm(
    tmp_path: Path,
    ingest: NginxRtmp,
    platforms: NginxRtmp,
    broker: Mosquitto,
    service: ServiceProcess,
) -> None:
    write_config(tmp_path, ingest, platforms, "cached", mqtt_port=broker.port)
    async with collector(broker.port) as col:
        service.start()
        await col.wait("streamrelay/status", b"online", deadline_s=30)
        await col.wait("streamrelay/youtube/state", b"ON")
        assert service.proc is not None
        service.proc.send_signal(signal.SIGKILL)
        service.proc.wait()
        await col.wait("streamrelay/status", b"offline", deadline_s=30)

        service.start()
        await col.wait("streamrelay/status", b"online", deadline_s=30)
        await col.wait("streamrelay/youtube/state", b"ON")
        service.proc.send_signal(signal.SIGTERM)
        assert service.proc.wait(30) == 0
        await col.wait("streamrelay/status", b"offline", deadline_s=10)
        assert all(CANARY_KEY.encode() not in item.payload for item in col.seen)


async def test_sighup_reloads_the_config(
    tmp_path: Path,
    ingest: NginxRtmp,
    platforms: NginxRtmp,
    service: ServiceProcess,
) -> None:
    path = write_config(tmp_path, ingest, platforms, "cached")
    raw = yaml.safe_load(path.read_text())
    service.start()
    base = f"http://127.0.0.1:{raw['api']['port']}"
    await asyncio.to_thread(wait_port, raw["api"]["port"], 30)
    raw["streams"].append({"id": "kick", "url": raw["streams"][1]["url"]})
    path.write_text(yaml.safe_dump(raw))
    assert service.proc is not None
    service.proc.send_signal(signal.SIGHUP)

    async def has_kick() -> bool:
        async with httpx.AsyncClient(base_url=base) as client:
            return (await client.get("/api/streams/kick")).status_code == 200

    await eventually(has_kick, 20, "the new stream after SIGHUP")
    path.write_text("streams: [{id: BAD}]")
    service.proc.send_signal(signal.SIGHUP)
    await asyncio.sleep(1)
    assert service.proc.poll() is None  # a bad file is refused, the service runs on
    async with httpx.AsyncClient(base_url=base) as client:
        assert (await client.get("/api/streams/kick")).status_code == 200
    assert "reload refused" in service.log.read_text()
