"""The test kit's browser half: Debian's chromium through Playwright, and
`mqttrelay run` for the page. Test modules import these from here."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from playwright.async_api import Browser, Page, async_playwright

from .kit import CANARY_KEY
from .support import Mosquitto, NginxRtmp, Publisher, free_port, require_tool, wait_port

# -- the page in a browser ------------------------------------------------------
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
CHROMIUM_ARGS = [
    "--no-sandbox",  # the tests run as root
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
]


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    chromium = require_tool("chromium")
    async with async_playwright() as p:
        instance = await p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        yield instance
        await instance.close()


@dataclass
class WebService:
    url: str
    proc: subprocess.Popen[bytes]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(30)


def launch(
    tmp_path: Path,
    ingest: NginxRtmp,
    platforms: NginxRtmp,
    broker: Mosquitto,
    api: Mapping[str, object] | None = None,
    streams: list[dict[str, object]] | None = None,
    **extra: object,
) -> WebService:
    """`mqttrelay run` with two streams (or `streams`); `api`: more of that section,
    `extra`: more config sections."""
    port = free_port()
    config = tmp_path / "config.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "state_file": "state.json",
                "ingest": {"url": ingest.url("stream")},
                "mqtt": {"port": broker.port},
                "api": {"port": port, **(api or {})},
                "streams": streams
                or [
                    {
                        "id": sid,
                        "name": name,
                        "url": f"rtmp://127.0.0.1:{platforms.rtmp_port}/dest",
                        "key": f"{sid}-{CANARY_KEY}",
                    }
                    for sid, name in [("tiktok", "TikTok"), ("youtube", "YouTube")]
                ],
                **extra,
            }
        )
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "mqttrelay", "run", "--config", str(config)],
        stdin=subprocess.DEVNULL,
        stdout=(tmp_path / "service.log").open("wb"),
        stderr=subprocess.STDOUT,
        env=dict(os.environ),
    )
    wait_port(port, 30)
    return WebService(f"http://127.0.0.1:{port}", proc)


@pytest.fixture
def web_service(
    tmp_path: Path,
    ingest: NginxRtmp,
    platforms: NginxRtmp,
    publisher: Publisher,
    broker: Mosquitto,
) -> Iterator[WebService]:
    service = launch(tmp_path, ingest, platforms, broker)
    yield service
    service.stop()
    assert CANARY_KEY not in (tmp_path / "service.log").read_text()


async def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
