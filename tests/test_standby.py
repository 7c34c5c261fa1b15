"""The standby picture against the real lab: nginx-rtmp ingest and platforms, an
ffmpeg publisher standing in for OBS, real relays, and a viewer at the platform
that decodes every frame."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

import httpx
import pytest

from mqttrelay import app
from mqttrelay.app import Service
from mqttrelay.config import Config
from mqttrelay.control.router import ChangeEvent, Router
from mqttrelay.ffmpeg import StreamShape, loop_argv
from mqttrelay.hub.standby import FONT, loop_from_flv
from mqttrelay.ingest.nginx import tap

from .kit import SHAPES as SHAPES
from .kit import (
    BuiltinIngest,
    Collector,
    Ingest,
    _async,
    both_ingests,
    collector,
    ingest_publisher,
    make_config,
    running_bridge,
    switch_on,
    wait_ingest_live,
    wait_publishing,
    wait_status,
)
from .kit import is_red as is_red
from .kit import publisher_client as publisher_client
from .kit import red_png as red_png
from .kit import standby_config as standby_config
from .kit import wait_loop_ready as wait_loop_ready
from .support import (
    Mosquitto,
    NginxRtmp,
    Publisher,
    SeenFrame,
    Viewer,
    eventually,
    free_port,
    parse_showinfo,
    require_tool,
    stat_streams,
    wait_port,
)

pytestmark = pytest.mark.integration


def statuses(router: Router, stream_id: str) -> list[str]:
    """Every status the stream goes through from now on, repeats folded."""
    seen: list[str] = []

    def note(event: ChangeEvent) -> None:
        if event.stream_id == stream_id:
            status = router.stream_state(stream_id).status
            if not seen or seen[-1] != status:
                seen.append(status)

    router.add_listener(note)
    return seen


def frames_per_second(frames: list[SeenFrame]) -> float:
    deltas = sorted(b.pts - a.pts for a, b in itertools.pairwise(frames))
    return 1 / deltas[len(deltas) // 2]


async def outage_through_standby(
    ingest: Ingest,
    platforms: NginxRtmp,
    router: Router,
    key: str,
    publisher: Publisher,
    shape: dict[str, Any],
    outage_s: float,
) -> tuple[Viewer, float, float]:
    """Stop OBS for outage_s while a viewer watches; (viewer, stopped at, back at)."""
    viewer = Viewer(platforms.url(key))
    await viewer.start()
    try:
        await eventually(lambda: _async(len(viewer.video()) > 10), 30, "the viewer to see OBS")
        connection = await publisher_client(platforms, key)
        stopped = time.monotonic()
        publisher.stop()
        await wait_status(router, "youtube", "standby", deadline_s=15)
        await asyncio.sleep(outage_s)
        assert router.stream_state("youtube").status == "standby"
        assert await publisher_client(platforms, key) == connection
        back = time.monotonic()
        publisher.start()
        await wait_status(router, "youtube", "live", deadline_s=30)
        await eventually(
            lambda: _async(any(not is_red(f) for f in viewer.video(back))),
            30,
            "OBS's picture at the platform again",
        )
        await asyncio.sleep(1)
        assert await publisher_client(platforms, key) == connection  # one connection throughout
    finally:
        await viewer.stop()
    return viewer, stopped, back


def check_what_the_platform_saw(
    viewer: Viewer, stopped: float, back: float, shape: dict[str, Any]
) -> None:
    video = viewer.video()
    for frames in (video, viewer.audio()):
        times = [f.pts for f in frames]
        assert times == sorted(times), "timestamps at the platform went backwards"
    during = [f for f in video if stopped <= f.wall <= back]
    red = [f for f in during if is_red(f)]
    means = sorted({f.mean for f in during})[:20]
    assert len(red) > 2 * shape["rate"], f"{len(red)} standby frames of {len(during)}: {means}"
    assert {f.size for f in red} == {shape["size"]}
    assert abs(frames_per_second(red) - shape["rate"]) < 1
    assert not any(is_red(f) for f in video if f.wall < stopped)
    audio = [f for f in viewer.audio() if stopped + 3 <= f.wall <= back]
    assert audio, "no audio during the standby"
    assert {(f.rate, f.channels) for f in audio} == {(shape["sample_rate"], shape["channels"])}
    last_red = max(i for i, f in enumerate(video) if is_red(f))
    after = video[last_red + 1 :]
    assert after and after[0].key, "OBS's first frame after the standby is not a keyframe"
    assert not any(is_red(f) for f in after)


@pytest.mark.slow
@both_ingests()
@pytest.mark.parametrize("shape", SHAPES, ids=["320x180-30-stereo", "640x360-25-mono"])
async def test_standby_picture_fills_an_obs_outage_without_hooks(
    shape: dict[str, Any],
    tmp_path: Path,
    ingest: Ingest,
    platforms: NginxRtmp,
    services: Callable[[Config], Service],
) -> None:
    publisher = ingest_publisher(ingest, gop_frames=2 * shape["rate"], **shape)
    try:
        base = make_config(tmp_path, ingest, platforms, ["youtube"], hold_s=2)
        config = standby_config(base, red_png(tmp_path))
        service = services(config)
        router = service.router
        await service.start()
        publisher.start()  # after the service: the built-in ingest is the service
        key = await switch_on(router, config, platforms, "youtube")
        await wait_status(router, "youtube", "live")
        await wait_loop_ready(service)
        seen = statuses(router, "youtube")
        viewer, stopped, back = await outage_through_standby(
            ingest,
            platforms,
            router,
            key,
            publisher,
            shape,
            outage_s=5,  # > hold_s
        )
        assert seen in (["live", "standby", "live"], ["standby", "live"]), seen  # never holding
        assert router.ingest_state().standby is False
        check_what_the_platform_saw(viewer, stopped, back, shape)
    finally:
        publisher.stop()


@pytest.mark.slow
@both_ingests()
async def test_standby_ends_after_max_s_and_relays_stop_as_after_hold_s(
    tmp_path: Path,
    ingest: Ingest,
    platforms: NginxRtmp,
    publisher: Publisher,
    services: Callable[[Config], Service],
) -> None:
    base = make_config(tmp_path, ingest, platforms, ["youtube"], hold_s=2)
    config = standby_config(base, red_png(tmp_path), max_s=4)
    service = services(config)
    router = service.router
    await service.start()
    key = await switch_on(router, config, platforms, "youtube")
    await wait_status(router, "youtube", "live")
    await wait_loop_ready(service)
    publisher.stop()
    await wait_status(router, "youtube", "standby", deadline_s=15)
    assert router.ingest_state().standby is True
    started = time.monotonic()
    await wait_status(router, "youtube", "waiting", deadline_s=30)
    assert 3 <= time.monotonic() - started <= 15
    assert router.ingest_state().standby is False

    async def gone() -> bool:
        return key not in await stat_streams(platforms)

    await eventually(gone, 20, "the platform connection to end")
    publisher.start()  # and it starts again by itself when OBS is back
    await wait_status(router, "youtube", "live", deadline_s=30)


@pytest.mark.slow
async def test_standby_with_the_managed_ingest_starts_at_the_on_publish_done_hook(
    tmp_path: Path,
    platforms: NginxRtmp,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    require_tool("nginx")
    monkeypatch.setattr(tap, "SILENCE_END_S", 120.0)  # only the hook can end the session
    shape = SHAPES[0]
    ingest_port = free_port()
    config = Config.model_validate(
        {
            "state_file": str(tmp_path / "state.json"),
            "ingest": {"url": f"rtmp://127.0.0.1:{ingest_port}/live/stream", "manage": True,
                       "hold_s": 2},
            "api": {"port": free_port()},
            "mqtt": {"enabled": False},
            "standby": {"image": str(red_png(tmp_path))},
            "streams": [{"id": "youtube", "name": "YouTube", "enabled": True,
                         "url": f"rtmp://127.0.0.1:{platforms.rtmp_port}/dest",
                         "key": "yt-key-1234"}],
        }
    )  # fmt: skip
    runner = asyncio.create_task(app.run(config))
    publisher = Publisher(config.ingest.url, gop_frames=2 * shape["rate"], **shape)
    try:
        await asyncio.to_thread(wait_port, config.api.port, 30)
        publisher.start()
        await wait_publishing(platforms, "yt-key-1234")
        viewer = Viewer(platforms.url("yt-key-1234"))
        await viewer.start()
        try:
            await eventually(lambda: _async(len(viewer.video()) > 10), 30, "OBS at the platform")
            await asyncio.sleep(3)  # the loop is made from the session's first seconds
            stopped = time.monotonic()
            publisher.stop()
            await eventually(
                lambda: _async(any(is_red(f) for f in viewer.video(stopped))),
                10,
                "the standby picture at the platform",
            )
            assert time.monotonic() - stopped < 5  # the hook, not 120 s of silence
            await asyncio.sleep(3)
            back = time.monotonic()
            publisher.start()
            await eventually(
                lambda: _async(any(not is_red(f) for f in viewer.video(back))),
                30,
                "OBS's picture again",
            )
            await asyncio.sleep(1)
        finally:
            await viewer.stop()
        check_what_the_platform_saw(viewer, stopped, back, shape)
    finally:
        publisher.stop()
        os.kill(os.getpid(), signal.SIGTERM)  # app.run's own stop signal
        await asyncio.wait_for(runner, 30)


@pytest.mark.slow
@both_ingests()
async def test_standby_shows_on_mqtt_home_assistant_api_and_metrics(
    tmp_path: Path,
    ingest: Ingest,
    platforms: NginxRtmp,
    publisher: Publisher,
    broker: Mosquitto,
    services: Callable[[Config], Service],
) -> None:
    base = make_config(tmp_path, ingest, platforms, ["youtube"], hold_s=2)
    config = Config.model_validate(
        standby_config(base, red_png(tmp_path)).model_dump()
        | {"mqtt": {"port": broker.port, "node_id": "studio"}}
    )
    service = services(config)
    router = service.router
    async with (
        collector(broker.port) as col,
        running_bridge(service, config) as _bridge,
    ):
        discovery = json.loads(
            await _retained(col, "homeassistant/binary_sensor/studio/standby/config")
        )
        assert discovery["state_topic"] == "streamrelay/host/studio/standby"
        status = json.loads(
            await _retained(col, "homeassistant/sensor/studio/youtube_status/config")
        )
        assert "standby" in status["options"]
        await col.wait("streamrelay/host/studio/standby", b"OFF")
        await wait_ingest_live(router)
        await router.set_enabled("youtube", True)
        await wait_status(router, "youtube", "live")
        await wait_loop_ready(service)
        publisher.stop()
        await col.wait("streamrelay/youtube/status", b"standby")
        await col.wait("streamrelay/host/studio/standby", b"ON")
        await col.wait("streamrelay/ingest/status", b"idle")  # OBS is away all the same
        app_ = service.api
        transport = httpx.ASGITransport(app=app_)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http:
            health = (await http.get("/api/health")).json()
            assert health["ingest"]["standby"] is True
            assert (await http.get("/api/streams/youtube")).json()["status"] == "standby"
            metrics = (await http.get("/metrics")).text
            assert 'mqttrelay_stream_standby{stream="youtube"} 1.0' in metrics
            assert "mqttrelay_ingest_standby 1.0" in metrics
        publisher.start()
        await col.wait("streamrelay/youtube/status", b"live", deadline_s=30)
        await col.wait("streamrelay/host/studio/standby", b"OFF")
        # "Be right back" from Home Assistant: a switch on this host
        brb = json.loads(await _retained(col, "homeassistant/switch/studio/brb/config"))
        assert brb["command_topic"] == "streamrelay/host/studio/brb/set"
        await col.wait("streamrelay/host/studio/brb", b"OFF")
        await col.publish("streamrelay/host/studio/brb/set", "ON")
        await col.wait("streamrelay/host/studio/brb", b"ON")
        await col.wait("streamrelay/youtube/status", b"standby")
        await col.wait("streamrelay/ingest/status", b"live")  # OBS still sends
        await col.publish("streamrelay/host/studio/brb/set", "OFF")
        await col.wait("streamrelay/host/studio/brb", b"OFF")
        await col.wait("streamrelay/youtube/status", b"live", deadline_s=30)

        if isinstance(ingest, BuiltinIngest):
            return  # the built-in ingest has no direct mode
        # the page switches to direct mode: no standby there, so its entities go
        # (and a "be right back" command is only warned about), then come back
        standby_topics = [
            "homeassistant/binary_sensor/studio/standby/config",
            "homeassistant/switch/studio/brb/config",
            "homeassistant/image/studio/ingest_picture/config",
        ]
        direct = config.ingest.model_copy(update={"mode": "direct"})
        await service.runtime.apply(config.model_copy(update={"ingest": direct}))
        for topic in standby_topics:
            await col.wait(topic, b"")
        await service.runtime.apply(config)
        for topic in standby_topics:
            await _retained_again(col, topic)
        await wait_status(router, "youtube", "live", 45)
        await wait_loop_ready(service)
        await col.publish("streamrelay/host/studio/brb/set", "ON")
        await col.wait("streamrelay/host/studio/brb", b"ON")


async def _retained(col: Collector, topic: str) -> bytes:
    async def seen() -> bytes | None:
        return col.last(topic)

    return await eventually(seen, 20, topic)


async def _retained_again(col: Collector, topic: str) -> None:
    async def back() -> bool:
        return bool(col.last(topic))

    await eventually(back, 20, f"{topic} again")


def test_the_built_in_card_is_made_here_with_its_text() -> None:
    """No image configured: a card with "We'll be right back", made by ffmpeg alone."""
    ffmpeg = require_tool("ffmpeg")
    assert Path(FONT).is_file(), "fonts-dejavu-core is missing (scripts/setup installs it)"
    shape = StreamShape(640, 360, Fraction(25), "yuv420p", 48000, 1)
    made = subprocess.run(loop_argv(ffmpeg, shape, None, FONT), capture_output=True, timeout=120)
    assert made.returncode == 0, made.stderr
    loop = loop_from_flv(shape, made.stdout)
    assert loop is not None and loop.period_ms == 2000
    assert sum(t.is_keyframe for t in loop.media) == 2  # one each second
    shown = subprocess.run(
        [ffmpeg, "-hide_banner", "-f", "flv", "-i", "pipe:0", "-frames:v", "1",
         "-vf", "showinfo", "-f", "null", "-"],
        input=made.stdout, capture_output=True, timeout=60,
    )  # fmt: skip
    frame = next(
        f
        for line in shown.stderr.decode().splitlines()
        if (f := parse_showinfo(line, 0.0)) is not None and f.video
    )
    assert frame.size == "640x360"
    stdev = re.search(r"stdev:\[([\d.]+)", shown.stderr.decode())
    assert stdev is not None and float(stdev.group(1)) > 5  # the text is on the card


@pytest.mark.slow
@both_ingests()
async def test_be_right_back_holds_the_standby_while_obs_keeps_sending(
    tmp_path: Path,
    ingest: Ingest,
    platforms: NginxRtmp,
    services: Callable[[Config], Service],
) -> None:
    shape = SHAPES[1]
    publisher = ingest_publisher(ingest, gop_frames=2 * shape["rate"], **shape)
    try:
        base = make_config(tmp_path, ingest, platforms, ["youtube"], hold_s=2)
        config = standby_config(base, red_png(tmp_path))
        service = services(config)
        router = service.router
        app_ = service.api
        http = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app_), base_url="http://127.0.0.1"
        )
        await service.start()
        publisher.start()  # after the service: the built-in ingest is the service
        await wait_ingest_live(router)
        key = config.streams[0].target.rsplit("/", 1)[1]
        early = await http.put("/api/standby", json={"held": True})
        assert early.status_code == 409 and "not made yet" in early.json()["detail"]
        bad = await http.put("/api/standby", json={"held": "maybe"})
        assert bad.status_code == 422
        await router.set_enabled("youtube", True)
        await wait_publishing(platforms, key)
        await wait_loop_ready(service)
        viewer = Viewer(platforms.url(key))
        await viewer.start()
        try:
            await eventually(lambda: _async(len(viewer.video()) > 10), 30, "OBS at the platform")
            connection = await publisher_client(platforms, key)
            stopped = time.monotonic()
            held = await http.put("/api/standby", json={"held": True})
            assert held.status_code == 200 and held.json()["standby_held"] is True
            await wait_status(router, "youtube", "standby", deadline_s=15)
            await eventually(
                lambda: _async(any(is_red(f) for f in viewer.video(stopped))), 10, "the card"
            )
            await asyncio.sleep(5)  # OBS keeps sending its keyframes: the card stays
            assert router.ingest_state().live and router.stream_state("youtube").status == "standby"
            back = time.monotonic()
            released = await http.put("/api/standby", json={"held": False})
            assert released.json()["standby_held"] is False
            await wait_status(router, "youtube", "live", deadline_s=15)
            await eventually(
                lambda: _async(any(not is_red(f) for f in viewer.video(back))), 15, "OBS again"
            )
            await asyncio.sleep(1)
            assert await publisher_client(platforms, key) == connection
        finally:
            await viewer.stop()
            await http.aclose()
        check_what_the_platform_saw(viewer, stopped, back, shape)
    finally:
        publisher.stop()
