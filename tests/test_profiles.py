"""Output profiles against real ffmpeg and nginx-rtmp: one encoder per profile
in use, sizes and bitrates at the platform, copy destinations untouched by
profile destinations switching and by an encoder killed."""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from mqttrelay.app import Service
from mqttrelay.config import Config

from .kit import (
    CANARY_KEY,
    Ingest,
    _async,
    both_ingests,
    ingest_section,
    is_red,
    publisher_client,
    publishing,
    red_png,
    standby_config,
    wait_ingest_live,
    wait_loop_ready,
    wait_publishing,
    wait_status,
)
from .support import (
    NginxRtmp,
    Publisher,
    Viewer,
    eventually,
    owned_processes,
    stat_streams,
)

pytestmark = pytest.mark.integration

PROFILES: dict[str, dict[str, object]] = {
    # 320x180 in: 160x90 kept whole; 90x160 cut from the middle (9:16)
    "small": {"width": 160, "height": 90, "fit": "scale", "video_bitrate_kbps": 150,
              "audio_bitrate_kbps": 48},
    "vertical": {"width": 90, "height": 160, "fit": "crop", "video_bitrate_kbps": 200},
}  # fmt: skip
STREAMS = {"copy": None, "a": "small", "b": "small", "v": "vertical"}


@pytest.fixture
async def wide_publisher(ingest: Ingest) -> AsyncIterator[Publisher]:
    async with publishing(ingest, size="320x180") as pub:
        yield pub


def profile_config(tmp_path: Path, ingest: Ingest, platforms: NginxRtmp) -> Config:
    dest = f"rtmp://127.0.0.1:{platforms.rtmp_port}/dest"
    return Config.model_validate(
        {
            "state_file": str(tmp_path / "state.json"),
            "ingest": ingest_section(ingest),
            "mqtt": {"enabled": False},
            "profiles": PROFILES,
            "streams": [
                {"id": sid, "url": dest, "key": f"{sid}-{CANARY_KEY}", "profile": profile}
                for sid, profile in STREAMS.items()
            ],
        }
    )


def encoder_processes(state_file: Path) -> list[int]:
    return [p.pid for p in owned_processes(state_file) if "-force_key_frames" in p.cmdline()]


async def sizes_seen(platforms: NginxRtmp, key: str) -> set[str]:
    viewer = Viewer(platforms.url(key))
    await viewer.start()
    try:
        await eventually(lambda: _async(len(viewer.video()) >= 10), 30, f"{key} at the platform")
    finally:
        await viewer.stop()
    return {f.size for f in viewer.video()}


async def kbps_at_platform(platforms: NginxRtmp, key: str, seconds: float = 6.0) -> float:
    before = (await stat_streams(platforms))[key].bytes_in
    started = time.monotonic()
    await asyncio.sleep(seconds)
    after = (await stat_streams(platforms))[key].bytes_in
    return (after - before) * 8 / 1000 / (time.monotonic() - started)


@pytest.mark.slow
@both_ingests()
async def test_profiles_share_one_encoder_each_and_leave_copy_alone(
    tmp_path: Path,
    ingest: Ingest,
    platforms: NginxRtmp,
    wide_publisher: Publisher,
    services: Callable[[Config], Service],
) -> None:
    config = profile_config(tmp_path, ingest, platforms)
    service = services(config)
    router = service.router
    await service.start()
    await wait_ingest_live(router)
    for sid in STREAMS:
        await router.set_enabled(sid, True)
    for sid in STREAMS:
        await wait_publishing(platforms, f"{sid}-{CANARY_KEY}", 45)
        await wait_status(router, sid, "live", 45)

    assert await sizes_seen(platforms, f"copy-{CANARY_KEY}") == {"320x180"}
    assert await sizes_seen(platforms, f"a-{CANARY_KEY}") == {"160x90"}
    assert await sizes_seen(platforms, f"b-{CANARY_KEY}") == {"160x90"}
    assert await sizes_seen(platforms, f"v-{CANARY_KEY}") == {"90x160"}
    cap = 150 + 48  # the small profile's video and audio bitrates
    assert await kbps_at_platform(platforms, f"a-{CANARY_KEY}") <= 1.5 * cap

    # one encoder per profile in use, shared by its destinations
    assert len(encoder_processes(config.state_file)) == 2
    profiles = {p.profile: p for p in router.profiles()}
    assert profiles["small"].running and profiles["small"].destinations == 2
    assert profiles["vertical"].destinations == 1
    assert profiles["small"].speed is not None and profiles["small"].speed > 0.5

    # toggling a profile destination: the copy destination sees no gap, no reconnect
    copy_key = f"copy-{CANARY_KEY}"
    copy_pid = router.stream_state("copy").pid
    copy_client = await publisher_client(platforms, copy_key)
    viewer = Viewer(platforms.url(copy_key))
    await viewer.start()
    try:
        await eventually(lambda: _async(len(viewer.video()) > 10), 30, "the copy viewer")
        since = time.monotonic()
        await router.set_enabled("b", False)
        await wait_status(router, "b", "off", 20)
        started = time.monotonic()
        await router.set_enabled("b", True)
        await wait_status(router, "b", "live", 20)
        warm_s = time.monotonic() - started
        await asyncio.sleep(2)
        frames = viewer.video(since)
    finally:
        await viewer.stop()
    pts = [f.pts for f in frames]
    assert len(pts) > 50
    assert max(b - a for a, b in itertools.pairwise(pts)) <= 0.1
    assert router.stream_state("copy").pid == copy_pid
    assert await publisher_client(platforms, copy_key) == copy_client
    assert warm_s < 5  # measured properly in benchmarks/bench.py

    # the small profile's encoder killed: only its destinations blink
    small_pid = profiles["small"].pid
    assert small_pid is not None
    v_pid = router.stream_state("v").pid
    os.kill(small_pid, signal.SIGKILL)

    async def small_back() -> bool:
        state = {p.profile: p for p in router.profiles()}["small"]
        return state.running and state.pid != small_pid and state.restarts >= 1

    await eventually(small_back, 30, "the small profile's encoder to come back")
    for sid in ("a", "b"):
        await wait_status(router, sid, "live", 45)
        await wait_publishing(platforms, f"{sid}-{CANARY_KEY}", 45)
    assert router.stream_state("copy").pid == copy_pid
    assert router.stream_state("v").pid == v_pid
    assert await publisher_client(platforms, copy_key) == copy_client
    assert len(encoder_processes(config.state_file)) == 2

    # nobody on a profile: its encoder stops
    for sid in ("a", "b"):
        await router.set_enabled(sid, False)

    async def small_idle() -> bool:
        return not {p.profile: p for p in router.profiles()}["small"].running

    await eventually(small_idle, 20, "the unused encoder to stop")
    assert len(encoder_processes(config.state_file)) == 1


@pytest.mark.slow
@both_ingests()
async def test_profile_destinations_hold_through_an_obs_outage_on_the_standby_picture(
    tmp_path: Path,
    ingest: Ingest,
    platforms: NginxRtmp,
    wide_publisher: Publisher,
    services: Callable[[Config], Service],
) -> None:
    base = profile_config(tmp_path, ingest, platforms)
    config = standby_config(base, red_png(tmp_path))
    service = services(config)
    router = service.router
    await service.start()
    await wait_ingest_live(router)
    await router.set_enabled("v", True)
    key = f"v-{CANARY_KEY}"
    await wait_publishing(platforms, key, 45)
    await wait_status(router, "v", "live", 45)
    await wait_loop_ready(service)
    connection = await publisher_client(platforms, key)
    viewer = Viewer(platforms.url(key))
    await viewer.start()
    try:
        await eventually(lambda: _async(len(viewer.video()) > 10), 30, "the vertical viewer")
        stopped = time.monotonic()
        wide_publisher.stop()
        await wait_status(router, "v", "standby", 15)
        await eventually(
            lambda: _async(any(is_red(f) for f in viewer.video(stopped))), 15,
            "the standby card, re-encoded for the vertical profile",
        )  # fmt: skip
        assert {f.size for f in viewer.video(stopped)} == {"90x160"}
        wide_publisher.start()
        await wait_status(router, "v", "live", 30)
        back = time.monotonic()
        await eventually(
            lambda: _async(any(not is_red(f) for f in viewer.video(back))), 30,
            "OBS's picture again",
        )  # fmt: skip
    finally:
        await viewer.stop()
    assert await publisher_client(platforms, key) == connection  # one broadcast throughout
    assert router.stream_state("v").restarts == 0
