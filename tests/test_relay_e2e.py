"""End to end against real nginx-rtmp servers and real ffmpeg processes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from mqttrelay.app import Service
from mqttrelay.config import Config
from mqttrelay.control.router import Router

from .conftest import make_config
from .support import NginxRtmp, Publisher, eventually, probe_codecs, stat_streams

pytestmark = pytest.mark.integration
MODES = ["cached", "direct"]


async def wait_ingest_live(router: Router) -> None:
    async def live() -> bool:
        return router.ingest_state().live

    await eventually(live, 30, "the ingest to be live")


async def wait_status(router: Router, stream_id: str, status: str, deadline_s: float = 30) -> None:
    async def check() -> bool:
        return router.stream_state(stream_id).status == status

    await eventually(check, deadline_s, f"{stream_id} to be {status}")


async def wait_publishing(platforms: NginxRtmp, key: str, deadline_s: float = 30) -> None:
    async def check() -> bool:
        stream = (await stat_streams(platforms)).get(key)
        return bool(stream and stream.publishing and stream.video_codec and stream.audio_codec)

    await eventually(check, deadline_s, f"{key} to publish audio and video")


async def wait_gone(platforms: NginxRtmp, key: str, deadline_s: float = 15) -> None:
    async def check() -> bool:
        stream = (await stat_streams(platforms)).get(key)
        return stream is None or not stream.publishing

    await eventually(check, deadline_s, f"{key} to stop publishing")


@pytest.mark.parametrize("mode", MODES)
async def test_switch_on_and_off_delivers_audio_and_video(
    mode: str,
    tmp_path: Path,
    ingest: NginxRtmp,
    platforms: NginxRtmp,
    publisher: Publisher,
    services: Callable[[Config], Service],
) -> None:
    config = make_config(tmp_path, ingest, platforms, ["tiktok"], mode=mode)
    service = services(config)
    router = service.router
    await service.start()
    if mode == "cached":
        await wait_ingest_live(router)
    key = config.streams[0].target.rsplit("/", 1)[1]

    state = await router.set_enabled("tiktok", True)
    assert state.enabled
    await wait_publishing(platforms, key)
    assert await probe_codecs(platforms.url(key)) == {"audio", "video"}
    await wait_status(router, "tiktok", "live")
    assert router.stream_state("tiktok").pid is not None

    await router.set_enabled("tiktok", False)
    await wait_gone(platforms, key)
    await wait_status(router, "tiktok", "off")
    assert router.stream_state("tiktok").pid is None
    assert publisher.running
