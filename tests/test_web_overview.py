"""The page mid-show on a phone (issue 27): five destinations, one of them broken,
in a real browser against the real service, relays, platforms and stream. Every
switch on the first screen, a failure shown as one, the graph drawn on load from
the service's history, the add form's problems in plain words."""

# ruff: noqa: F811 - the fixtures of test_web.py, imported by name for pytest

from __future__ import annotations

import asyncio
import shutil
import time
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, Page, expect

from .kit import CANARY_KEY
from .support import Mosquitto, NginxRtmp, Publisher, free_port
from .web_kit import ARTIFACTS, browser, launch  # noqa: F401

pytestmark = pytest.mark.integration

PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True}
DESKTOP = {"viewport": {"width": 1366, "height": 900}}
NAMES = {"tiktok": "TikTok", "youtube": "YouTube", "twitch": "Twitch", "facebook": "Facebook"}
BROKEN = "kick"
LIVE_S = 62  # the page opens after the destinations have been live this long


async def screenshot(page: Page, folder: Path, name: str) -> Path:
    """The first screen only (what the streamer sees without scrolling), kept in the
    test's folder and in test-artifacts/."""
    path = folder / f"{name}.png"
    await page.wait_for_timeout(500)  # the switches' colour transitions end
    await page.screenshot(path=str(path))
    ARTIFACTS.mkdir(exist_ok=True)
    shutil.copy(path, ARTIFACTS / path.name)
    print(f"screenshot: {path}")
    return path


async def wait_problem(client: httpx.AsyncClient, sid: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    state: dict[str, object] = {}
    while time.monotonic() < deadline:
        state = (await client.get(f"/api/streams/{sid}")).json()
        if state["problem"] and state["status"] == "retrying":
            return
        await asyncio.sleep(0.5)
    raise AssertionError(f"{sid} shows no long outage after {timeout_s} s: {state}")


async def wait_status(client: httpx.AsyncClient, sid: str, status: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    seen = None
    while time.monotonic() < deadline:
        seen = (await client.get(f"/api/streams/{sid}")).json()["status"]
        if seen == status:
            return
        await asyncio.sleep(0.5)
    raise AssertionError(f"{sid} is {seen}, not {status}, after {timeout_s} s")


async def switches_on_first_screen(page: Page, height: int) -> None:
    for name in [*NAMES.values(), "Kick"]:
        switch = page.get_by_role("switch", name=name, exact=True)
        await expect(switch).to_be_visible(timeout=15_000)
        await expect(switch).to_have_attribute("aria-checked", "true")
        box = await switch.bounding_box()
        assert box is not None, name
        assert box["y"] >= 0 and box["y"] + box["height"] <= height, f"{name}'s switch: {box}"
        assert box["height"] >= 44 and box["width"] >= 44, f"{name}'s switch is small: {box}"


@pytest.mark.slow
async def test_five_destinations_mid_show_on_a_phone_and_a_desktop(
    browser: Browser,
    tmp_path: Path,
    ingest: NginxRtmp,
    platforms: NginxRtmp,
    publisher: Publisher,
    broker: Mosquitto,
) -> None:
    working = f"rtmp://127.0.0.1:{platforms.rtmp_port}/dest"
    streams: list[dict[str, object]] = [
        {"id": sid, "name": name, "url": working, "key": f"{sid}-{CANARY_KEY}"}
        for sid, name in NAMES.items()
    ]
    closed = f"rtmp://127.0.0.1:{free_port()}/app"  # nothing listens: it fails, again and again
    streams.append({"id": BROKEN, "name": "Kick", "url": closed, "key": f"k-{CANARY_KEY}"})
    vertical = {"width": 180, "height": 320, "video_bitrate_kbps": 150}
    service = launch(
        tmp_path, ingest, platforms, broker, streams=streams, profiles={"vertical": vertical}
    )
    shots = tmp_path / "screenshots"
    shots.mkdir()
    try:
        async with httpx.AsyncClient(base_url=service.url, timeout=30) as client:
            for sid in [*NAMES, BROKEN]:
                r = await client.put(f"/api/streams/{sid}", json={"enabled": True})
                assert r.status_code == 200, r.text
            await wait_status(client, "tiktok", "live", 60)
            live_since = time.monotonic()
            # the broken one is a problem after 8 failures with growing pauses, or a
            # minute; it is still tried
            await wait_problem(client, BROKEN, 240)
            await asyncio.sleep(max(0.0, LIVE_S - (time.monotonic() - live_since)))

        page = await browser.new_page(**PHONE)  # type: ignore[arg-type]
        problems: list[str] = []
        page.on("pageerror", lambda e: problems.append(str(e)))
        await page.goto(service.url)
        await expect(page.get_by_test_id("connection")).to_have_text("live updates", timeout=15_000)
        for sid in NAMES:
            card = page.locator(f'[data-testid="card"][data-stream="{sid}"]')
            await expect(card.get_by_test_id("status")).to_have_text("live", timeout=20_000)

        # every destination's switch, with its name, without scrolling
        await switches_on_first_screen(page, 844)
        assert await page.evaluate("window.scrollY") == 0
        overflow = await page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, "the page scrolls sideways on a phone"

        # the failed one looks failed: switch, row and card, in colour and in words
        kick = page.locator(f'[data-testid="card"][data-stream="{BROKEN}"]')
        switch = page.get_by_role("switch", name="Kick", exact=True)
        await expect(kick.get_by_test_id("status")).to_have_text("retrying")
        await expect(switch).to_have_attribute("data-problem", "bad")
        await expect(switch).to_contain_text("DOWN")
        await expect(kick).to_have_attribute("data-level", "bad")
        problem = kick.get_by_test_id("retry")
        await expect(problem).to_be_visible()
        await expect(problem).to_contain_text("Down for long")
        await expect(problem).to_contain_text("keeps trying")
        await expect(problem).to_contain_text("connection refused")  # why, in plain words
        colour = await switch.locator(".track").evaluate("e => getComputedStyle(e).backgroundColor")
        assert colour == "rgb(239, 68, 68)", colour  # red, not the green of a live one
        healthy = page.get_by_role("switch", name="TikTok", exact=True)
        await expect(healthy).not_to_have_attribute("data-problem", "bad")
        await screenshot(page, shots, "overview-phone")

        # a page opened after a minute live draws the minute: the history is the service's
        tiktok = page.locator('[data-testid="card"][data-stream="tiktok"]')
        await tiktok.get_by_test_id("more-open").tap()
        graph = tiktok.get_by_test_id("graph")
        await expect(graph).to_be_visible()
        sending_s = int(await graph.get_attribute("data-sending-s") or 0)
        assert sending_s >= 50, f"the graph shows {sending_s} s of bitrate"
        points = await graph.locator("polyline").get_attribute("points")
        assert points is not None and len(points.split()) >= 25
        # scaled to the steady rate: most of the line is not squashed at the bottom
        label = await graph.locator(".peak").inner_text()
        assert label.startswith("~"), label
        await screenshot(page, shots, "overview-phone-details")
        await tiktok.get_by_test_id("more-open").tap()

        # a real switch: the keyboard works it
        await healthy.focus()
        await page.keyboard.press("Space")
        await expect(healthy).to_have_attribute("aria-checked", "false", timeout=15_000)
        await expect(tiktok.get_by_test_id("status")).to_have_text("off", timeout=20_000)
        await healthy.focus()
        await page.keyboard.press("Enter")
        await expect(healthy).to_have_attribute("aria-checked", "true", timeout=15_000)

        # a `congested` status and its figures, as the service sends them (played into
        # the page: the shaped-link test makes a real one, tests/test_shaped_link.py)
        await page.evaluate(
            """() => render({...cards.get("twitch").last, status: "congested", version: 1e12,
                              dropped_share: 0.12, delay_ms: 1500})"""
        )
        twitch = page.locator('[data-testid="card"][data-stream="twitch"]')
        await expect(twitch).to_have_attribute("data-level", "warn")
        await expect(page.get_by_role("switch", name="Twitch")).to_have_attribute(
            "data-problem", "warn"
        )
        await expect(twitch.get_by_test_id("retry")).to_contain_text(
            "the link to this platform is too slow; frames are being dropped"
        )
        await expect(twitch.get_by_test_id("quality")).to_have_text("12% dropped · delay 1.5 s")
        await screenshot(page, shots, "overview-phone-congested")

        await add_form_says_it_in_plain_words(page, shots, platforms)
        assert not problems, problems
        assert CANARY_KEY not in await page.content()

        desktop = await browser.new_page(**DESKTOP)  # type: ignore[arg-type]
        await desktop.goto(service.url)
        await expect(desktop.get_by_test_id("connection")).to_have_text(
            "live updates", timeout=15_000
        )
        await switches_on_first_screen(desktop, 900)
        # the ingest's graph too starts from the service's history (its panel is open here)
        ingest_graph = desktop.get_by_test_id("ingest-graph")
        await expect(ingest_graph).to_be_visible()
        assert int(await ingest_graph.get_attribute("data-sending-s") or 0) >= 50
        url = desktop.locator('[data-testid="card"][data-stream="youtube"] [data-testid="url"]')
        lines = await url.evaluate("e => Math.round(e.getBoundingClientRect().height / 14)")
        assert lines <= 1, "the masked URL wraps"
        await screenshot(desktop, shots, "overview-desktop")
    finally:
        service.stop()
    assert CANARY_KEY not in (tmp_path / "service.log").read_text()


async def add_form_says_it_in_plain_words(page: Page, shots: Path, platforms: NginxRtmp) -> None:
    await page.get_by_test_id("add-open").tap()
    await page.get_by_test_id("add-preset").select_option("youtube")
    # a second YouTube gets a name of its own
    await expect(page.get_by_test_id("add-name")).to_have_value("YouTube 2")
    await expect(page.get_by_test_id("add-id")).to_have_value("youtube-2")
    await page.get_by_test_id("add-name").fill("YouTube")
    await expect(page.get_by_test_id("add-name-error")).to_contain_text(
        'Another destination is already called "YouTube"'
    )
    await page.get_by_test_id("add-name").fill("YouTube 2")
    await expect(page.get_by_test_id("add-name-error")).to_have_text("")
    # a whole address pasted as the key, a key pasted into the address
    await page.get_by_test_id("add-key").fill("rtmps://a.rtmps.youtube.com:443/live2/abcd")
    await expect(page.get_by_test_id("add-key-error")).to_contain_text(
        "This is a server address, not a stream key: put it in the Server address field"
    )
    await page.get_by_test_id("add-url").fill(
        "rtmps://a.rtmps.youtube.com:443/live2/abcd-efgh-1234"
    )
    await expect(page.get_by_test_id("add-url-error")).to_contain_text(
        "that last part is the stream key. Put it in the Stream key field"
    )
    await page.get_by_test_id("add-submit").tap()
    await expect(page.get_by_test_id("add-error")).to_contain_text("Not added:")
    await screenshot(page, shots, "add-form-phone")
    # one tap moves the key where it belongs
    await page.get_by_test_id("add-url-fix").tap()
    await expect(page.get_by_test_id("add-url")).to_have_value(
        "rtmps://a.rtmps.youtube.com:443/live2"
    )
    await expect(page.get_by_test_id("add-key")).to_have_value("abcd-efgh-1234")
    await expect(page.get_by_test_id("add-url-error")).to_have_text("")
    await expect(page.get_by_test_id("add-key-error")).to_have_text("")
    await expect(page.get_by_test_id("add-url-fix")).to_be_hidden()
    # the wrong scheme, said as a person would
    await page.get_by_test_id("add-key").fill("abcd-efgh-1234")
    await page.get_by_test_id("add-url").fill("http://a.rtmps.youtube.com/live2")
    await page.get_by_test_id("add-submit").tap()
    await expect(page.get_by_test_id("add-error")).to_contain_text(
        "The server address must start with rtmp://, rtmps:// or srt://"
    )
    # what only the service can tell comes back in words too (its 422's message)
    await page.get_by_test_id("add-url").fill("rtmp:///live2")
    await page.get_by_test_id("add-submit").tap()
    await expect(page.get_by_test_id("add-error")).to_have_text(
        "Not added: The server address has no host"
    )
    # the output profiles config.yaml has, the vertical one for TikTok
    await page.get_by_test_id("add-preset").select_option("tiktok")
    await expect(page.get_by_test_id("add-profile")).to_have_value("vertical")
    await page.get_by_test_id("add-url").fill(f"rtmp://127.0.0.1:{platforms.rtmp_port}/dest")
    await page.get_by_test_id("add-key").fill(f"tt2-{CANARY_KEY}")
    await page.get_by_test_id("add-submit").tap()
    await expect(page.get_by_test_id("add-panel")).to_be_hidden(timeout=15_000)
    card = page.locator('[data-testid="card"][data-stream="tiktok-2"]')
    await expect(card.locator(".name")).to_have_text("TikTok 2")
    await expect(card.get_by_test_id("profile")).to_have_text("profile vertical")
