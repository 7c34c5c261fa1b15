"""The container image as the add-on runs it (scripts/test-image builds it first):
its own entrypoint under `buildah run --isolation chroot` on the host's loopback,
with /data/options.json and a stand-in Supervisor MQTT service. OBS is an ffmpeg
publishing to port 1935; the platform and the broker are real, on the host."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
import yaml

from .kit import CANARY_KEY, IdleHolder, collector
from .support import Mosquitto, NginxRtmp, Publisher, eventually, free_port, stat_streams, wait_port
from .test_ingest_flood import IDLE

pytestmark = pytest.mark.image
# the image built from the repository's root, and the one built from addon/
IMAGES = os.environ.get(
    "MQTTRELAY_IMAGES", "localhost/mqttrelay:test localhost/mqttrelay-addon:test"
).split()
SUPERVISOR_TOKEN = "standin-supervisor-token"
B = "streamrelay"


def _buildah(*args: str) -> str:
    return subprocess.run(
        ["buildah", *args], check=True, capture_output=True, text=True, timeout=120
    ).stdout.strip()


def _port_free(port: int) -> bool:
    return not any(
        c.laddr and c.laddr.port == port and c.status == psutil.CONN_LISTEN
        for c in psutil.net_connections("tcp")
    )


@dataclass
class AddOn:
    container: str
    proc: subprocess.Popen[bytes]
    data: Path
    config: Path  # the add-on's config folder (map: addon_config), where config.yaml goes
    log: Path
    health: dict[str, Any]  # the image's HEALTHCHECK
    root: str = ""  # the run's root folder, as its processes see it

    def pid1(self) -> psutil.Process:
        for child in psutil.Process(self.proc.pid).children(recursive=True):
            if child.cmdline()[:1] == ["/usr/bin/tini"]:
                self.root = os.readlink(f"/proc/{child.pid}/root")
                return child
        raise AssertionError(f"no tini inside; log:\n{self.log.read_text()[-2000:]}")

    def inside(self) -> list[psutil.Process]:
        """Processes whose root is the run's: everything the add-on runs, and
        anything it left behind, wherever it was re-parented."""
        assert self.root, "pid1() first"
        found = []
        for proc in psutil.process_iter():
            try:
                if os.readlink(f"/proc/{proc.pid}/root") == self.root:
                    found.append(proc)
            except OSError:
                continue
        return found


@pytest.fixture(params=IMAGES)
def addon(
    request: pytest.FixtureRequest, tmp_path: Path, platforms: NginxRtmp, broker: Mosquitto
) -> Iterator[AddOn]:
    image_name: str = request.param
    for port in (1935, 8088):
        assert _port_free(port), f"port {port} is taken: the image test needs it on loopback"
    standin_port = free_port()
    standin = subprocess.Popen(
        [
            sys.executable,
            str(Path(__file__).with_name("supervisor_standin.py")),
            str(standin_port),
            SUPERVISOR_TOKEN,
            str(broker.port),
        ],
        stdout=(tmp_path / "supervisor.log").open("wb"),
        stderr=subprocess.STDOUT,
    )
    wait_port(standin_port)
    # as the Supervisor makes them: root's, and options.json for root only
    data = tmp_path / "data"
    data.mkdir()
    config_dir = tmp_path / "config"
    config_dir.mkdir(mode=0o755)
    options = {
        "destinations": [
            {
                "id": "youtube",
                "name": "YouTube",
                "url": f"rtmp://127.0.0.1:{platforms.rtmp_port}/dest",
                "key": f"yt-{CANARY_KEY}",
            }
        ],
        "obs_key": "",
        "page_token": "",
        "mqtt_host": "",
        "mqtt_port": 0,
        "mqtt_username": "",
        "mqtt_password": "",
        "log_level": "info",
    }
    (data / "options.json").write_text(json.dumps(options))
    (data / "options.json").chmod(0o600)
    image = json.loads(_buildah("inspect", "--type", "image", image_name))
    entrypoint = image["OCIv1"]["config"]["Entrypoint"]
    assert entrypoint[0] == "/usr/bin/tini", entrypoint
    container = _buildah("from", "--name", f"mqttrelay-test-{os.getpid()}", image_name)
    log = tmp_path / "addon.log"
    env = {
        "SUPERVISOR_TOKEN": SUPERVISOR_TOKEN,
        "SUPERVISOR_API": f"http://127.0.0.1:{standin_port}",
        "TZ": "Europe/Oslo",
        "TINI_SUBREAPER": "1",  # chroot isolation has no PID namespace: tini reaps as a subreaper
    }
    proc = subprocess.Popen(
        ["buildah", "run", "--isolation", "chroot", "--network", "host"]
        + ["-v", f"{data}:/data", "-v", f"{config_dir}:/config"]
        + [arg for name, value in env.items() for arg in ("-e", f"{name}={value}")]
        + [container, "--", *entrypoint],
        stdin=subprocess.DEVNULL,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    health = image["Docker"]["config"]["Healthcheck"]
    addon = AddOn(container, proc, data, config_dir, log, health=health)
    try:
        wait_port(8088, 60)
        wait_port(1935, 30)
        addon.pid1()  # learns the run's root, to find what is left behind
        yield addon
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        for leftover in addon.inside() if addon.root else []:
            leftover.kill()
        standin.terminate()
        standin.wait(10)
        subprocess.run(["buildah", "rm", container], capture_output=True, timeout=120)


async def _publish_past_idle_connections(
    obs: Publisher, broker: Mosquitto, platforms: NginxRtmp
) -> None:
    """OBS publishes, and the relay starts, while 300 idle connections from other
    addresses keep arriving at the ingest (issue 26), in the image as its user, with
    the rlimits it gets. The image's ingest is the built-in one (issue 30): past its
    caps it drops the idle connections that got least far, never OBS (nginx held all
    300 open)."""
    # from twelve other addresses, as a flood from the LAN comes: the built-in ingest
    # caps each address (8), so a flood from OBS's own address can keep OBS out
    holder = IdleHolder(1935, IDLE, tuple(f"127.0.0.{n}" for n in range(2, 14)))
    await holder.open()
    try:
        obs.start()
        await _switch_on_over_mqtt(broker, platforms)

        async def some_dropped() -> bool:
            return len(holder.dropped) > 0

        await eventually(some_dropped, 20, "idle connections dropped past the ingest's caps")
    finally:
        await holder.close()


async def _switch_on_over_mqtt(broker: Mosquitto, platforms: NginxRtmp) -> None:
    async with collector(broker.port) as col:

        async def discovered() -> bool:
            return any(
                s.topic.startswith("homeassistant/") and b"streamrelay/youtube/set" in s.payload
                for s in col.seen
            )

        await eventually(discovered, 30, "Home Assistant discovery of youtube")
        await col.wait(f"{B}/youtube/state", b"OFF", 30)
        await col.publish(f"{B}/youtube/set", b"ON")
        await col.wait(f"{B}/youtube/status", b"live", 60)

        async def at_platform() -> bool:
            return f"yt-{CANARY_KEY}" in await stat_streams(platforms)

        await eventually(at_platform, 30, "the stream at the test platform")


def test_the_add_on_image_relays_switched_over_mqtt_and_stops_on_sigterm(
    addon: AddOn, platforms: NginxRtmp, broker: Mosquitto
) -> None:
    config = yaml.safe_load((addon.config / "config.yaml").read_text())
    assert config["mqtt"]["host"] == "127.0.0.1" and config["mqtt"]["port"] == broker.port
    assert config["api"]["ingress_proxy"] == "172.30.32.2"
    publish_key = config["ingest"]["publish_key"]
    obs = Publisher(f"rtmp://127.0.0.1:1935/live/stream?key={publish_key}")
    try:
        asyncio.run(_publish_past_idle_connections(obs, broker, platforms))
        # the image's health check, run inside as Docker would
        test = addon.health["Test"]
        assert test[0] == "CMD", test
        run = ["buildah", "run", "--isolation", "chroot", "--network", "host", addon.container]
        check = subprocess.run(
            [*run, "--", *test[1:]],
            capture_output=True,
            timeout=60,
        )
        assert check.returncode == 0, check.stderr
        # the page's port still needs the token: X-Ingress-Path counts from 172.30.32.2 only
        forged = httpx.get(
            "http://127.0.0.1:8088/api/streams",
            headers={"X-Ingress-Path": "/api/hassio_ingress/x"},
            timeout=10,
        )
        assert forged.status_code == 401
    finally:
        obs.stop()

    pid1 = addon.pid1()
    names = {p.name() for p in addon.inside()}
    # the built-in ingest (a first start's default since issue 30): no nginx, no tap
    assert {"tini", "mqttrelay", "ffmpeg"} <= names and "nginx" not in names, names
    _runs_as_its_user_without_the_token(addon)
    pid1.send_signal(signal.SIGTERM)
    assert addon.proc.wait(60) == 0
    deadline = time.monotonic() + 20
    while addon.inside() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert addon.inside() == [], "processes left inside after SIGTERM"
    log = addon.log.read_text()
    assert "mqttrelay container: MQTT: 127.0.0.1" in log and "stopped" in log
    assert CANARY_KEY not in log and "standin-mqtt-password" not in log and publish_key not in log
    assert "Traceback" not in log


def _runs_as_its_user_without_the_token(addon: AddOn) -> None:
    """mqttrelay and ffmpeg (and nginx, where config.yaml has it) run as the image's user, which
    owns /data and /config (tini, and buildah's own helper, stay root); mqttrelay was
    exec'd without the Supervisor's token, so its /proc environ (the exec'd one) has
    none."""
    users = {
        (proc.pid, proc.name()): set(proc.uids()) | set(proc.gids())
        for proc in addon.inside()
        if proc.name() in ("mqttrelay", "nginx", "ffmpeg")
    }
    assert len(users) >= 2 and all(0 not in ids for ids in users.values()), users
    uid = (addon.config / "config.yaml").stat().st_uid
    assert uid != 0 and all(ids == {uid} for ids in users.values()), (uid, users)
    for path in (addon.data, addon.data / "options.json", addon.data / "state.json", addon.config):
        assert path.stat().st_uid == uid, path
    service = [p for p in addon.inside() if p.name() == "mqttrelay"]
    assert len(service) == 1, service
    environ = Path(f"/proc/{service[0].pid}/environ").read_bytes()
    assert b"SUPERVISOR_TOKEN" not in environ and SUPERVISOR_TOKEN.encode() not in environ
    assert b"SUPERVISOR_API=" in environ  # the rest of the environment is kept
    assert service[0].cmdline()[-4:] == ["--config", "/config/config.yaml", "--log-level", "info"]
