"""The shipped config.yaml runs as it is: `check` passes with nothing exported, and
says where OBS publishes (or that nothing of mqttrelay's listens for it)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from mqttrelay.config import load_config

from .support import Publisher, ServiceProcess, eventually, free_port, require_tool

ROOT = Path(__file__).resolve().parent.parent


def check(path: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    """`mqttrelay check` with a clean environment: no stream key or password exported."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"}
    return subprocess.run(
        [sys.executable, "-m", "mqttrelay", "check", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=cwd,
    )


def test_the_example_passes_check_with_a_clean_environment(tmp_path: Path) -> None:
    result = check(ROOT / "config.yaml", tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    ok, obs = result.stdout.splitlines()
    assert ok.endswith("OK (4 stream(s), 2 schedule(s))")
    assert obs.endswith(
        "OBS publishes to rtmp://127.0.0.1:1935/live with stream key 'stream' "
        "(mqttrelay runs that nginx)"
    )
    assert list(tmp_path.iterdir()) == []  # check writes nothing


def test_the_example_starts_its_ingest_and_keeps_keys_out_of_the_file() -> None:
    config = load_config(ROOT / "config.yaml", env={})
    assert config.ingest.manage and config.streams
    assert all(stream.key is None for stream in config.streams)
    text = (ROOT / "config.yaml").read_text()
    assert "# key: ${FACEBOOK_KEY}" in text  # how to keep a key in the environment


def test_check_says_when_nothing_listens_for_obs(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(
        "ingest: {url: 'rtmp://192.168.1.5:1935/live/stream', publish_key: PK-SECRET-42}\n"
        "streams: [{id: a, url: 'rtmp://h/app', key: K-0000001}]\n"
    )
    result = check(path, tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[1] == (
        f"{path}: mqttrelay starts nothing that listens for OBS (ingest.manage: false): "
        "rtmp://192.168.1.5:1935/live/stream must be an nginx-rtmp you run (mqttrelay "
        "nginx-conf prints its config), or set ingest.manage: true to have mqttrelay run it"
    )
    path.write_text(path.read_text().replace("PK-SECRET-42", "PK-SECRET-42, manage: true"))
    obs = check(path, tmp_path).stdout.splitlines()[1]
    assert obs.endswith(
        "with stream key 'stream?key=<ingest.publish_key>' (mqttrelay runs that nginx)"
    )
    assert "PK-SECRET-42" not in obs


@pytest.mark.integration
async def test_the_example_runs_and_takes_obs(tmp_path: Path) -> None:
    """`run` on the example, only its ports moved to free ones: its own ingest takes
    a publisher standing in for OBS, with nothing exported."""
    for tool in ("ffmpeg", "nginx"):
        require_tool(tool)
    ingest, page, broker = free_port(), free_port(), free_port()  # nothing listens on broker
    text = (ROOT / "config.yaml").read_text()
    moved = (
        text.replace("127.0.0.1:1935/", f"127.0.0.1:{ingest}/")
        .replace("  port: 8088\n", f"  port: {page}\n")
        .replace("  port: 1883\n", f"  port: {broker}\n")
    )
    assert f"url: rtmp://127.0.0.1:{ingest}/live/stream" in moved
    assert moved.count(f"port: {page}\n") == moved.count(f"port: {broker}\n") == 1
    (tmp_path / "config.yaml").write_text(moved)
    service = ServiceProcess(tmp_path / "config.yaml", tmp_path / "run.log")
    publisher = Publisher(f"rtmp://127.0.0.1:{ingest}/live/stream")
    service.start()
    try:
        await asyncio.to_thread(service.wait_api, 60)
        publisher.start()
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{page}", timeout=10) as client:

            async def live() -> bool:
                health = (await client.get("/api/health")).json()
                return bool(health["ingest"]["live"])

            await eventually(live, 60, "the example's ingest to be live")
            streams = (await client.get("/api/streams")).json()
            assert [s["id"] for s in streams] == ["facebook", "youtube", "tiktok", "onestream"]
        assert service.stop() == 0
    finally:
        publisher.stop()
        service.cleanup()
