"""Resilience: a soak of random MQTT and HTTP commands against a real service with
relays crashing at random, the broker restarted and mqttrelay itself killed and
restarted, then checks that the actual state equals the last command, nothing
leaked, and no key escaped anywhere.

Run alone with:  scripts/test -m resilience
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest
import yaml

from mqttrelay.control.state import SavedState, load_state, save_state

from ..kit import CANARY_KEY, collector
from ..support import (
    Mosquitto,
    NginxRtmp,
    Publisher,
    ServiceProcess,
    eventually,
    owned_processes,
    stat_streams,
    wait_port,
)
from .conftest import STREAMS, service_config

pytestmark = [pytest.mark.integration, pytest.mark.resilience, pytest.mark.slow]
COMMANDS = int(os.environ.get("MQTTRELAY_SOAK_COMMANDS", "1000"))
SOAK_SECONDS = float(os.environ.get("MQTTRELAY_SOAK_SECONDS", "300"))


async def test_soak_random_commands_crashes_and_restarts(
    tmp_path: Path,
    ingest: NginxRtmp,
    platforms: NginxRtmp,
    publisher: Publisher,
    broker: Mosquitto,
    service: ServiceProcess,
) -> None:
    rng = random.Random(4711)
    last: dict[str, bool] = {}
    broker_restarts = {COMMANDS // 6, 3 * COMMANDS // 6, 5 * COMMANDS // 6}
    mqttrelay_kill = COMMANDS // 2 + 1
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{service.port}", timeout=10) as http:

        async def ingest_live() -> bool:
            return bool((await http.get("/api/health")).json()["ingest"]["live"])

        async def enabled_as_last() -> bool:
            states = {s["id"]: s["enabled"] for s in (await http.get("/api/streams")).json()}
            return all(states[stream] == on for stream, on in last.items())

        await eventually(ingest_live, 30, "the ingest to be live")
        # a pending timer, set long before it is due, must survive the kill below
        timer = await http.post("/api/streams/kick/timer", json={"action": "on", "in_s": 86400})
        assert timer.status_code == 200
        me = service.ps
        fds_before, rss_before = me.num_fds(), me.memory_info().rss
        started = time.monotonic()
        async with collector(broker.port) as col:
            for n in range(COMMANDS):
                stream = rng.choice(STREAMS)
                on = rng.random() < 0.6
                if n in broker_restarts:
                    broker.kill()
                    await asyncio.sleep(1)
                    broker.start()
                    await asyncio.sleep(2)  # the bridge reconnects with backoff
                if n == mqttrelay_kill:
                    await eventually(enabled_as_last, 30, "every command applied before the kill")
                    old_children = {c.pid for c in me.children()}
                    me.kill()
                    assert service.proc is not None and service.proc.wait(30) == -signal.SIGKILL
                    service.start()
                    service.wait_api()
                    me = service.ps
                    assert await enabled_as_last()  # desired states restored from the state file
                    await eventually(ingest_live, 30, "the ingest live after the restart")
                    # the killed instance's ffmpeg processes were reaped, none is left behind
                    owned = {p.pid for p in owned_processes(tmp_path / "state.json")}
                    assert not old_children & owned
                    fds_before, rss_before = me.num_fds(), me.memory_info().rss
                if rng.random() < 0.5 or n >= COMMANDS - 10 or not col.client:
                    response = await http.put(f"/api/streams/{stream}", json={"enabled": on})
                    assert response.status_code == 200
                else:
                    try:
                        await col.publish(f"streamrelay/{stream}/set", "ON" if on else "OFF")
                    except Exception:  # the test's own client lost the restarted broker
                        response = await http.put(f"/api/streams/{stream}", json={"enabled": on})
                        assert response.status_code == 200
                last[stream] = on
                if rng.random() < 0.03:  # a relay crashes
                    pids = [c.pid for c in me.children() if _process_name(c) == "ffmpeg"]
                    if pids:
                        with contextlib.suppress(ProcessLookupError):
                            os.kill(rng.choice(pids), signal.SIGKILL)
                await asyncio.sleep(
                    max(0.0, (started + SOAK_SECONDS * (n + 1) / COMMANDS) - time.monotonic())
                )

        async def settled() -> bool:
            states = {s["id"]: s for s in (await http.get("/api/streams")).json()}
            platform = await stat_streams(platforms)
            for stream, on in last.items():
                key = f"{stream}-{CANARY_KEY}"
                publishing = key in platform and platform[key].publishing
                want = "live" if on else "off"
                if (
                    states[stream]["enabled"] != on
                    or states[stream]["status"] != want
                    or publishing != on
                ):
                    return False
            return True

        await eventually(settled, 60, "every destination to match the last command", step_s=0.5)
        ffmpeg = [c for c in me.children() if c.name() == "ffmpeg"]
        assert len(ffmpeg) == sum(last.values()) + 1  # one relay per enabled stream, plus the tap
        assert {p.pid for p in owned_processes(tmp_path / "state.json")} == {p.pid for p in ffmpeg}
        zombies = [c for c in me.children() if c.status() == psutil.STATUS_ZOMBIE]
        assert not zombies
        assert me.num_fds() <= fds_before + 20
        assert me.memory_info().rss <= rss_before + 80 * 2**20
        timers = (await http.get("/api/streams/kick/timer")).json()
        assert [t["id"] for t in timers] == [timer.json()["id"]]
        for path in ("/api/streams", "/api/health", "/metrics", "/"):
            assert CANARY_KEY not in (await http.get(path)).text

    async with collector(broker.port) as col:  # everything retained, after the restarts
        await eventually(lambda: _has_states(col), 15, "retained states after the broker restarts")
        for stream, on in last.items():
            assert col.last(f"streamrelay/{stream}/state") == (b"ON" if on else b"OFF")
        assert all(CANARY_KEY.encode() not in item.payload for item in col.seen)
    state_text = (tmp_path / "state.json").read_text()
    assert CANARY_KEY not in state_text
    assert json.loads(state_text)["streams"] == last | {s: False for s in STREAMS if s not in last}
    assert service.stop() == 0
    log = service.log.read_text()
    assert CANARY_KEY not in log and "Traceback" not in log
    assert owned_processes(tmp_path / "state.json") == []


async def _has_states(col: object) -> bool:
    return all(col.last(f"streamrelay/{s}/state") is not None for s in STREAMS)  # type: ignore[attr-defined]


def _limit_file_size() -> None:
    # Python ignores SIGXFSZ, so writes past the limit fail with EFBIG: a full disk.
    resource.setrlimit(resource.RLIMIT_FSIZE, (64, 64))


async def test_full_disk_keeps_relaying_and_the_last_good_state_file(
    tmp_path: Path,
    ingest: NginxRtmp,
    platforms: NginxRtmp,
    publisher: Publisher,
    broker: Mosquitto,
) -> None:
    config = service_config(tmp_path, ingest, platforms, broker)
    state_file = tmp_path / "state.json"
    save_state(state_file, SavedState(streams={"tiktok": True}))
    good = state_file.read_text()
    api = f"http://127.0.0.1:{yaml.safe_load(config.read_text())['api']['port']}"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "mqttrelay", "run", "--config", str(config),
        stdin=subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=subprocess.STDOUT,
        preexec_fn=_limit_file_size,
    )  # fmt: skip
    assert proc.stdout is not None
    output = bytearray()

    async def drain() -> None:
        assert proc.stdout is not None
        while chunk := await proc.stdout.read(65536):
            output.extend(chunk)

    reader = asyncio.create_task(drain())
    try:
        await asyncio.to_thread(wait_port, int(api.rsplit(":", 1)[1]), 30)
        async with httpx.AsyncClient(base_url=api, timeout=10) as http:

            async def tiktok_live() -> bool:
                return bool((await http.get("/api/streams/tiktok")).json()["status"] == "live")

            await eventually(tiktok_live, 40, "tiktok live from the saved state")
            response = await http.put("/api/streams/youtube", json={"enabled": True})
            assert response.status_code == 200

            async def youtube_live() -> bool:
                return bool((await http.get("/api/streams/youtube")).json()["status"] == "live")

            await eventually(youtube_live, 40, "youtube live although its state cannot be saved")
            health = (await http.get("/api/health")).json()
            assert health["status"] == "degraded"
            assert "cannot write state file" in health["state_file_error"]
        assert load_state(state_file).streams == {"tiktok": True}
        assert state_file.read_text() == good  # the last good file is intact
        leftovers = await asyncio.to_thread(lambda: list(tmp_path.glob("*.tmp")))
        assert not leftovers
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 30)
        await reader
    text = output.decode(errors="replace")
    assert "cannot write state file" in text and "File too large" in text
    assert "Traceback" not in text


def _process_name(proc: psutil.Process) -> str:
    """A child may end between listing and naming it (a relay just switched off)."""
    try:
        return proc.name()
    except psutil.NoSuchProcess:
        return ""
