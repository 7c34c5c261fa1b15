"""The command router: idempotence, persistence, failure states."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from mqttrelay.app import Service, build
from mqttrelay.config import Config
from mqttrelay.control.router import ChangeEvent, UnknownStreamError

from .kit import (
    CANARY_KEY,
    Ingest,
    both_ingests,
    make_config,
    switch_on,
    wait_ingest_live,
    wait_publishing,
    wait_status,
)
from .support import NginxRtmp, Publisher, eventually, free_port, probe_codecs, start_nginx

pytestmark = pytest.mark.integration


@both_ingests()
async def test_commands_are_idempotent_and_persisted(
    tmp_path: Path,
    ingest: Ingest,
    platforms: NginxRtmp,
    publisher: Publisher,
    services: Callable[[Config], Service],
) -> None:
    config = make_config(tmp_path, ingest, platforms, ["youtube", "tiktok"])
    service = services(config)
    router = service.router
    events: list[ChangeEvent] = []
    router.add_listener(events.append)
    await service.start()
    await wait_ingest_live(router)

    with pytest.raises(UnknownStreamError, match="unknown stream 'nope'"):
        await router.set_enabled("nope", True)
    await router.set_enabled("youtube", True)
    await wait_status(router, "youtube", "live")
    pid = router.stream_state("youtube").pid
    await router.set_enabled("youtube", True)
    await router.toggle("tiktok")
    await wait_status(router, "tiktok", "live")
    assert router.stream_state("youtube").pid == pid
    assert (
        ChangeEvent("state", "youtube") in events
        and ChangeEvent("ingest", source_id="main") in events
    )

    saved = json.loads(config.state_file.read_text())
    assert saved["streams"] == {"youtube": True, "tiktok": True}
    await router.set_all(False)
    await wait_status(router, "youtube", "off")
    await wait_status(router, "tiktok", "off")
    assert json.loads(config.state_file.read_text())["streams"] == {
        "youtube": False,
        "tiktok": False,
    }
    assert CANARY_KEY not in config.state_file.read_text()


async def test_state_is_restored_and_corrupt_file_falls_back_to_config(
    tmp_path: Path,
    ingest: NginxRtmp,
    platforms: NginxRtmp,
    services: Callable[[Config], Service],
    caplog: pytest.LogCaptureFixture,
) -> None:
    config = make_config(tmp_path, ingest, platforms, ["youtube", "tiktok"])
    streams = [config.streams[0].model_copy(update={"enabled": True}), config.streams[1]]
    config = config.model_copy(update={"streams": streams})
    config.state_file.write_text('{"version": 1, "streams": {"youtube": false, "tiktok": true}}')
    first_service = services(config)
    first = first_service.router
    await first_service.start()
    assert [s.enabled for s in first.snapshot()] == [False, True]
    await first_service.stop()

    config.state_file.write_text("{ not json")
    second_service = services(config)
    second = second_service.router
    await second_service.start()
    assert [s.enabled for s in second.snapshot()] == [True, False]
    assert "not valid JSON" in caplog.text


async def test_unreachable_destination_keeps_retrying_and_reports_a_problem(
    tmp_path: Path,
    ingest: NginxRtmp,
    platforms: NginxRtmp,
    publisher: Publisher,
    caplog: pytest.LogCaptureFixture,
) -> None:
    config = make_config(tmp_path, ingest, platforms, ["tiktok"])
    dead = f"rtmp://127.0.0.1:{free_port()}/dest"  # nothing listens there
    config = config.model_copy(
        update={"streams": [config.streams[0].model_copy(update={"url": dead})]}
    )
    service = build(
        config, relay_overrides={"backoff_first_s": 0.1, "backoff_max_s": 0.3, "max_failures": 3}
    )
    router = service.router
    await service.start()
    try:
        await wait_ingest_live(router)
        await router.set_enabled("tiktok", True)

        async def reported() -> bool:
            return router.stream_state("tiktok").problem is not None

        await eventually(reported, 60, "a problem to be reported")
        state = router.stream_state("tiktok")
        assert state.restarts >= 3 and state.status in ("retrying", "starting")
        assert state.problem and "still trying" in state.problem and state.down_since
        assert state.last_error and "(connection refused)" in state.last_error
        assert state.error_kind == "refused" and state.error_detail is not None
        assert CANARY_KEY not in state.error_detail and "/dest/****" in state.error_detail

        async def tried_on() -> bool:
            return router.stream_state("tiktok").restarts >= 8

        await eventually(tried_on, 60, "it to go on trying past max_failures")
        assert router.stream_state("tiktok").status != "failed"
        assert "still trying" in caplog.text
    finally:
        await service.stop()
    assert CANARY_KEY not in caplog.text


@pytest.mark.parametrize("mode", ["cached", "direct"])
async def test_default_nginx_application_still_maps_audio_and_video(
    mode: str,
    tmp_path: Path,
    platforms: NginxRtmp,
    services: Callable[[Config], Service],
) -> None:
    """An ingest with nginx-rtmp's defaults (no wait_key, no wait_video), as users may have."""
    plain = start_nginx(tmp_path / "plain-ingest", "live", fast_start=False)
    pub = Publisher(plain.url("stream"))
    pub.start()
    try:
        config = make_config(tmp_path, plain, platforms, ["youtube"], mode=mode)
        service = services(config)
        router = service.router
        await service.start()
        key = await switch_on(router, config, platforms, "youtube")
        assert await probe_codecs(platforms.url(key)) == {"audio", "video"}
        await service.stop()
    finally:
        pub.stop()
        plain.stop()


@both_ingests()
async def test_reload_keeps_untouched_relays_running(
    tmp_path: Path,
    ingest: Ingest,
    platforms: NginxRtmp,
    publisher: Publisher,
    services: Callable[[Config], Service],
) -> None:
    config = make_config(tmp_path, ingest, platforms, ["youtube", "tiktok", "kick"])
    service = services(config)
    router = service.router
    await service.start()
    await wait_ingest_live(router)
    for stream_id in ("youtube", "tiktok", "kick"):
        await router.set_enabled(stream_id, True)
    for stream_id in ("youtube", "tiktok", "kick"):
        await wait_status(router, stream_id, "live")
    pids = {s.id: s.pid for s in router.snapshot()}

    youtube, tiktok, _kick = config.streams
    new_tiktok = tiktok.model_copy(update={"key": "tiktok-rotated-" + CANARY_KEY})
    added = youtube.model_copy(update={"id": "twitch", "key": "twitch-" + CANARY_KEY})
    result = await service.runtime.reload(
        config.model_copy(update={"streams": [youtube, new_tiktok, added]})
    )
    assert (result.added, result.removed, result.changed) == (["twitch"], ["kick"], ["tiktok"])
    assert router.stream_state("youtube").pid == pids["youtube"]  # untouched: same process
    assert router.stream_state("youtube").restarts == 0
    await wait_status(router, "tiktok", "live")
    assert router.stream_state("tiktok").pid != pids["tiktok"]  # new key: new process
    assert [s.id for s in router.snapshot()] == ["youtube", "tiktok", "twitch"]
    assert not router.stream_state("twitch").enabled  # new streams start as configured
    key = new_tiktok.target.rsplit("/", 1)[1]
    await wait_publishing(platforms, key)
