"""Sources on the page, in a real browser against `mqttrelay run`, the real ingest
with two publishers (OBS's main output and a vertical one) and a platform."""

# ruff: noqa: F811 - the fixtures of test_web.py and test_sources.py, imported by name

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from playwright.async_api import Browser, expect

from .conftest import CANARY_KEY
from .support import Mosquitto, NginxRtmp, Publisher, free_port, wait_port
from .test_relay_e2e import wait_publishing
from .test_sources import vertical, video_size  # noqa: F401
from .test_web import WebService, browser, shot  # noqa: F401

pytestmark = pytest.mark.integration

PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True}


@pytest.fixture
def sources_service(
    tmp_path: Path,
    ingest: NginxRtmp,
    platforms: NginxRtmp,
    publisher: Publisher,
    vertical: Publisher,
    broker: Mosquitto,
) -> Iterator[WebService]:
    port = free_port()
    config = tmp_path / "config.yaml"
    ingest_section = {
        "url": ingest.url("stream"),
        "sources": [{"id": "vertical", "url": ingest.url("vertical")}],
    }
    streams = [
        {"id": sid, "name": name, "url": f"rtmp://127.0.0.1:{platforms.rtmp_port}/dest",
         "key": f"{sid}-{CANARY_KEY}"}
        for sid, name in [("tiktok", "TikTok"), ("youtube", "YouTube")]
    ]  # fmt: skip
    config.write_text(
        yaml.safe_dump(
            {
                "state_file": "state.json",
                "ingest": ingest_section,
                "mqtt": {"port": broker.port},
                "api": {"port": port},
                "streams": streams,
            }
        )
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "mqttrelay", "run", "--config", str(config)],
        stdin=subprocess.DEVNULL,
        stdout=(tmp_path / "service.log").open("wb"),
        stderr=subprocess.STDOUT,
    )
    wait_port(port, 30)
    service = WebService(f"http://127.0.0.1:{port}", proc)
    yield service
    service.stop()
    assert CANARY_KEY not in (tmp_path / "service.log").read_text()


@pytest.mark.slow
async def test_the_page_shows_each_source_and_a_destination_picks_one(
    browser: Browser, sources_service: WebService, platforms: NginxRtmp, tmp_path: Path
) -> None:
    page = await browser.new_page(**PHONE)  # type: ignore[arg-type]
    await page.goto(sources_service.url)
    await expect(page.get_by_test_id("ingest-status")).to_have_text("live", timeout=30_000)

    # the vertical source: live, its size and its picture
    row = page.locator('[data-testid="source"][data-source="vertical"]')
    await expect(row.locator(".pill")).to_have_text("live", timeout=30_000)
    await expect(row.locator(".source-facts")).to_contain_text("180x320")
    # on a phone its picture is one tap away: the destinations stay on the first screen
    picture = row.locator("img")
    await expect(picture).to_be_hidden()
    first_card = page.locator('[data-testid="card"]').first
    box = await first_card.bounding_box()
    screen = page.viewport_size
    assert box is not None and screen is not None
    assert box["y"] + box["height"] <= screen["height"], (box, screen)
    await row.get_by_test_id("source-open").tap()
    await expect(picture).to_be_visible(timeout=20_000)
    assert await picture.evaluate("img => [img.naturalWidth, img.naturalHeight]") == [180, 320]

    # TikTok moves to the vertical source, then goes live with its picture
    card = page.locator('[data-testid="card"][data-stream="tiktok"]')
    more = card.get_by_test_id("more-open")  # the phone-first page folds the details away
    if await more.count() and await more.is_visible():
        await more.click()
    await card.get_by_test_id("edit-open").click()
    await expect(card.get_by_test_id("edit-source")).to_be_visible(timeout=15_000)
    await card.get_by_test_id("edit-source").select_option("vertical")
    await expect(card.get_by_test_id("source-result")).to_have_text(" Source saved", timeout=15_000)
    await expect(card.get_by_test_id("source-note")).to_have_text("source vertical")
    await shot(page, "web-phone-sources")
    overflow = await page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, "the page scrolls sideways on a phone"
    config = yaml.safe_load((tmp_path / "config.yaml").read_text())
    assert {s["id"]: s.get("source") for s in config["streams"]} == {
        "tiktok": "vertical",
        "youtube": None,
    }
    await card.get_by_test_id("toggle").tap()
    await expect(card.get_by_test_id("status")).to_have_text("live", timeout=30_000)
    await wait_publishing(platforms, f"tiktok-{CANARY_KEY}")
    assert await video_size(platforms.url(f"tiktok-{CANARY_KEY}")) == "180x320"
    async with httpx.AsyncClient(base_url=sources_service.url) as client:
        assert (await client.get("/api/streams/tiktok")).json()["source"] == "vertical"
