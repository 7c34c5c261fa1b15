"""Idle connections against the managed ingest (issue 26): `mqttrelay run` with
`ingest.manage: true` renders and runs its nginx; 300 idle TCP connections are held
open on its RTMP port (each one nginx drops is opened again, as a flood would), and
OBS (ffmpeg with the publish key) must still get in and be readable."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from .kit import IdleHolder as IdleHolder
from .support import Publisher, eventually, free_port, probe_codecs, require_tool

pytestmark = pytest.mark.integration
TOKEN = "flood-token-0123456789"
PUBLISH_KEY = "pubkey-flood-0815"
IDLE = 300
DROPPED_WITHIN_S = 30.0  # nginx-rtmp's default `timeout` is 60 s


async def _health(api_port: int) -> dict[str, Any] | None:
    async with httpx.AsyncClient() as client:
        try:
            answer = await client.get(
                f"http://127.0.0.1:{api_port}/api/health",
                headers={"Authorization": f"Bearer {TOKEN}"},
                timeout=5,
            )
        except httpx.HTTPError:
            return None
    return answer.json() if answer.status_code == 200 else None


async def _live(api_port: int) -> bool:
    health = await _health(api_port)
    return health is not None and bool(health["ingest"]["live"])


@pytest.mark.slow
async def test_obs_publishes_to_the_managed_ingest_while_300_idle_connections_are_open(
    tmp_path: Path,
) -> None:
    require_tool("nginx")
    rtmp_port, api_port = free_port(), free_port()
    ingest = f"rtmp://127.0.0.1:{rtmp_port}/live/stream"
    config = tmp_path / "config.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "state_file": "state.json",
                "ingest": {"url": ingest, "manage": True, "publish_key": PUBLISH_KEY},
                "mqtt": {"enabled": False},
                "api": {"host": "127.0.0.1", "port": api_port, "token": TOKEN},
            }
        )
    )
    log = tmp_path / "service.log"
    with log.open("wb") as out:
        service = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "mqttrelay", "run", "--config", str(config),
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    holder = IdleHolder(rtmp_port, IDLE)
    obs = Publisher(f"{ingest}?key={PUBLISH_KEY}")
    try:
        await eventually(
            lambda: _health(api_port), 60, f"mqttrelay's API; log:\n{log.read_text()[-2000:]}"
        )
        await holder.open()
        obs.start()
        await eventually(lambda: _live(api_port), 40, "OBS with the key live on the ingest")
        assert obs.running, "the publisher was refused"

        async def all_held() -> bool:
            return holder.open_now == IDLE

        await eventually(all_held, 20, f"{IDLE} idle connections open")
        assert await _live(api_port), "OBS left the ingest"
        codecs = await probe_codecs(ingest, 30)
        assert "video" in codecs, f"the stream is not readable: {codecs}"
        assert obs.running
        # nginx drops what never sends a byte after the rtmp `timeout`, not after 60 s
        assert await holder.stop_refilling_and_wait(DROPPED_WITHIN_S), "idle ones stay open"
        assert max(holder.dropped) < DROPPED_WITHIN_S, max(holder.dropped)
        print(
            f"idle connections dropped after {min(holder.dropped):.1f}-{max(holder.dropped):.1f} s"
        )
    finally:
        await holder.close()
        obs.stop()
        service.terminate()
        code = await asyncio.wait_for(service.wait(), 30)
    text = log.read_text()
    assert code == 0, text
    assert PUBLISH_KEY not in text and "Traceback" not in text
