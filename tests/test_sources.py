"""Several feeds per host against the real lab: one nginx-rtmp ingest, two ffmpeg
publishers (a horizontal `main`, a vertical `vertical`), real relays and the
platforms' own stat page."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from mqttrelay.app import Service
from mqttrelay.config import Config
from mqttrelay.control.router import Router

from .conftest import CANARY_KEY
from .support import (
    NginxRtmp,
    Publisher,
    eventually,
    owned_processes,
    require_tool,
    stat_streams,
)
from .test_relay_e2e import wait_publishing, wait_status

pytestmark = pytest.mark.integration

WIDE: dict[str, Any] = {"size": "320x180", "rate": 25, "sample_rate": 44100, "channels": 2}
TALL: dict[str, Any] = {"size": "180x320", "rate": 25, "sample_rate": 44100, "channels": 2}


def sources_config(tmp_path: Path, ingest: NginxRtmp, platforms: NginxRtmp, **extra: Any) -> Config:
    """`wide` relays main, `tall` relays vertical."""
    return Config.model_validate(
        {
            "state_file": str(tmp_path / "state.json"),
            "ingest": {
                "url": ingest.url("stream"),
                "hold_s": 60,
                "sources": [{"id": "vertical", "url": ingest.url("vertical")}],
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
        | extra
    )


@pytest.fixture
def vertical(ingest: NginxRtmp) -> Iterator[Publisher]:
    pub = Publisher(ingest.url("vertical"), **TALL)
    pub.start()
    yield pub
    pub.stop()


@pytest.fixture
def wide(ingest: NginxRtmp) -> Iterator[Publisher]:
    pub = Publisher(ingest.url("stream"), **WIDE)
    pub.start()
    yield pub
    pub.stop()


async def video_size(url: str) -> str:
    """What a player at the platform reads: WxH of the first video stream."""
    proc = await asyncio.create_subprocess_exec(
        require_tool("ffprobe"), "-v", "error", "-rw_timeout", "15000000",
        "-select_streams", "v:0", "-show_entries", "stream=width,height",
        "-of", "csv=p=0:s=x", url,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), 30)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        return ""
    return out.decode().strip()


async def publisher_client(platforms: NginxRtmp, key: str) -> str | None:
    stream = (await stat_streams(platforms)).get(key)
    return stream.publisher_id if stream else None


async def wait_source_live(router: Router, source_id: str, live: bool = True) -> None:
    async def check() -> bool:
        return router.ingest_state(source_id).live == live

    await eventually(check, 30, f"source {source_id} live={live}")


async def switch_on_s(router: Router, platforms: NginxRtmp, stream_id: str, key: str) -> float:
    """From the command to the platform publishing audio and video."""
    started = time.monotonic()
    await router.set_enabled(stream_id, True)
    await wait_publishing(platforms, key, deadline_s=30)
    return time.monotonic() - started


async def test_two_sources_each_destination_gets_its_own_feed(
    tmp_path: Path,
    ingest: NginxRtmp,
    platforms: NginxRtmp,
    wide: Publisher,
    vertical: Publisher,
    managers: Callable[[Config], Service],
) -> None:
    config = sources_config(tmp_path, ingest, platforms)
    service = managers(config)
    router = service.router
    await service.start()
    assert set(service.hubs) == {"main", "vertical"}
    await wait_source_live(router, "main")
    await wait_source_live(router, "vertical")
    await asyncio.sleep(2.5)  # past a keyframe group: switch-on comes from the cache
    wide_key, tall_key = f"wide-{CANARY_KEY}", f"tall-{CANARY_KEY}"

    times = {
        "wide": await switch_on_s(router, platforms, "wide", wide_key),
        "tall": await switch_on_s(router, platforms, "tall", tall_key),
    }
    print("switch-on (command to audio and video at the platform, stat page polled):", times)
    # from the cache: well under the publishers' 2 s keyframe interval
    assert all(t < 1.5 for t in times.values()), times
    await wait_status(router, "wide", "live")
    await wait_status(router, "tall", "live")
    assert await video_size(platforms.url(tall_key)) == "180x320"
    assert await video_size(platforms.url(wide_key)) == "320x180"
    owned = [" ".join(p.cmdline()) for p in owned_processes(config.state_file)]
    assert not any("libx264" in cmd or ("-c:v" in cmd and "copy" not in cmd) for cmd in owned)
    assert not any(encoder.state().running for encoder in service.encoders.values())
    assert router.stream_state("tall").source == "vertical"
    assert [s.id for s in router.sources()] == ["main", "vertical"]
    assert router.source_state("vertical").ingest.width == 180
    assert router.source_state("vertical").ingest.height == 320

    wide_before = router.stream_state("wide")
    wide_client = await publisher_client(platforms, wide_key)
    tall_client = await publisher_client(platforms, tall_key)
    vertical.stop()
    await wait_status(router, "tall", "holding", deadline_s=15)
    await wait_source_live(router, "vertical", live=False)
    for _ in range(10):  # 5 s: main's destination is untouched throughout
        await asyncio.sleep(0.5)
        now = router.stream_state("wide")
        assert now.status == "live"
        assert now.pid == wide_before.pid
        assert now.restarts == wide_before.restarts
        assert router.ingest_state("main").live
        assert router.stream_state("tall").status == "holding"
    assert router.stream_state("wide").bitrate_kbps > 100
    assert await publisher_client(platforms, wide_key) == wide_client
    assert await publisher_client(platforms, tall_key) == tall_client  # held open

    vertical.start()
    await wait_status(router, "tall", "live", deadline_s=30)
    assert await publisher_client(platforms, tall_key) == tall_client
    assert router.stream_state("wide").pid == wide_before.pid
