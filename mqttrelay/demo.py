"""`mqttrelay demo`: everything on this machine, no account or key needed.

mqttrelay's built-in ingest (the default since issue 30: no nginx and no tap
between OBS and the hub, see docs/ingest.md), a test source standing in for OBS,
one nginx-rtmp server standing in for Facebook, TikTok and YouTube, a local
mosquitto, and mqttrelay with its web page; all on 127.0.0.1, in a temporary
folder, gone after Ctrl-C.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import socket
import tempfile
from pathlib import Path

import yaml

from mqttrelay import app
from mqttrelay.config import Config, load_config
from mqttrelay.ffmpeg.argv import build_test_source_argv
from mqttrelay.ingest.nginx.conf import NginxSettings
from mqttrelay.ingest.nginx.managed import ManagedNginx, NginxError, find_executable
from mqttrelay.lib import process
from mqttrelay.lib.aio import cancel_and_wait, port_open
from mqttrelay.lib.redact import Redactor
from mqttrelay.transports.mqtt.topics import Topics

log = logging.getLogger(__name__)
PLATFORMS = [("facebook", "Facebook"), ("tiktok", "TikTok"), ("youtube", "YouTube")]


def free_port(preferred: int | None = None) -> int:
    """`preferred` when nothing listens there, else any free port. Probed with address
    reuse, as the page's socket binds (app.bind_api_socket): the last demo's closed
    connections (TIME_WAIT) leave the port usable, so a bookmarked page keeps working."""
    for candidate in ([preferred] if preferred else []) + [0]:
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(("127.0.0.1", candidate))
            except OSError:
                continue
            port: int = sock.getsockname()[1]
            return port
    raise OSError("no free port on 127.0.0.1")


def demo_config(folder: Path, ports: dict[str, int], mqtt: bool) -> Path:
    """The demo's config.yaml, in its folder: the page adds and edits destinations in it."""
    path = folder / "config.yaml"
    raw = {
        "state_file": str(folder / "state.json"),
        "ingest": {
            "url": f"rtmp://127.0.0.1:{ports['ingest']}/live/stream",
            "listen": f"127.0.0.1:{ports['ingest']}",  # loopback: no publish key needed
            "hold_s": 10,
        },
        "mqtt": {"enabled": mqtt, "port": ports["mqtt"], "node_id": "demo"},
        "api": {"port": ports["api"]},
        "standby": {},  # the built-in card while the demo's publisher is away
        "streams": [
            {
                "id": sid,
                "name": name,
                "url": f"rtmp://127.0.0.1:{ports['platforms']}/platform",
                "key": f"{sid}-demo-key",
            }
            for sid, name in PLATFORMS
        ],
    }
    path.write_text(
        "# mqttrelay demo (a temporary folder)\n" + yaml.safe_dump(raw, sort_keys=False)
    )
    return path


async def _start_mosquitto(folder: Path, port: int, owner: str) -> asyncio.subprocess.Process:
    binary = find_executable("mosquitto")
    assert binary is not None
    conf = folder / "mosquitto.conf"
    user = "user root\n" if os.geteuid() == 0 else ""
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n{user}")
    proc = await process.spawn([binary, "-c", str(conf)], owner, stdin=False, capture=False)
    for _ in range(100):
        if await port_open("127.0.0.1", port):
            return proc
        await asyncio.sleep(0.05)
    raise OSError("mosquitto did not start")


async def _keep_publishing(url: str, owner: str, ffmpeg: str) -> None:
    """The stand-in for OBS, restarted if it stops."""
    while True:
        proc = await process.spawn(
            build_test_source_argv(ffmpeg, url), owner, stdin=False, capture=False
        )
        try:
            await proc.wait()
        finally:
            if proc.returncode is None:
                await process.stop_process(proc, 2.0)
        await asyncio.sleep(1)


def banner(config: Config, ports: dict[str, int], mqtt: bool) -> str:
    page = f"http://127.0.0.1:{ports['api']}/"
    topics = Topics(config.mqtt.base_topic, config.mqtt.node_id)
    lines = [
        "",
        "mqttrelay demo is running (Ctrl-C stops everything).",
        "",
        f"  Web page:   {page}",
        f"  Ingest:     {config.ingest.url}  (a test pattern and a tone stand in for OBS)",
        f"  Platforms:  rtmp://127.0.0.1:{ports['platforms']}/platform/<id>-demo-key",
        "              (one local nginx-rtmp server stands in for "
        + ", ".join(n for _, n in PLATFORMS)
        + ")",
        "",
        "  Switch a platform from the page, or:",
        f"    curl -X PUT -H 'Content-Type: application/json' -d '{{\"enabled\": true}}' "
        f"{page}api/streams/tiktok",
    ]
    if mqtt:
        b = f"mosquitto_pub -h 127.0.0.1 -p {ports['mqtt']}"
        lines += [
            f"    {b} -t {topics.base}/tiktok/set -m ON",
            f"    {b} -t {topics.base}/all/set -m OFF",
            # -T: not the ingest picture, a JPEG every few seconds
            f"    mosquitto_sub -h 127.0.0.1 -p {ports['mqtt']} -t '{topics.base}/#' "
            f"-T '{topics.ingest_picture}' -v",
        ]
    lines += [
        "  Watch what a platform receives (ffplay is in the ffmpeg package):",
        f"    ffplay rtmp://127.0.0.1:{ports['platforms']}/platform/facebook-demo-key",
        "",
    ]
    return "\n".join(lines)


async def run_demo(api_port: int = 8088, redactor: Redactor | None = None) -> None:
    folder = Path(tempfile.mkdtemp(prefix="mqttrelay-demo-"))
    mqtt = find_executable("mosquitto") is not None
    ports = {
        "ingest": free_port(),
        "platforms": free_port(),
        "mqtt": free_port(),
        "api": free_port(api_port),
    }
    config_path = demo_config(folder, ports, mqtt)
    config = load_config(config_path)
    owner = str(config.state_file.resolve())
    platforms = ManagedNginx(
        NginxSettings(
            prefix=str(folder / "platforms"),
            rtmp_port=ports["platforms"],
            http_port=None,
            app="platform",
            fast_start=False,
            run_as_root=os.geteuid() == 0,
        ),
        owner,
        role="stand-in platforms (" + ", ".join(n for _, n in PLATFORMS) + ")",
    )
    helpers: list[asyncio.subprocess.Process] = []
    publisher: asyncio.Task[None] | None = None
    try:
        try:
            await platforms.start()
        except NginxError as exc:
            raise app.StartupError(f"demo platforms: {exc}") from None
        if mqtt:
            helpers.append(await _start_mosquitto(folder, ports["mqtt"], owner))
        else:
            print("mosquitto is not installed: the demo runs without MQTT (scripts/setup adds it)")
        publisher = asyncio.create_task(
            _keep_publishing(config.ingest.url, owner, config.ffmpeg.path)
        )
        print(banner(config, ports, mqtt), flush=True)
        await app.run(config, config_path, redactor)
    finally:
        if publisher is not None:
            await cancel_and_wait(publisher)
        for proc in helpers:
            await process.stop_process(proc, 2.0)
        await platforms.stop()
        process.reap_orphans(owner)
        shutil.rmtree(folder, ignore_errors=True)
