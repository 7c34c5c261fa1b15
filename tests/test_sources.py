"""Several feeds per host against the real lab: one nginx-rtmp ingest, two ffmpeg
publishers (a horizontal `main`, a vertical `vertical`), real relays and the
platforms' own stat page."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from mqttrelay import app
from mqttrelay.app import Service
from mqttrelay.config import Config, load_config
from mqttrelay.control.router import Router
from mqttrelay.ingest.nginx import tap

from .conftest import CANARY_KEY
from .support import (
    Mosquitto,
    NginxRtmp,
    Publisher,
    Viewer,
    eventually,
    owned_processes,
    require_tool,
    stat_streams,
    wait_port,
)
from .test_destinations_live import jpeg_size, lab_service
from .test_ingest_integration import PUBLISH_KEY, ingest_config
from .test_mqtt import collector
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


@pytest.mark.slow
async def test_two_sources_each_destination_gets_its_own_feed(
    tmp_path: Path,
    ingest: NginxRtmp,
    platforms: NginxRtmp,
    wide: Publisher,
    vertical: Publisher,
    services: Callable[[Config], Service],
) -> None:
    config = sources_config(tmp_path, ingest, platforms)
    service = services(config)
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


async def test_sources_over_the_api_and_mqtt_and_moving_a_live_destination(
    tmp_path: Path,
    ingest: NginxRtmp,
    platforms: NginxRtmp,
    wide: Publisher,
    vertical: Publisher,
    broker: Mosquitto,
    services: Callable[[Config], Service],
) -> None:
    path = tmp_path / "config.yaml"
    raw = sources_config(tmp_path, ingest, platforms).model_dump(mode="json", exclude_defaults=True)
    raw |= {"mqtt": {"port": broker.port, "node_id": "studio"}, "state_file": "state.json"}
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    async with collector(broker.port) as seen, lab_service(path, services) as (client, svc, _):
        router = svc.router
        await wait_source_live(router, "main")
        await wait_source_live(router, "vertical")

        r = await client.get("/api/sources")
        assert r.status_code == 200
        sources = {s["id"]: s for s in r.json()}
        assert list(sources) == ["main", "vertical"]
        assert sources["vertical"]["live"] and sources["vertical"]["name"] == "vertical"
        assert (sources["vertical"]["width"], sources["vertical"]["height"]) == (180, 320)
        assert (sources["main"]["width"], sources["main"]["height"]) == (320, 180)
        assert sources["vertical"]["streams"] == ["tall"] and sources["main"]["streams"] == ["wide"]
        assert (await client.get("/api/sources/nope")).status_code == 404
        r = await client.get("/api/sources/vertical/snapshot")
        assert r.status_code == 200 and jpeg_size(r.content) == (180, 320)
        assert (await client.get("/api/streams/tall")).json()["source"] == "vertical"

        # a new destination on a source; an unknown source is refused, naming it
        body = {"id": "shorts", "url": f"rtmp://127.0.0.1:{platforms.rtmp_port}/dest",
                "key": f"sh-{CANARY_KEY}", "source": "vertical"}  # fmt: skip
        r = await client.post("/api/streams", json=body)
        assert r.status_code == 201 and r.json()["source"] == "vertical", r.text
        r = await client.patch("/api/streams/shorts", json={"source": "nope"})
        assert r.status_code == 422 and "unknown source 'nope'" in r.text

        # a live destination moved to another source: one new connection, its picture
        await router.set_enabled("wide", True)
        wide_key = f"wide-{CANARY_KEY}"
        await wait_publishing(platforms, wide_key)
        await wait_status(router, "wide", "live")
        before = await publisher_client(platforms, wide_key)
        r = await client.patch("/api/streams/wide", json={"source": "vertical"})
        assert r.status_code == 200 and r.json()["source"] == "vertical", r.text

        async def moved() -> bool:
            now = await publisher_client(platforms, wide_key)
            return now is not None and now != before

        await eventually(moved, 30, "wide to reconnect on the vertical source")
        await wait_status(router, "wide", "live")
        assert await video_size(platforms.url(wide_key)) == "180x320"
        assert load_config(path).stream("wide").source == "vertical"  # type: ignore[union-attr]
        again = await publisher_client(platforms, wide_key)
        await asyncio.sleep(3)
        assert await publisher_client(platforms, wide_key) == again  # once

        # MQTT and Home Assistant: the vertical source's own topics and entities
        info_topic = "streamrelay/host/studio/source/vertical/info"
        await seen.wait("streamrelay/host/studio/source/vertical/status", b"live")
        info = json.loads(seen.last(info_topic) or b"{}")
        assert info["resolution"] == "180x320"
        assert (
            json.loads(seen.last("streamrelay/host/studio/ingest/info") or b"{}")["resolution"]
            == "320x180"
        )
        assert seen.last("streamrelay/host/studio/ingest/status") == b"live"
        topics = {s.topic for s in seen.seen}
        for entity in ("binary_sensor/studio/source_vertical_live",
                       "sensor/studio/source_vertical_resolution",
                       "image/studio/source_vertical_picture"):  # fmt: skip
            assert f"homeassistant/{entity}/config" in topics

        async def picture() -> bool:
            payload = seen.last("streamrelay/host/studio/source/vertical/picture")
            return bool(payload) and payload.startswith(b"\xff\xd8")  # type: ignore[union-attr]

        await eventually(picture, 30, "a JPEG on the vertical source's picture topic")

        # the publish hooks name the source: only that one goes idle
        r = await client.post("/api/hooks/on_publish_done", content=b"name=vertical&addr=x")
        assert r.status_code == 200
        await seen.wait("streamrelay/host/studio/source/vertical/status", b"idle")
        assert router.ingest_state("main").live
        assert seen.last("streamrelay/host/studio/ingest/status") == b"live"
        for item in seen.seen:
            assert CANARY_KEY.encode() not in item.payload, item.topic


async def test_a_backup_of_another_shape_is_refused_with_one_line(
    tmp_path: Path,
    ingest: NginxRtmp,
    platforms: NginxRtmp,
    wide: Publisher,
    vertical: Publisher,
    services: Callable[[Config], Service],
    caplog: pytest.LogCaptureFixture,
) -> None:
    config = sources_config(tmp_path, ingest, platforms)
    ingest_cfg = config.ingest.model_copy(update={"backup": "vertical"})
    service = services(config.model_copy(update={"ingest": ingest_cfg}))
    router = service.router
    await service.start()
    await wait_source_live(router, "main")
    await wait_source_live(router, "vertical")
    await router.set_enabled("wide", True)
    await wait_publishing(platforms, f"wide-{CANARY_KEY}")
    await wait_status(router, "wide", "live")
    wide.stop()
    await wait_status(router, "wide", "holding", deadline_s=15)
    problem = (
        "the backup is 180x320, 25 fps, audio 44100 Hz 2 ch, the primary was 320x180, 25 fps, "
        "audio 44100 Hz 2 ch: a backup must have the same size, frame rate and audio layout"
    )
    refused = [r.getMessage() for r in caplog.records if "cannot stand in" in r.getMessage()]
    # said once, as soon as both feeds were known: before it was needed
    assert refused == [f"main's backup vertical cannot stand in: {problem}"]
    assert router.source_state("main").backup_problem == problem
    assert not router.source_state("main").on_backup
    assert router.source_state("main").backup == "vertical"


@pytest.mark.slow
async def test_direct_mode_pulls_each_destinations_own_source(
    tmp_path: Path,
    ingest: NginxRtmp,
    platforms: NginxRtmp,
    wide: Publisher,
    vertical: Publisher,
    services: Callable[[Config], Service],
) -> None:
    config = sources_config(tmp_path, ingest, platforms)
    direct = config.ingest.model_copy(update={"mode": "direct", "stat_url": ingest.stat_url})
    service = services(config.model_copy(update={"ingest": direct}))
    router = service.router
    await service.start()
    assert service.hubs == {}
    await wait_source_live(router, "vertical")
    await router.set_enabled("tall", True)
    await router.set_enabled("wide", True)
    await wait_publishing(platforms, f"tall-{CANARY_KEY}")
    await wait_publishing(platforms, f"wide-{CANARY_KEY}")
    assert await video_size(platforms.url(f"tall-{CANARY_KEY}")) == "180x320"
    assert await video_size(platforms.url(f"wide-{CANARY_KEY}")) == "320x180"
    vertical.stop()
    await wait_source_live(router, "vertical", live=False)  # from the stat page
    assert router.ingest_state("main").live


@pytest.mark.slow
async def test_the_vertical_source_gets_a_vertical_standby_card(
    tmp_path: Path,
    ingest: NginxRtmp,
    platforms: NginxRtmp,
    wide: Publisher,
    vertical: Publisher,
    services: Callable[[Config], Service],
) -> None:
    service = services(sources_config(tmp_path, ingest, platforms, standby={}))
    router = service.router
    await service.start()

    async def loops_ready() -> bool:
        loops = [hub._loops.current if hub._loops else None for hub in service.hubs.values()]
        return all(loop is not None for loop in loops)

    await eventually(loops_ready, 60, "a standby loop for each source")
    shapes = {i: h._loops.current.shape for i, h in service.hubs.items()}  # type: ignore[union-attr]
    assert (shapes["vertical"].width, shapes["vertical"].height) == (180, 320)
    assert (shapes["main"].width, shapes["main"].height) == (320, 180)
    tall_key = f"tall-{CANARY_KEY}"
    await router.set_enabled("tall", True)
    await router.set_enabled("wide", True)
    await wait_publishing(platforms, tall_key)
    await wait_status(router, "wide", "live")
    wide_pid = router.stream_state("wide").pid
    viewer = Viewer(platforms.url(tall_key))
    await viewer.start()
    try:
        await eventually(lambda: _true(len(viewer.video()) > 10), 30, "the viewer to see it")
        client = await publisher_client(platforms, tall_key)
        vertical.stop()
        await wait_status(router, "tall", "standby", deadline_s=15)
        since = time.monotonic()
        await asyncio.sleep(5)
        card = viewer.video(since)
        assert len(card) > 25 and {f.size for f in card} == {"180x320"}
        assert await publisher_client(platforms, tall_key) == client
        assert router.stream_state("wide").status == "live"
        assert router.stream_state("wide").pid == wide_pid
    finally:
        await viewer.stop()


async def _true(value: bool) -> bool:
    return value


async def test_the_managed_ingest_takes_each_source_with_the_publish_key(
    tmp_path: Path,
    platforms: NginxRtmp,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    require_tool("ffmpeg")
    monkeypatch.setattr(tap, "TAP_RETRY_S", 120.0)  # only the hooks start the taps in time
    monkeypatch.setattr(tap, "SILENCE_END_S", 120.0)
    base = ingest_config(tmp_path, platforms, manage=True, publish_key=PUBLISH_KEY)
    tall_url = base.ingest.url.rsplit("/", 1)[0] + "/vertical"
    ingest_section = base.ingest.model_dump() | {"sources": [{"id": "vertical", "url": tall_url}]}
    config = Config.model_validate(base.model_dump() | {"ingest": ingest_section})
    runner = asyncio.create_task(app.run(config))
    try:
        await asyncio.to_thread(wait_port, config.api.port, 30)

        async def source(source_id: str) -> dict[str, Any]:
            async with httpx.AsyncClient() as client:
                url = f"http://127.0.0.1:{config.api.port}/api/sources/{source_id}"
                return dict((await client.get(url)).json())

        wrong = Publisher(f"{tall_url}?key=wrong", **TALL)
        wrong.start()
        assert wrong.proc is not None
        assert await asyncio.to_thread(wrong.proc.wait, 30) != 0  # refused by on_publish
        right = Publisher(f"{tall_url}?key={PUBLISH_KEY}", **TALL)
        right.start()
        try:

            async def live() -> bool:
                return bool((await source("vertical"))["live"])

            await eventually(live, 30, "the vertical source live after its on_publish")
            assert (await source("vertical"))["height"] == 320
            assert not (await source("main"))["live"]
        finally:
            right.stop()

        async def idle() -> bool:
            return not (await source("vertical"))["live"]

        await eventually(idle, 30, "the vertical source idle after its on_publish_done")
        assert PUBLISH_KEY not in caplog.text
    finally:
        os.kill(os.getpid(), signal.SIGTERM)  # app.run's own stop signal
        await asyncio.wait_for(runner, 30)
