"""The web page in a real browser (Debian's chromium driven by Playwright) against
the real service with real relays, a real broker and a real stream."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, Dialog, expect

from .kit import CANARY_KEY, collector
from .support import Mosquitto, NginxRtmp, Publisher
from .web_kit import ARTIFACTS, WebService, browser, launch, shot, web_service

pytestmark = pytest.mark.integration
# the fixtures, used by name; also imported from here
__all__ = ["ARTIFACTS", "WebService", "browser", "launch", "shot", "web_service"]


async def test_toggle_in_the_browser_goes_live_and_off(
    browser: Browser, web_service: WebService, broker: Mosquitto
) -> None:
    page = await browser.new_page(viewport={"width": 1100, "height": 800})
    await page.goto(web_service.url)
    tiktok = page.locator('[data-testid="card"][data-stream="tiktok"]')
    youtube = page.locator('[data-testid="card"][data-stream="youtube"]')
    await expect(tiktok.get_by_test_id("status")).to_have_text("off", timeout=15_000)
    await expect(page.get_by_test_id("ingest-status")).to_have_text("live", timeout=30_000)
    await expect(page.get_by_test_id("connection")).to_have_text("live updates")

    await tiktok.get_by_test_id("toggle").click()
    await expect(tiktok.get_by_test_id("status")).to_have_text("live", timeout=20_000)
    await expect(tiktok.get_by_test_id("bitrate")).not_to_have_text("0", timeout=15_000)
    await expect(youtube.get_by_test_id("status")).to_have_text("off")
    await shot(page, "web-tiktok-live")

    await tiktok.get_by_test_id("toggle").click()
    await expect(tiktok.get_by_test_id("status")).to_have_text("off", timeout=20_000)
    await expect(tiktok.get_by_test_id("toggle")).not_to_be_checked()

    # changes through other paths show up by themselves
    async with httpx.AsyncClient(base_url=web_service.url) as client:
        response = await client.put("/api/streams/youtube", json={"enabled": True})
        assert response.status_code == 200
    await expect(youtube.get_by_test_id("toggle")).to_be_checked(timeout=10_000)
    await expect(youtube.get_by_test_id("status")).to_have_text("live", timeout=20_000)
    async with collector(broker.port) as col:
        await col.publish("streamrelay/tiktok/set", b"ON")
        await expect(tiktok.get_by_test_id("toggle")).to_be_checked(timeout=10_000)
        await expect(tiktok.get_by_test_id("status")).to_have_text("live", timeout=20_000)
    # a timer from the page: "switch in 30 min" turns the live stream off later
    await youtube.get_by_test_id("timer-select").select_option("1800")
    await expect(youtube.get_by_test_id("next-change")).to_contain_text(
        "Switches off", timeout=10_000
    )
    async with httpx.AsyncClient(base_url=web_service.url) as client:
        timers = (await client.get("/api/streams/youtube/timer")).json()
    assert len(timers) == 1 and timers[0]["action"] == "off"
    await shot(page, "web-both-live")
    await youtube.get_by_test_id("timer-cancel").click()
    await expect(youtube.get_by_test_id("next-change")).to_have_text("", timeout=10_000)
    content = await page.content()
    assert CANARY_KEY not in content
    assert re.search(r"rtmp://127\.0\.0\.1:\d+/dest/\*\*\*\*", content)


@pytest.mark.slow
async def test_phone_layout_and_lost_service(browser: Browser, web_service: WebService) -> None:
    page = await browser.new_page(
        viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True
    )
    await page.goto(web_service.url)
    tiktok = page.locator('[data-testid="card"][data-stream="tiktok"]')
    await expect(tiktok.get_by_test_id("status")).to_have_text("off", timeout=15_000)
    await expect(page.get_by_test_id("ingest-status")).to_have_text("live", timeout=30_000)
    await tiktok.get_by_test_id("toggle").tap()
    await expect(tiktok.get_by_test_id("status")).to_have_text("live", timeout=20_000)
    overflow = await page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, "the page scrolls sideways on a phone"
    box = await tiktok.locator(".switch").bounding_box()
    assert box is not None and box["width"] >= 44 and box["height"] >= 44  # thumb-sized
    await shot(page, "web-phone")

    # the service goes away: the page says so instead of showing stale data silently
    async with httpx.AsyncClient(base_url=web_service.url) as client:
        await client.put("/api/streams/tiktok", json={"enabled": False})
    web_service.stop()
    await expect(page.get_by_test_id("banner")).to_be_visible(timeout=20_000)
    await expect(page.get_by_test_id("connection")).to_have_text("reconnecting…")
    await shot(page, "web-phone-lost")


async def test_page_with_a_token_strict_policy_and_sign_out(
    browser: Browser, tmp_path: Path
) -> None:
    """Token asked once, events through a ticket (the token never in a URL),
    nothing blocked by the page's own Content-Security-Policy, sign-out forgets it."""
    from .kit import SERVICE_TOKEN as TOKEN
    from .kit import offline_service

    service = offline_service(tmp_path / "svc", TOKEN)
    try:
        page = await browser.new_page()
        problems: list[str] = []
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        urls: list[str] = []
        page.on("request", lambda r: urls.append(r.url))
        prompts: list[str] = []

        async def answer(dialog: Dialog) -> None:
            prompts.append(dialog.message)
            await dialog.accept(TOKEN)

        page.on("dialog", answer)
        await page.goto(f"http://127.0.0.1:{service.port}/")
        card = page.locator('[data-testid="card"][data-stream="facebook"]')
        await expect(page.get_by_test_id("connection")).to_have_text("live updates", timeout=15_000)
        await expect(card.get_by_test_id("status")).to_have_text("off")
        assert prompts == ["This mqttrelay needs its API token:"]
        assert any("/api/events?ticket=" in u for u in urls)
        assert not any(TOKEN in u for u in urls), "the token went into a URL"
        # only the 401 that asked for the token; nothing the policy blocked
        assert not [p for p in problems if "Content Security Policy" in p], problems
        await expect(page.get_by_test_id("sign-out")).to_be_visible()
        await page.get_by_test_id("sign-out").click()
        assert await page.evaluate("localStorage.getItem('mqttrelay-token')") is None
        await expect(page.get_by_test_id("sign-out")).to_be_hidden()
        await shot(page, "web-signed-out")
    finally:
        assert service.stop() == 0
        service.cleanup()


@pytest.mark.slow
async def test_be_right_back_from_the_page(
    browser: Browser,
    tmp_path: Path,
    ingest: NginxRtmp,
    platforms: NginxRtmp,
    publisher: Publisher,
    broker: Mosquitto,
) -> None:
    service = launch(tmp_path, ingest, platforms, broker, standby={})
    try:
        page = await browser.new_page(viewport={"width": 1100, "height": 800})
        await page.goto(service.url)
        tiktok = page.locator('[data-testid="card"][data-stream="tiktok"]')
        await expect(page.get_by_test_id("ingest-status")).to_have_text("live", timeout=30_000)
        await tiktok.get_by_test_id("toggle").click()
        await expect(tiktok.get_by_test_id("status")).to_have_text("live", timeout=20_000)
        brb = page.get_by_test_id("brb")
        await expect(brb).to_have_text("Be right back")
        for _ in range(30):  # the loop is made from OBS's first seconds
            await brb.click()
            await page.wait_for_timeout(1000)  # the answer renders the button
            if await brb.get_attribute("aria-pressed") == "true":
                break
            assert "not made yet" in (await page.get_by_test_id("brb-error").inner_text())
        await expect(brb).to_have_text("Back to OBS")
        await expect(tiktok.get_by_test_id("status")).to_have_text("standby", timeout=15_000)
        await shot(page, "web-be-right-back")
        await brb.click()
        await expect(brb).to_have_text("Be right back")
        await expect(tiktok.get_by_test_id("status")).to_have_text("live", timeout=15_000)
    finally:
        service.stop()
    assert CANARY_KEY not in (tmp_path / "service.log").read_text()


async def test_no_be_right_back_button_without_a_standby_section(
    browser: Browser, web_service: WebService
) -> None:
    page = await browser.new_page()
    await page.goto(web_service.url)
    await expect(page.get_by_test_id("ingest-status")).to_have_text("live", timeout=30_000)
    await expect(page.get_by_test_id("brb")).to_be_hidden()
