"""Managing destinations and settings from the page, on a phone, in a real
browser against the real service, relays, platforms and stream."""

# ruff: noqa: F811 - the fixtures of test_web.py, imported by name for pytest

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
import yaml
from playwright.async_api import Browser, expect

from .kit import CANARY_KEY, wait_gone, wait_publishing
from .support import Mosquitto, NginxRtmp, Publisher, free_port
from .web_kit import WebService, browser, launch, shot, web_service  # noqa: F401

pytestmark = pytest.mark.integration

PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True}


@pytest.mark.slow
async def test_add_from_a_preset_go_live_rekey_and_delete_on_a_phone(
    browser: Browser, web_service: WebService, platforms: NginxRtmp, tmp_path: Path
) -> None:
    page = await browser.new_page(**PHONE)  # type: ignore[arg-type]
    page.on("dialog", lambda dialog: dialog.accept())
    await page.goto(web_service.url)
    await expect(page.get_by_test_id("ingest-status")).to_have_text("live", timeout=30_000)

    # the picture OBS sends, one tap away on a phone, refreshed while it is shown
    await page.get_by_test_id("ingest-more-open").tap()
    snapshot = page.get_by_test_id("snapshot")
    await expect(snapshot).to_be_visible(timeout=20_000)
    first = await snapshot.get_attribute("data-taken")
    await expect(snapshot).not_to_have_attribute("data-taken", first or "", timeout=20_000)
    width = await snapshot.evaluate("img => img.naturalWidth")
    assert width == 320
    await expect(page.get_by_test_id("ingest-facts")).to_contain_text("320x240 · 25 fps")
    await expect(page.get_by_test_id("ingest-facts")).to_contain_text("H.264 / AAC")
    await shot(page, "web-phone-snapshot")

    # a preset fills the server URL; here it is pointed at the lab's platform
    await page.get_by_test_id("add-open").tap()
    await page.get_by_test_id("add-preset").select_option("youtube")
    await expect(page.get_by_test_id("add-url")).to_have_value(
        "rtmps://a.rtmps.youtube.com:443/live2"
    )
    await expect(page.get_by_test_id("add-id")).to_have_value("youtube-2")  # youtube exists
    await expect(page.get_by_test_id("add-help")).to_contain_text("Stream key")
    await page.get_by_test_id("add-url").fill(f"rtmp://127.0.0.1:{platforms.rtmp_port}/dest")
    await page.get_by_test_id("add-key").fill(f"yt2-{CANARY_KEY}")
    await shot(page, "web-phone-add-destination")
    await page.get_by_test_id("add-submit").tap()
    await expect(page.get_by_test_id("add-panel")).to_be_hidden(timeout=10_000)

    card = page.locator('[data-testid="card"][data-stream="youtube-2"]')
    await expect(card.locator(".name")).to_have_text("YouTube 2")  # not a second "YouTube"
    await card.get_by_test_id("toggle").tap()
    await expect(card.get_by_test_id("status")).to_have_text("live", timeout=30_000)
    await wait_publishing(platforms, f"yt2-{CANARY_KEY}")

    # a new key for the next broadcast: open the destination, paste it, one tap
    await card.get_by_test_id("more-open").tap()
    await card.get_by_test_id("edit-open").tap()
    await card.get_by_test_id("new-key").fill(f"yt3-{CANARY_KEY}")
    await card.get_by_test_id("key-save").tap()
    await expect(card.get_by_test_id("edit-result")).to_have_text("New key in use")
    await wait_publishing(platforms, f"yt3-{CANARY_KEY}")
    await wait_gone(platforms, f"yt2-{CANARY_KEY}")
    await expect(card.get_by_test_id("status")).to_have_text("live", timeout=30_000)
    await shot(page, "web-phone-edit-destination")
    overflow = await page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, "the page scrolls sideways on a phone"

    # a bad URL is refused in plain words naming the field, and nothing changes
    await card.get_by_test_id("edit-url").fill("file:///etc/passwd")
    await card.get_by_test_id("edit-save").tap()
    await expect(card.get_by_test_id("edit-result")).to_contain_text(
        "The server address must start with rtmp://, rtmps:// or srt://"
    )

    # another server: the key stays behind and the page asks for that server's own
    await card.get_by_test_id("edit-url").fill(f"rtmp://127.0.0.1:{free_port()}/app")
    await card.get_by_test_id("edit-save").tap()
    await expect(card.get_by_test_id("edit-result")).to_contain_text("enter its stream key")
    await expect(card.get_by_test_id("edit-url-key")).to_be_focused()
    await card.get_by_test_id("edit-url-key").fill(f"yt4-{CANARY_KEY}")
    await card.get_by_test_id("edit-save").tap()
    await expect(card.get_by_test_id("edit-result")).to_have_text("Saved", timeout=10_000)
    await wait_gone(platforms, f"yt3-{CANARY_KEY}")
    assert f"yt4-{CANARY_KEY}" in (tmp_path / "config.yaml").read_text()

    await card.get_by_test_id("delete").tap()
    await expect(card).to_have_count(0, timeout=15_000)
    await wait_gone(platforms, f"yt3-{CANARY_KEY}")
    assert CANARY_KEY not in await page.content()
    config = yaml.safe_load((tmp_path / "config.yaml").read_text())
    assert [s["id"] for s in config["streams"]] == ["tiktok", "youtube"]


async def test_settings_from_the_page_refuse_what_is_not_ffmpeg(
    browser: Browser, web_service: WebService
) -> None:
    page = await browser.new_page(**PHONE)  # type: ignore[arg-type]
    await page.goto(web_service.url)
    await page.get_by_test_id("settings-open").tap()
    await expect(page.get_by_test_id("set-ffmpeg")).to_have_value("ffmpeg", timeout=10_000)
    await page.get_by_test_id("set-ffmpeg").fill("/bin/true")
    await page.get_by_test_id("settings-save").tap()
    await expect(page.get_by_test_id("settings-result")).to_contain_text(
        "not named ffmpeg", timeout=15_000
    )
    await shot(page, "web-phone-settings")
    async with httpx.AsyncClient(base_url=web_service.url) as client:
        assert (await client.get("/api/settings")).json()["ffmpeg_path"] == "ffmpeg"
        # and the old path keeps working: a relay still starts
        await client.put("/api/streams/tiktok", json={"enabled": True})
    card = page.locator('[data-testid="card"][data-stream="tiktok"]')
    await expect(card.get_by_test_id("status")).to_have_text("live", timeout=30_000)


async def test_a_retrying_destination_says_why_and_when_it_tries_again(
    browser: Browser, web_service: WebService
) -> None:
    page = await browser.new_page(**PHONE)  # type: ignore[arg-type]
    await page.goto(web_service.url)
    await expect(page.get_by_test_id("ingest-status")).to_have_text("live", timeout=30_000)
    closed = f"rtmp://127.0.0.1:{free_port()}/app"  # nothing listens there
    async with httpx.AsyncClient(base_url=web_service.url) as client:
        body = {"id": "gone", "url": closed, "key": f"g-{CANARY_KEY}", "enabled": True}
        assert (await client.post("/api/streams", json=body)).status_code == 201
        card = page.locator('[data-testid="card"][data-stream="gone"]')
        await expect(card.get_by_test_id("retry")).to_contain_text("Tries again at", timeout=30_000)
        await expect(card.get_by_test_id("error")).to_contain_text("Last error:")
        await shot(page, "web-phone-retrying")
        retry_at = None
        for _ in range(100):  # between two attempts
            state = (await client.get("/api/streams/gone")).json()
            if state["status"] == "retrying":
                retry_at = state["retry_at"]
                break
            await page.wait_for_timeout(100)
        assert retry_at is not None
    assert CANARY_KEY not in await page.content()


@pytest.mark.slow
async def test_the_page_shows_profiles_and_their_encoders(
    browser: Browser,
    tmp_path: Path,
    ingest: NginxRtmp,
    platforms: NginxRtmp,
    publisher: Publisher,
    broker: Mosquitto,
) -> None:
    small = {"width": 160, "height": 120, "video_bitrate_kbps": 150}
    service = launch(tmp_path, ingest, platforms, broker, profiles={"small": small})
    try:
        async with httpx.AsyncClient(base_url=service.url) as client:
            body = {"id": "ig", "url": f"rtmp://127.0.0.1:{platforms.rtmp_port}/dest",
                    "key": f"ig-{CANARY_KEY}", "profile": "small"}  # fmt: skip
            assert (await client.post("/api/streams", json=body)).status_code == 201
        page = await browser.new_page(**PHONE)  # type: ignore[arg-type]
        await page.goto(service.url)
        card = page.locator('[data-testid="card"][data-stream="ig"]')
        await expect(card.get_by_test_id("profile")).to_have_text("profile small")
        await expect(page.get_by_test_id("profiles")).to_contain_text(
            "profile small: idle", timeout=15_000
        )
        await card.get_by_test_id("toggle").tap()
        await expect(card.get_by_test_id("status")).to_have_text("live", timeout=30_000)
        await expect(page.get_by_test_id("profiles")).to_contain_text(
            "profile small: 1 on", timeout=15_000
        )
        await shot(page, "web-phone-profile")
    finally:
        service.stop()
    assert CANARY_KEY not in (tmp_path / "service.log").read_text()
