"""Each way a destination fails, against a real server, says why in the
platform's terms: in the API (last_error, error_kind, error_detail), in the MQTT
attributes Home Assistant reads, on the page (the headline, the raw lines behind
"details") and in the log. `mqttrelay run` with real ffmpeg, stunnel, nginx-rtmp,
openssl s_server, mosquitto and chromium."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml
from playwright.async_api import Browser, expect

from mqttrelay.ingest.nginx.conf import RTMP_MODULE, quoted

from .kit import CANARY_KEY, B, collector
from .support import (
    Mosquitto,
    NginxRtmp,
    Publisher,
    eventually,
    free_port,
    require_tool,
    self_signed_cert,
    wait_port,
)
from .web_kit import browser, shot

__all__ = ["browser"]  # the fixture, used here by name
pytestmark = pytest.mark.integration

KEY_HINT = "check the stream key (TikTok keys change every broadcast)"

# nosuch.invalid is looked up in a network and mount namespace of its own, whose
# resolv.conf names a DNS server in that namespace answering NXDOMAIN: the lookup
# fails as it does on any machine, and nothing leaves this one.
FFMPEG_WRAPPER = """#!/bin/sh
case "$*" in
  *nosuch.invalid*) exec unshare --net --mount sh {dir}/in_namespace.sh "$@" ;;
esac
exec {ffmpeg} "$@"
"""
IN_NAMESPACE = """ip link set lo up
mount --bind {dir}/resolv.conf /etc/resolv.conf
ready={dir}/dns-ready.$$
{python} {dir}/nxdomain.py "$ready" &
dns=$!
while [ ! -e "$ready" ]; do sleep 0.05; done
{ffmpeg} "$@"
code=$?
kill $dns
exit $code
"""
NXDOMAIN = """import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 53))
s.settimeout(60)
open(sys.argv[1], "w").close()
while True:
    query, client = s.recvfrom(512)
    flags = bytes([0x81 | (query[2] & 0x01), 0x83])  # a response, recursion available, NXDOMAIN
    s.sendto(query[:2] + flags + query[4:6] + bytes(6) + query[12:], client)
"""


def write_ffmpeg_wrapper(folder: Path) -> Path:
    ffmpeg = require_tool("ffmpeg")
    require_tool("unshare")
    folder.mkdir(parents=True, exist_ok=True)
    values = {"dir": str(folder), "ffmpeg": ffmpeg, "python": sys.executable}
    (folder / "resolv.conf").write_text("nameserver 127.0.0.1\n")
    (folder / "nxdomain.py").write_text(NXDOMAIN)
    (folder / "in_namespace.sh").write_text(IN_NAMESPACE.format(**values))
    wrapper = folder / "ffmpeg"
    wrapper.write_text(FFMPEG_WRAPPER.format(**values))
    wrapper.chmod(0o755)
    return wrapper


@dataclass
class Servers:
    """The failing platforms: each destination's URL and what it must say."""

    procs: list[subprocess.Popen[bytes]]
    silent: socket.socket
    urls: dict[str, str]
    headlines: dict[str, str]  # kind -> the start of last_error

    def stop(self) -> None:
        self.silent.close()
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def start_denying_nginx(folder: Path) -> tuple[subprocess.Popen[bytes], int]:
    """nginx-rtmp whose application takes connections and refuses every publish."""
    nginx = require_tool("nginx")
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    conf = folder / "nginx.conf"
    conf.write_text(
        f"load_module {quoted(RTMP_MODULE)};\n"
        + ("user root;\n" if os.geteuid() == 0 else "")
        + f"daemon off;\nmaster_process off;\npid {quoted(str(folder / 'nginx.pid'))};\n"
        f"error_log {quoted(str(folder / 'error.log'))} warn;\n"
        "events { worker_connections 64; }\n"
        f"rtmp {{ server {{ listen 127.0.0.1:{port};\n"
        "  application dest { live on; deny publish all; } } }\n"
    )
    proc = subprocess.Popen(
        [nginx, "-p", str(folder), "-c", str(conf)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_port(port)
    return proc, port


def start_client_cert_tls(folder: Path) -> tuple[subprocess.Popen[bytes], int]:
    """A TLS server that fails every handshake: it wants a client certificate."""
    openssl = require_tool("openssl")
    cert, key = self_signed_cert(folder)
    port = free_port()
    proc = subprocess.Popen(
        [openssl, "s_server", "-accept", f"127.0.0.1:{port}", "-cert", str(cert),
         "-key", str(key), "-Verify", "1", "-verify_return_error", "-quiet"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    wait_port(port)
    return proc, port


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[Servers]:
    require_tool("stunnel")  # rtmps:// goes through the local tunnel, as by default
    nginx, deny_port = start_denying_nginx(tmp_path / "deny")
    procs = [nginx]
    silent = socket.socket()  # takes connections (the kernel does) and never answers
    try:
        tls, tls_port = start_client_cert_tls(tmp_path / "tls-server")
        procs.append(tls)
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        silent_port = silent.getsockname()[1]
        closed = free_port()
        found = Servers(
            procs,
            silent,
            urls={
                "refused": f"rtmp://127.0.0.1:{closed}/app",
                "dns": "rtmp://nosuch.invalid/app",
                "rejected": f"rtmp://127.0.0.1:{deny_port}/dest",
                "tls": f"rtmps://127.0.0.1:{tls_port}/app",
                "timeout": f"rtmp://127.0.0.1:{silent_port}/app",
            },
            headlines={
                "refused": f"Can't reach 127.0.0.1:{closed} (connection refused): "
                "is the server address right?",
                "dns": "Name not found: nosuch.invalid: is the server address right?",
                "rejected": "The platform closed the connection right after the stream key "
                f"was sent: {KEY_HINT}",
                "tls": f"TLS failed with 127.0.0.1:{tls_port} (",
                "timeout": f"127.0.0.1:{silent_port} did not answer within 4 s: ",
            },
        )
    except BaseException:
        silent.close()
        for proc in procs:
            proc.kill()
        raise
    yield found
    found.stop()


@dataclass
class Running:
    url: str
    log: Path
    proc: subprocess.Popen[bytes]
    stunnel: bool


@pytest.fixture(params=["stunnel", None], ids=["through-stunnel", "ffmpeg-tls"])
def service(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    ingest: NginxRtmp,
    publisher: Publisher,
    broker: Mosquitto,
    servers: Servers,
) -> Iterator[Running]:
    port = free_port()
    config = tmp_path / "config.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "state_file": "state.json",
                "ingest": {"url": ingest.url("stream")},
                "ffmpeg": {
                    "path": str(write_ffmpeg_wrapper(tmp_path / "wrapper")),
                    "connect_timeout_s": 4,
                    "stunnel": request.param,  # rtmps:// through it, or ffmpeg's own TLS
                },
                "mqtt": {"port": broker.port},
                "api": {"port": port},
                "streams": [
                    {"id": kind, "name": kind.title(), "url": url, "key": f"{kind}-{CANARY_KEY}"}
                    for kind, url in servers.urls.items()
                ],
            }
        )
    )
    log = tmp_path / "service.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "mqttrelay", "run", "--config", str(config)],
        stdin=subprocess.DEVNULL,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    try:
        wait_port(port, 30)
        yield Running(f"http://127.0.0.1:{port}", log, proc, request.param is not None)
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(30)
    assert CANARY_KEY not in log.read_text()


@pytest.mark.slow
async def test_each_failure_says_why_in_the_api_mqtt_the_page_and_the_log(
    service: Running, servers: Servers, broker: Mosquitto, browser: Browser
) -> None:
    kinds = list(servers.urls)
    async with (
        collector(broker.port) as mqtt,
        httpx.AsyncClient(base_url=service.url, timeout=10) as api,
    ):

        async def ingest_live() -> bool:
            return bool((await api.get("/api/health")).json()["ingest"]["live"])

        await eventually(ingest_live, 40, "the ingest to be live")
        for kind in kinds:
            assert (await api.put(f"/api/streams/{kind}", json={"enabled": True})).is_success

        async def all_explained() -> dict[str, dict[str, object]] | None:
            states = {s["id"]: s for s in (await api.get("/api/streams")).json()}
            if all(states[k]["error_kind"] for k in kinds):
                return states
            return None

        states = await eventually(all_explained, 90, "every destination's first error")
        for kind in kinds:
            state = states[kind]
            assert state["error_kind"] == kind, state
            assert str(state["last_error"]).startswith(servers.headlines[kind]), state
            assert state["error_detail"], state
        if service.stunnel:  # stunnel's own line says what went wrong
            assert "(tlsv13 alert certificate required)" in str(states["tls"]["last_error"])
            assert "SSL routines" in str(states["tls"]["error_detail"])
        else:
            assert "(A TLS fatal alert has been received)" in str(states["tls"]["last_error"])
            assert "[tls @ " in str(states["tls"]["error_detail"])
        assert "Connection refused" in str(states["refused"]["error_detail"])
        assert "Broken pipe" in str(states["rejected"]["error_detail"])
        assert "/dest/****" in str(states["rejected"]["error_detail"])
        assert "Name or service not known" in str(states["dns"]["error_detail"])
        assert CANARY_KEY not in (await api.get("/api/streams")).text

        for kind in kinds:  # the attributes Home Assistant shows with each switch

            async def attributes(kind: str = kind) -> dict[str, object] | None:
                payload = mqtt.last(f"{B}/{kind}/attributes")
                found = json.loads(payload) if payload else {}
                return found if found.get("error_kind") == kind else None

            seen = await eventually(attributes, 30, f"{kind}'s MQTT attributes")
            assert str(seen["last_error"]).startswith(servers.headlines[kind]), seen
            assert seen["error_detail"], seen
        assert not [s for s in mqtt.seen if CANARY_KEY.encode() in s.payload]

        page = await browser.new_page(viewport={"width": 1300, "height": 1600})
        await page.goto(service.url)
        for kind in kinds:
            card = page.locator(f'[data-testid="card"][data-stream="{kind}"]')
            error = card.get_by_test_id("error")
            await expect(error).to_contain_text(
                "Last error: " + servers.headlines[kind], timeout=20_000
            )
            await expect(error).to_have_attribute("data-kind", kind)
            detail = card.get_by_test_id("error-detail")
            await expect(detail).to_be_hidden()  # behind the toggle
            await card.get_by_test_id("error-details").locator("summary").click()
            await expect(detail).to_be_visible()
            await expect(detail).not_to_have_text("")
        await shot(page, f"web-errors-{'stunnel' if service.stunnel else 'ffmpeg-tls'}")
        assert CANARY_KEY not in await page.content()

    log = service.log.read_text()
    for kind in kinds:
        assert f"{kind}: {servers.headlines[kind]}" in log, kind
        assert f"[{kind}]" in log
