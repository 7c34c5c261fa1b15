"""The page's port flooded by slow clients (slowloris) on loopback, with the
service held to 1024 open files as a small host sets it: the API, a switch-on
over MQTT and the state file keep working, and the log stays small."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import aiomqtt
import httpx
import pytest
import yaml

from .kit import CANARY_KEY, wait_publishing
from .support import Mosquitto, NginxRtmp, Publisher, ServiceProcess, eventually, free_port

pytestmark = pytest.mark.integration

TOKEN = "flood-test-" + "f" * 20
SLOW_CLIENTS = 1100
FLOOD_MAX_S = 90.0  # the flood stops by itself after this, whatever happens
SERVICE_NOFILE = 1024


@contextlib.contextmanager
def flooding(port: int, log: Path) -> Iterator[Callable[[], tuple[int, int]]]:
    """tests/slow_clients.py in its own process, as an attacker's machine; yields
    what it last said: (connections made, open now)."""
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.slow_clients", str(port), str(SLOW_CLIENTS),
             str(FLOOD_MAX_S)],
            stdout=out, stderr=subprocess.STDOUT, cwd=Path(__file__).parent.parent,
        )  # fmt: skip

    def said() -> tuple[int, int]:
        lines = log.read_text().splitlines()
        last = re.search(r"connects=(\d+) open=(\d+)", lines[-1]) if lines else None
        return (int(last[1]), int(last[2])) if last else (0, 0)

    try:
        yield said
    finally:
        proc.kill()  # nothing of it to clean up: its sockets close with it
        proc.wait(30)


@pytest.mark.slow
async def test_slow_clients_on_the_page_port_stop_nothing_else(
    tmp_path: Path,
    ingest: NginxRtmp,
    platforms: NginxRtmp,
    publisher: Publisher,
    broker: Mosquitto,
) -> None:
    key = f"yt-{CANARY_KEY}"
    config = tmp_path / "config.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "state_file": "state.json",
                "ingest": {"url": ingest.url("stream")},
                "mqtt": {"port": broker.port, "node_id": "studio"},
                "api": {"port": free_port(), "token": TOKEN},
                "streams": [
                    {
                        "id": "youtube",
                        "url": f"rtmp://127.0.0.1:{platforms.rtmp_port}/dest",
                        "key": key,
                    }
                ],
            }
        )
    )
    service = ServiceProcess(config, tmp_path / "service.log", nofile=SERVICE_NOFILE)
    service.start()
    try:
        service.wait_api()
        headers = {"Authorization": f"Bearer {TOKEN}"}
        base = f"http://127.0.0.1:{service.port}"
        with flooding(service.port, tmp_path / "flood.log") as flood:

            async def held() -> bool:
                connects, open_now = flood()
                return open_now >= SLOW_CLIENTS // 4 and connects >= SLOW_CLIENTS

            await eventually(held, 30, "the slow clients to hold the port")
            await asyncio.sleep(3)  # as long again, so whatever holds them piles up
            before, _ = flood()
            async with httpx.AsyncClient(base_url=base, headers=headers, timeout=15) as api:
                took = []
                for _ in range(3):  # a fresh connection each time, as a page's calls come
                    started = time.monotonic()
                    health = await api.get("/api/health", headers={"Connection": "close"})
                    assert health.status_code == 200, health.text
                    took.append(time.monotonic() - started)
                print(f"API under the flood: {', '.join(f'{t:.2f}' for t in took)} s")
                async with aiomqtt.Client("127.0.0.1", broker.port) as mqtt:
                    await mqtt.publish("streamrelay/youtube/set", b"ON", qos=1)
                await wait_publishing(platforms, key, 60)

                def saved() -> bool:
                    state = json.loads((tmp_path / "state.json").read_text())
                    return bool(state["streams"]["youtube"])

                async def written() -> bool:
                    return saved()

                await eventually(written, 30, "the state file to say youtube is on")
                health = await api.get("/api/health", headers={"Connection": "close"})
                assert health.status_code == 200 and health.json()["state_file_error"] is None
            await asyncio.sleep(1.5)  # the flood's next report
            connects, open_now = flood()
            assert connects > before, (before, connects)  # it flooded all along
            print(f"flood: {connects} connections made, {open_now} open at the end")
    finally:
        assert service.stop() == 0
        service.cleanup()
    log = service.log.read_text(errors="replace")
    size = service.log.stat().st_size
    assert size < 1_000_000, f"log grew to {size} bytes"
    assert "Too many open files" not in log, log[-2000:]
    assert CANARY_KEY not in log
