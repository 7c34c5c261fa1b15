"""The page behind Home Assistant's ingress: a real nginx in front adds a path
prefix and X-Ingress-Path, as the Supervisor does, from an address of its own
(127.0.0.2); the page works there without a token, in a real browser, while
direct calls still need the token and a forged header from elsewhere counts
for nothing."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, Dialog, expect

from mqttrelay.config import ConfigError, parse_config
from mqttrelay.transports.http.guard import ingress_path

from .kit import CANARY_KEY
from .support import Mosquitto, NginxRtmp, Publisher, free_port, require_tool, wait_port
from .web_kit import WebService, browser, launch, shot

__all__ = ["browser"]  # the fixture, used by name

TOKEN = "ingress-test-" + "t" * 20
PROXY_ADDRESS = "127.0.0.2"  # the Supervisor's own address in this test
PREFIX = "/api/hassio_ingress/Xy9_token-abc"


def test_ingress_path_counts_only_from_the_proxy_address() -> None:
    headers = {"x-ingress-path": PREFIX}
    assert ingress_path("172.30.32.2", headers, "172.30.32.2") == PREFIX
    assert ingress_path("172.30.32.3", headers, "172.30.32.2") is None
    assert ingress_path("172.30.32.2", headers, None) is None
    assert ingress_path(None, headers, "172.30.32.2") is None
    assert ingress_path("172.30.32.2", {}, "172.30.32.2") is None
    for bad in ("relative", "/a b", "/x\ny", "/" + "a" * 400, "/<script>"):
        assert ingress_path("172.30.32.2", {"x-ingress-path": bad}, "172.30.32.2") is None


def test_ingress_proxy_must_be_an_ip_address() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config("api: {ingress_proxy: supervisor}")
    assert any("ingress_proxy must be an IP address" in p for p in caught.value.problems)
    assert parse_config("{}").api.ingress_proxy is None  # off unless asked for


@dataclass
class IngressFront:
    """nginx as Home Assistant's ingress proxy in front of mqttrelay."""

    port: int
    proc: subprocess.Popen[bytes]

    @property
    def page_url(self) -> str:
        return f"http://127.0.0.1:{self.port}{PREFIX}/"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()  # fast: a page's event stream would hold a graceful stop
            self.proc.wait(10)


def start_ingress_front(folder: Path, backend_port: int) -> IngressFront:
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    user = "user root;\n" if os.geteuid() == 0 else ""
    (folder / "nginx.conf").write_text(
        f"""{user}daemon off;
pid {folder}/nginx.pid;
error_log {folder}/error.log;
events {{ worker_connections 64; }}
http {{
  access_log off;
  client_body_temp_path {folder}/body; proxy_temp_path {folder}/proxy;
  fastcgi_temp_path {folder}/fcgi; uwsgi_temp_path {folder}/uwsgi; scgi_temp_path {folder}/scgi;
  server {{
    listen 127.0.0.1:{port};
    location {PREFIX}/ {{
      proxy_pass http://127.0.0.1:{backend_port}/;
      proxy_bind {PROXY_ADDRESS};
      proxy_set_header Host $http_host;
      proxy_set_header X-Ingress-Path {PREFIX};
      proxy_http_version 1.1;
      proxy_buffering off;
      proxy_read_timeout 300s;
    }}
  }}
}}
"""
    )
    proc = subprocess.Popen(
        [require_tool("nginx"), "-p", str(folder), "-c", str(folder / "nginx.conf")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_port(port)
    return IngressFront(port, proc)


@pytest.fixture
def behind_ingress(
    tmp_path: Path,
    ingest: NginxRtmp,
    platforms: NginxRtmp,
    publisher: Publisher,
    broker: Mosquitto,
) -> Iterator[tuple[WebService, IngressFront]]:
    api = {"token": TOKEN, "ingress_proxy": PROXY_ADDRESS}
    service = launch(tmp_path, ingest, platforms, broker, api=api)
    front = start_ingress_front(tmp_path / "front", int(service.url.rsplit(":", 1)[1]))
    yield service, front
    front.stop()
    service.stop()
    assert service.proc.returncode == 0
    text = (tmp_path / "service.log").read_text()
    assert CANARY_KEY not in text and "Traceback" not in text


pytestmark = pytest.mark.integration


def test_through_ingress_no_token_directly_the_token(
    behind_ingress: tuple[WebService, IngressFront],
) -> None:
    service, front = behind_ingress
    direct = service.url
    forged = {"X-Ingress-Path": PREFIX}
    assert httpx.get(f"{direct}/api/streams", timeout=10).status_code == 401
    assert httpx.get(f"{direct}/api/streams", headers=forged, timeout=10).status_code == 401
    assert (
        httpx.put(
            f"{direct}/api/streams/tiktok", json={"enabled": True}, headers=forged, timeout=10
        ).status_code
        == 401
    )
    authorized = {"Authorization": f"Bearer {TOKEN}"}
    assert httpx.get(f"{direct}/api/streams", headers=authorized, timeout=10).status_code == 200

    through = f"http://127.0.0.1:{front.port}{PREFIX}"
    streams = httpx.get(f"{through}/api/streams", timeout=10)
    assert streams.status_code == 200 and streams.json()[0]["id"] == "tiktok"
    # Home Assistant's Host, as its proxy passes it on: not refused behind ingress
    named = httpx.get(f"{through}/api/health", headers={"Host": "homeassistant.local:8123"})
    assert named.status_code == 200
    # the API's docs find their document under the ingress path too
    docs = httpx.get(f"{through}/api/docs", timeout=10)
    assert docs.status_code == 200 and "'../openapi.json'" in docs.text
    assert httpx.get(f"{through}/openapi.json", timeout=10).json()["info"]["title"] == "mqttrelay"
    page = httpx.get(f"{through}/", timeout=10)
    assert page.status_code == 200
    assert "frame-ancestors 'self'" in page.headers["content-security-policy"]
    assert "x-frame-options" not in page.headers  # Home Assistant shows it in a frame
    # straight to the port the page stays unframable
    assert httpx.get(f"{direct}/", timeout=10).headers["x-frame-options"] == "DENY"
    # a state change from another site is refused behind ingress too
    cross = httpx.put(
        f"{through}/api/streams/tiktok",
        json={"enabled": True},
        headers={"Sec-Fetch-Site": "cross-site"},
        timeout=10,
    )
    assert cross.status_code == 403
    # server-sent events come through the proxy unbuffered
    with httpx.stream("GET", f"{through}/api/events", timeout=10) as events:
        assert events.status_code == 200
        first = next(events.iter_lines())
        assert first.startswith(("event:", "data:", ":", "retry:"))


@pytest.mark.slow
async def test_the_page_in_a_browser_behind_ingress_switches_a_destination(
    browser: Browser, behind_ingress: tuple[WebService, IngressFront], platforms: NginxRtmp
) -> None:
    _, front = behind_ingress
    page = await browser.new_page(viewport={"width": 390, "height": 844})
    asked_for_token: list[str] = []

    async def refuse(dialog: Dialog) -> None:
        asked_for_token.append(dialog.message)
        await dialog.dismiss()

    page.on("dialog", refuse)
    await page.goto(front.page_url)
    card = page.locator('[data-testid="card"][data-stream="tiktok"]')
    await expect(card.get_by_test_id("status")).to_have_text("off", timeout=15_000)
    await expect(page.get_by_test_id("ingest-status")).to_have_text("live", timeout=30_000)
    await expect(page.get_by_test_id("connection")).to_have_text("live updates")
    await card.get_by_test_id("toggle").click()
    await expect(card.get_by_test_id("status")).to_have_text("live", timeout=20_000)
    await expect(card.get_by_test_id("bitrate")).not_to_have_text("0", timeout=15_000)
    await shot(page, "web-phone-ingress-live")
    await card.get_by_test_id("toggle").click()
    await expect(card.get_by_test_id("status")).to_have_text("off", timeout=20_000)
    assert asked_for_token == []
