"""The nginx side: rendered config, managed ingest, publish hooks, the demo."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import psutil
import pytest

from mqttrelay import app
from mqttrelay.config import Config
from mqttrelay.ingest.nginx import tap
from mqttrelay.ingest.nginx.conf import render_nginx_conf, settings_from_config
from mqttrelay.ingest.nginx.managed import ManagedNginx, explain_nginx_test
from mqttrelay.lib.aio import port_open

from .support import NginxRtmp, Publisher, eventually, free_port, require_tool, wait_port

pytestmark = pytest.mark.integration
PUBLISH_KEY = "pk-SECRET-0815"


def ingest_config(tmp_path: Path, platforms: NginxRtmp, **ingest: object) -> Config:
    return Config.model_validate(
        {
            "state_file": str(tmp_path / "state.json"),
            "ingest": {
                "url": f"rtmp://127.0.0.1:{free_port()}/live/stream",
                "stat_url": f"http://127.0.0.1:{free_port()}/stat",
                **ingest,
            },
            "mqtt": {"enabled": False},
            "api": {"port": free_port()},
            "streams": [
                {
                    "id": "youtube",
                    "url": f"rtmp://127.0.0.1:{platforms.rtmp_port}/dest",
                    "key": "yt-key-1234",
                    "enabled": True,
                },
                {
                    "id": "facebook",
                    "url": "rtmps://live-api-s.example.com:443/rtmp/",
                    "key": "FBK-12345678",
                },
            ],
        }
    )


def test_rendered_config_passes_nginx_t_and_says_what_it_must(
    tmp_path: Path, platforms: NginxRtmp
) -> None:
    nginx = require_tool("nginx")
    config = ingest_config(tmp_path, platforms)
    settings = settings_from_config(
        config.ingest,
        config.api,
        str(tmp_path / "ngx"),
        run_as_root=os.geteuid() == 0,
        push=config.streams,
    )
    text = render_nginx_conf(settings)
    (tmp_path / "ngx").mkdir()
    conf = tmp_path / "ngx" / "nginx.conf"
    conf.write_text(text)
    result = subprocess.run(
        [nginx, "-t", "-p", str(tmp_path / "ngx"), "-c", str(conf)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    for needed in (
        "wait_key on;",
        "wait_video on;",
        "idle_streams on;",
        "allow publish 127.0.0.1;",
        "deny publish all;",
        f"on_publish http://127.0.0.1:{config.api.port}/api/hooks/on_publish;",
        "on_publish_done",
        "rtmp_stat all;",
        f"push rtmp://127.0.0.1:{platforms.rtmp_port}/dest/****;",
        "facebook: nginx-rtmp cannot push rtmps://",
        "needs an nginx RESTART",
        # idle connections cannot lock OBS out (tests/test_ingest_flood.py)
        "worker_connections 4096;",
        "worker_rlimit_nofile 8192;",
        "max_connections 1024;",
        "timeout 5s;",
    ):
        assert needed in text, needed
    assert "yt-key-1234" not in text and "FBK-12345678" not in text
    shown = render_nginx_conf(
        settings_from_config(
            config.ingest, config.api, str(tmp_path / "ngx"), push=config.streams, show_keys=True
        )
    )
    assert "/dest/yt-key-1234;" in shown


def test_nginx_conf_command(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(
        "ingest: {url: 'rtmp://192.168.1.10:1935/live/stream', publish_key: PUBKEY}\n"
        f"state_file: {tmp_path / 'state.json'}\n"
        "streams: [{id: yt, url: 'rtmp://a.example/live2', key: SECRETKEY}]\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "mqttrelay", "nginx-conf", "--config", str(path), "--push"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "listen 192.168.1.10:1935;" in result.stdout
    assert "allow publish 192.168.0.0/16;" in result.stdout  # the LAN may publish
    assert "push rtmp://a.example/live2/****;" in result.stdout
    assert "SECRETKEY" not in result.stdout and "PUBKEY" not in result.stdout
    secret = (tmp_path / ".mqttrelay-hook-secret").read_text().strip()
    assert f"/api/hooks/on_publish?secret={secret};" in result.stdout


def test_nginx_conf_refuses_a_lan_ingest_without_publish_key(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("ingest: {url: 'rtmp://192.168.1.10:1935/live/stream'}\n")
    result = subprocess.run(
        [sys.executable, "-m", "mqttrelay", "nginx-conf", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2 and result.stdout == ""
    assert "set ingest.publish_key" in result.stderr and "Traceback" not in result.stderr


def test_hostile_values_render_a_config_nginx_accepts(tmp_path: Path) -> None:
    """A state folder with a space and ';', a key with ';}{': quoted, one token each."""
    nginx = require_tool("nginx")
    prefix = tmp_path / "my state;x{"
    prefix.mkdir()
    config = Config.model_validate(
        {
            "ingest": {"url": "rtmp://127.0.0.1:1935/live/stream"},
            "streams": [{"id": "yt", "url": "rtmp://127.0.0.1:1/app", "key": "K;}{x-1234"}],
        }
    )
    text = render_nginx_conf(
        settings_from_config(
            config.ingest,
            config.api,
            str(prefix),
            hook_secret="h" * 24,
            run_as_root=os.geteuid() == 0,
            push=config.streams,
            show_keys=True,
        )
    )
    (prefix / "nginx.conf").write_text(text)
    result = subprocess.run(
        [nginx, "-t", "-p", str(prefix), "-c", str(prefix / "nginx.conf")],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr


def test_nginx_t_output_is_explained() -> None:
    missing = 'nginx: [emerg] unknown directive "rtmp" in /x/nginx.conf:12'
    assert "install libnginx-mod-rtmp" in explain_nginx_test(missing)
    busy = "nginx: [emerg] bind() to 127.0.0.1:1935 failed (98: Address already in use)"
    assert "in use" in explain_nginx_test(busy)


async def _api(port: int, path: str) -> dict[str, object]:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:
        response = await client.get(path)
        result: dict[str, object] = response.json()
        return result


async def test_managed_ingest_hooks_start_relays_at_once_and_check_the_key(
    tmp_path: Path,
    platforms: NginxRtmp,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    require_tool("ffmpeg")
    # only the hooks can start the tap and end the session in time
    monkeypatch.setattr(tap, "TAP_RETRY_S", 120.0)
    monkeypatch.setattr(tap, "SILENCE_END_S", 120.0)
    config = ingest_config(tmp_path, platforms, manage=True, publish_key=PUBLISH_KEY, hold_s=2)
    runner = asyncio.create_task(app.run(config))
    try:
        await asyncio.to_thread(wait_port, config.api.port, 30)
        port = config.api.port

        async def youtube_status() -> object:
            return (await _api(port, "/api/streams/youtube"))["status"]

        assert await youtube_status() == "waiting"
        wrong = Publisher(f"{config.ingest.url}?key=wrong")
        wrong.start()
        assert wrong.proc is not None
        assert await asyncio.to_thread(wrong.proc.wait, 30) != 0  # refused by on_publish
        assert "refused a publisher" in caplog.text

        right = Publisher(f"{config.ingest.url}?key={PUBLISH_KEY}")
        right.start()
        try:

            async def live() -> bool:
                return await youtube_status() == "live"

            await eventually(live, 30, "youtube live after on_publish")
        finally:
            right.stop()

        async def waiting() -> bool:
            return await youtube_status() == "waiting"

        await eventually(waiting, 30, "youtube waiting after the publisher left")
        assert PUBLISH_KEY not in caplog.text
    finally:
        os.kill(os.getpid(), signal.SIGTERM)  # app.run's own stop signal
        await asyncio.wait_for(runner, 30)


def _cmdline(proc: psutil.Process) -> list[str]:
    try:
        return proc.cmdline()
    except psutil.Error:
        return []  # gone meanwhile


async def test_managed_nginx_that_dies_is_started_again_until_stopped(
    tmp_path: Path, platforms: NginxRtmp, caplog: pytest.LogCaptureFixture
) -> None:
    require_tool("nginx")
    caplog.set_level(logging.ERROR)
    config = ingest_config(tmp_path, platforms, manage=True, publish_key=PUBLISH_KEY)
    nginx = ManagedNginx.from_config(
        config.ingest, config.api, config.state_file, "restart-test", "hook-secret-1"
    )
    host, port = nginx.settings.listen_host, nginx.settings.rtmp_port

    def masters() -> list[psutil.Process]:
        """The managed nginx (the platforms' nginx is a child too)."""
        return [
            c for c in psutil.Process().children()
            if c.status() != psutil.STATUS_ZOMBIE and nginx.settings.prefix in _cmdline(c)
        ]  # fmt: skip

    await nginx.start()
    try:
        [first] = masters()
        os.killpg(first.pid, signal.SIGKILL)  # its workers too: they hold the port

        async def again() -> bool:
            now = masters()
            return bool(now and now[0].pid != first.pid and await port_open(host, port))

        await eventually(again, 30, "nginx started again and listening")
        assert "nginx exited with code -9; restarting" in caplog.text
    finally:
        await nginx.stop()
    assert not masters() and not await port_open(host, port)


@pytest.mark.slow
async def test_demo_runs_and_leaves_nothing_behind(tmp_path: Path) -> None:
    for tool in ("ffmpeg", "nginx", "mosquitto"):
        require_tool(tool)
    port = free_port()
    log = tmp_path / "demo.log"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "mqttrelay", "demo", "--port", str(port),
        stdin=subprocess.DEVNULL,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        await asyncio.to_thread(wait_port, port, 60)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:
            assert (await client.get("/")).status_code == 200
            put = await client.put("/api/streams/tiktok", json={"enabled": True})
            assert put.status_code == 200

            async def live() -> bool:
                state = (await client.get("/api/streams/tiktok")).json()
                return bool(state["status"] == "live" and state["bitrate_kbps"] > 0)

            await eventually(live, 60, "the demo's tiktok to be live")
            # the demo's page manages destinations too: its config is a file
            added = await client.post(
                "/api/streams",
                json={"id": "kick", "url": "rtmp://127.0.0.1:9/app", "key": "k-123456"},
            )
            assert added.status_code == 201, added.text
        children = psutil.Process(proc.pid).children(recursive=True)
        names = {c.name() for c in children}
        assert {"ffmpeg", "nginx", "mosquitto"} <= names, names
        proc.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(proc.wait(), 30) == 0
        await asyncio.sleep(0.5)
        alive = [c for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]
        assert not alive, alive
        text = log.read_text()
        assert f"http://127.0.0.1:{port}/" in text and "mosquitto_pub" in text
        assert "Traceback" not in text
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
