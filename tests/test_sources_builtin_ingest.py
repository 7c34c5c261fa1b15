"""Several feeds through the built-in ingest (ingest.listen): two ffmpeg publishers
send to mqttrelay itself, each on its source's stream name, and a destination on
each source gets its own picture size at a real platform (nginx-rtmp)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from mqttrelay.app import Service
from mqttrelay.config import Config
from mqttrelay.ffmpeg.argv import build_test_source_argv

from .conftest import CANARY_KEY
from .support import NginxRtmp, eventually, free_port, require_tool
from .test_rtmp_ingest import KEY, Pub, wait_platform
from .test_sources import TALL, WIDE, video_size, wait_source_live

pytestmark = pytest.mark.integration


def builtin_sources_config(tmp_path: Path, platforms: NginxRtmp) -> Config:
    """`wide` relays main (live/stream), `tall` relays vertical (live/vertical)."""
    port = free_port()
    return Config.model_validate(
        {
            "state_file": str(tmp_path / "state.json"),
            "ingest": {
                "url": f"rtmp://127.0.0.1:{port}/live/stream",
                "listen": f"127.0.0.1:{port}",
                "publish_key": KEY,
                "sources": [{"id": "vertical", "url": f"rtmp://127.0.0.1:{port}/live/vertical"}],
            },
            "streams": [
                {
                    "id": stream_id,
                    "url": f"rtmp://127.0.0.1:{platforms.rtmp_port}/dest",
                    "key": f"{stream_id}-{CANARY_KEY}",
                    "source": source,
                }
                for stream_id, source in (("wide", "main"), ("tall", "vertical"))
            ],
        }
    )


@pytest.mark.slow
async def test_builtin_ingest_routes_each_stream_name_to_its_source(
    tmp_path: Path, platforms: NginxRtmp, services: Callable[[Config], Service]
) -> None:
    config = builtin_sources_config(tmp_path, platforms)
    service = services(config)
    await service.start()
    assert set(service.hubs) == {"main", "vertical"}
    router = service.router
    ffmpeg = require_tool("ffmpeg")
    urls = config.ingest.source_urls
    wide = await Pub.start(build_test_source_argv(ffmpeg, f"{urls['main']}?key={KEY}", **WIDE))
    tall = await Pub.start(build_test_source_argv(ffmpeg, f"{urls['vertical']}?key={KEY}", **TALL))
    try:
        await wait_source_live(router, "main")
        await wait_source_live(router, "vertical")
        wide_key, tall_key = f"wide-{CANARY_KEY}", f"tall-{CANARY_KEY}"
        await router.set_enabled("wide", True)
        await router.set_enabled("tall", True)
        await wait_platform(platforms, wide_key)
        await wait_platform(platforms, tall_key)
        assert await video_size(platforms.url(wide_key)) == "320x180"
        assert await video_size(platforms.url(tall_key)) == "180x320"
        assert router.source_state("vertical").ingest.width == 180
        assert router.source_state("main").ingest.width == 320

        # the vertical publisher leaves: its source is idle at once, main goes on
        wide_before = router.stream_state("wide")
        await tall.kill()

        async def vertical_idle() -> bool:
            return not router.ingest_state("vertical").live

        await eventually(vertical_idle, 5, "the vertical source to be idle")
        assert router.ingest_state("main").live
        wide_now = router.stream_state("wide")
        assert wide_now.status in ("live", "congested")  # relaying; the loaded lab may lag
        assert (wide_now.pid, wide_now.restarts) == (wide_before.pid, wide_before.restarts)

        async def tall_not_live() -> bool:  # the relay hears of it in its own loop, a tick later
            return router.stream_state("tall").status != "live"

        await eventually(tall_not_live, 5, "the tall relay to leave live")
    finally:
        await tall.stop()
        await wide.stop()
