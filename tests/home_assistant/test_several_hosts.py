"""Two mqttrelay hosts in their own network namespaces, differing only in node_id
and streams, on one broker with the platforms' nginx and a real Home Assistant
beside it: two devices; one host SIGKILLed leaves the other's entities available
and obeying; B/all/set OFF stops both; a stream id on both hosts is reported."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from mqttrelay.ffmpeg.argv import build_test_source_argv
from mqttrelay.ingest.nginx.conf import NginxSettings, render_nginx_conf

from ..kit import CANARY_KEY, collector
from ..netns import Namespace, gateway, hosts_beside_this_one
from ..support import (
    Mosquitto,
    NginxRtmp,
    eventually,
    free_port,
    require_tool,
    stat_streams,
    wait_port,
)
from .harness import HomeAssistant
from .test_home_assistant import all_available, expected_entities, ha_states, turn, wait_ha

pytestmark = pytest.mark.home_assistant
B = "streamrelay"


def key(node: str, stream: str) -> str:
    return f"{node}-{stream}-{CANARY_KEY}"


@pytest.fixture
def two_hosts() -> Iterator[list[Namespace]]:
    with hosts_beside_this_one(2) as namespaces:
        yield namespaces


def listen_everywhere(text: str, port: int, addresses: list[str]) -> str:
    lines = "".join(f"        listen {a}:{port};\n" for a in addresses)
    return text.replace(f"        listen 127.0.0.1:{port};\n", lines, 1)


@pytest.fixture
def shared_services(
    tmp_path: Path, two_hosts: list[Namespace]
) -> Iterator[tuple[Mosquitto, NginxRtmp]]:
    """The broker and the platforms here, reachable from the hosts' namespaces."""
    addresses = ["127.0.0.1", *(gateway(ns) for ns in two_hosts)]
    folder = tmp_path / "broker"
    folder.mkdir()
    port = free_port()
    conf = folder / "mosquitto.conf"
    conf.write_text(
        "".join(f"listener {port} {a}\n" for a in addresses)
        + "allow_anonymous true\npersistence false\nlog_type error\n"
        + ("user root\n" if os.geteuid() == 0 else "")
    )
    broker = Mosquitto(port, conf)
    broker.start()
    nginx = require_tool("nginx")
    prefix = tmp_path / "platforms"
    prefix.mkdir()
    settings = NginxSettings(
        prefix=str(prefix), rtmp_port=free_port(), http_port=free_port(), app="dest",
        fast_start=False, run_as_root=os.geteuid() == 0,
        publish_from=tuple(a for a in addresses) + tuple(ns.address for ns in two_hosts),
    )  # fmt: skip
    (prefix / "nginx.conf").write_text(
        listen_everywhere(render_nginx_conf(settings), settings.rtmp_port, addresses)
    )
    proc = subprocess.Popen(
        [nginx, "-p", str(prefix), "-c", str(prefix / "nginx.conf")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    platforms = NginxRtmp(settings.rtmp_port, settings.http_port or 0, "dest", proc, prefix)
    wait_port(settings.rtmp_port)
    yield broker, platforms
    platforms.stop()
    broker.kill()


class Host:
    """mqttrelay with its own managed ingest and an OBS stand-in, inside a namespace."""

    def __init__(self, folder: Path, ns: Namespace, node: str, streams: list[str],
                 broker_port: int, platform_port: int) -> None:  # fmt: skip
        self.ns, self.node, self.streams = ns, node, streams
        folder.mkdir()
        self.config = folder / "config.yaml"
        self.config.write_text(
            yaml.safe_dump(
                {
                    "state_file": "state.json",
                    "ingest": {"url": "rtmp://127.0.0.1:1935/live/stream", "manage": True},
                    "mqtt": {"host": gateway(ns), "port": broker_port, "node_id": node},
                    "api": {"port": 8088},
                    "streams": [
                        {"id": s, "url": f"rtmp://{gateway(ns)}:{platform_port}/dest",
                         "key": key(node, s)}
                        for s in streams
                    ],
                }
            )
        )  # fmt: skip
        self.log = folder / "service.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.obs: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            run = [sys.executable, "-m", "mqttrelay", "run", "--config", str(self.config)]
            self.proc = subprocess.Popen(
                self.ns.argv(*run),
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        deadline = time.monotonic() + 30
        while "managed nginx ingest listening" not in self.log.read_text():
            assert time.monotonic() < deadline, self.log.read_text()
            time.sleep(0.2)
        ffmpeg = require_tool("ffmpeg")
        self.obs = subprocess.Popen(
            self.ns.argv(*build_test_source_argv(ffmpeg, "rtmp://127.0.0.1:1935/live/stream")),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip

    def api_get(self, path: str) -> str:
        """GET on the host's API, which listens inside its namespace only."""
        code = "import httpx, sys; print(httpx.get(sys.argv[1], timeout=10).text)"
        url = f"http://127.0.0.1:8088{path}"
        return subprocess.run(
            self.ns.argv(sys.executable, "-c", code, url),
            capture_output=True, text=True, timeout=30, check=True,
        ).stdout  # fmt: skip

    def kill(self) -> None:
        """SIGKILL, as a crash or a power cut: only the broker's last will says so."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        for proc in (self.obs, self.proc):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


async def publishing(platforms: NginxRtmp, keys: set[str]) -> set[str]:
    streams = await stat_streams(platforms)
    return {k for k in keys if (s := streams.get(k)) is not None and s.publishing}


async def test_two_hosts_share_a_broker_without_interfering(
    tmp_path: Path, two_hosts: list[Namespace], shared_services: tuple[Mosquitto, NginxRtmp]
) -> None:
    broker, platforms = shared_services
    a = Host(tmp_path / "a", two_hosts[0], "alpha", ["tiktok", "shared"], broker.port,
             platforms.rtmp_port)  # fmt: skip
    b = Host(tmp_path / "b", two_hosts[1], "beta", ["youtube", "shared"], broker.port,
             platforms.rtmp_port)  # fmt: skip
    ha = HomeAssistant(tmp_path / "ha", "127.0.0.1", broker.port)
    try:
        async with collector(broker.port) as col:
            a.start()
            b.start()
            ha.start()
            entities = expected_entities("alpha", a.streams) | expected_entities("beta", b.streams)

            async def both_devices() -> bool:
                return await all_available(col, entities)

            await eventually(both_devices, 240, "both hosts' entities in Home Assistant", 1)
            live = {"binary_sensor.alpha_ingest_live": "on", "binary_sensor.beta_ingest_live": "on"}
            await wait_ha(col, live, 90, "both ingests live")

            # the stream id both hosts have is reported by each
            for host, other in ((a, "beta"), (b, "alpha")):

                async def reported(h: Host = host, o: str = other) -> bool:
                    return f"stream id 'shared' is also on host '{o}'" in h.log.read_text()

                await eventually(reported, 30, f"{host.node} to report the duplicate stream id")
                health = json.loads(host.api_get("/api/health"))
                assert health["status"] == "degraded", health
                assert any("'shared'" in p for p in health["problems"]), health

            await col.publish("hatest/call", turn("on", "switch.alpha_tiktok"))
            await col.publish("hatest/call", turn("on", "switch.beta_youtube"))
            both = {key("alpha", "tiktok"), key("beta", "youtube")}

            async def both_live() -> bool:
                return await publishing(platforms, both) == both

            await eventually(both_live, 60, "a destination of each host live")

            # one "stop everything" for the fleet
            await col.publish(f"{B}/all/set", "OFF")

            async def none_live() -> bool:
                return not await publishing(platforms, both)

            await eventually(none_live, 30, "B/all/set OFF to stop both hosts")
            await wait_ha(col, {"switch.alpha_tiktok": "off", "switch.beta_youtube": "off"},
                          30, "both switches off")  # fmt: skip

            # alpha dies: only alpha's entities go unavailable; beta still obeys
            a.kill()
            gone = dict.fromkeys(sorted(expected_entities("alpha", a.streams)), "unavailable")
            await wait_ha(col, gone, 90, "alpha's entities unavailable")
            states = ha_states(col)
            beta = expected_entities("beta", b.streams)
            assert all(states[e] != "unavailable" for e in beta), states
            await col.publish("hatest/call", turn("on", "switch.beta_youtube"))

            async def beta_live() -> bool:
                return await publishing(platforms, {key("beta", "youtube")}) == {
                    key("beta", "youtube")
                }

            await eventually(beta_live, 60, "beta to obey after alpha died")
            await wait_ha(col, {"switch.beta_youtube": "on"}, 30, "beta's switch on")
            complaints = ha.mqtt_complaints()
    finally:
        ha.stop()
        a.stop()
        b.stop()
    assert complaints == [], "\n".join(complaints)
    for host in (a, b):
        text = host.log.read_text()
        assert CANARY_KEY not in text and "Traceback" not in text
