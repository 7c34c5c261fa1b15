"""End to end against real nginx-rtmp servers and real ffmpeg processes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from mqttrelay.app import Service
from mqttrelay.config import Config

from .kit import Ingest, make_config
from .kit import wait_gone as wait_gone
from .kit import wait_ingest_live as wait_ingest_live
from .kit import wait_publishing as wait_publishing
from .kit import wait_status as wait_status
from .support import NginxRtmp, Publisher, probe_codecs

pytestmark = pytest.mark.integration
# the built-in ingest has cached mode alone (relays read the hub)
MODES = [("cached", "nginx"), ("direct", "nginx"), ("cached", "builtin")]


@pytest.mark.parametrize(("mode", "ingest_kind"), MODES, ids=["-".join(m) for m in MODES])
async def test_switch_on_and_off_delivers_audio_and_video(
    mode: str,
    tmp_path: Path,
    ingest: Ingest,
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
