"""Faults against real processes: crashes, freezes, stuck destinations, ingest outages."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import stat
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import psutil
import pytest

from mqttrelay.app import Service
from mqttrelay.config import Config

from .kit import (
    CANARY_KEY,
    Ingest,
    both_ingests,
    key_of,
    make_config,
    switch_on,
    wait_gone,
    wait_ingest_live,
    wait_publishing,
    wait_status,
)
from .support import (
    NginxRtmp,
    Publisher,
    TlsFront,
    eventually,
    owned_processes,
    probe_codecs,
    require_tool,
    stat_streams,
)

pytestmark = pytest.mark.integration


async def publisher_id(platforms: NginxRtmp, key: str) -> str | None:
    stream = (await stat_streams(platforms)).get(key)
    return stream.publisher_id if stream and stream.publishing else None


async def bytes_in(platforms: NginxRtmp, key: str) -> int:
    stream = (await stat_streams(platforms)).get(key)
    return stream.bytes_in if stream else 0


async def wait_bytes_grow(platforms: NginxRtmp, key: str, deadline_s: float = 20) -> None:
    before = await bytes_in(platforms, key)

    async def grew() -> bool:
        return await bytes_in(platforms, key) > before + 10_000

    await eventually(grew, deadline_s, f"{key} to receive more data")


def assert_no_canary(text: str) -> None:
    assert CANARY_KEY not in text


@pytest.mark.parametrize("mode", ["cached", "direct"])
async def test_switching_one_destination_never_interrupts_another(
    mode: str,
    tmp_path: Path,
    ingest: NginxRtmp,
    platforms: NginxRtmp,
    publisher: Publisher,
    services: Callable[[Config], Service],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    config = make_config(tmp_path, ingest, platforms, ["youtube", "tiktok"], mode=mode)
    service = services(config)
    router = service.router
    await service.start()
    key = await switch_on(router, config, platforms, "youtube")
    steady = await publisher_id(platforms, key)
    ingest_before = (await stat_streams(ingest))["stream"].publisher_id
    pid = router.stream_state("youtube").pid

    for _ in range(10):
        await router.toggle("tiktok")
        await asyncio.sleep(0.3)
    assert not router.stream_state("tiktok").enabled  # ten toggles: back off
    await wait_status(router, "tiktok", "off")

    assert await publisher_id(platforms, key_of(config, "youtube")) == steady
    assert router.stream_state("youtube").pid == pid
    assert router.stream_state("youtube").restarts == 0
    await wait_bytes_grow(platforms, key_of(config, "youtube"))
    assert (await stat_streams(ingest))["stream"].publisher_id == ingest_before
    assert publisher.running
    assert_no_canary(caplog.text)
    assert_no_canary(repr(router.snapshot()))


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGSTOP])
async def test_killed_or_frozen_relay_is_replaced(
    sig: signal.Signals,
    tmp_path: Path,
    ingest: NginxRtmp,
    platforms: NginxRtmp,
    publisher: Publisher,
    services: Callable[[Config], Service],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    config = make_config(tmp_path, ingest, platforms, ["youtube", "tiktok"])
    service = services(config)
    router = service.router
    await service.start()
    await wait_ingest_live(router)
    await router.set_enabled("youtube", True)
    await router.set_enabled("tiktok", True)
    await wait_status(router, "youtube", "live")
    await wait_status(router, "tiktok", "live")
    other = await publisher_id(platforms, key_of(config, "youtube"))
    old_pid = router.stream_state("tiktok").pid
    assert old_pid is not None

    os.kill(old_pid, sig)

    async def replaced() -> bool:
        state = router.stream_state("tiktok")
        return state.status == "live" and state.pid not in (None, old_pid)

    await eventually(replaced, 60, "tiktok to be replaced and live again")
    state = router.stream_state("tiktok")
    assert state.restarts >= 1 and state.last_error
    assert not psutil.pid_exists(old_pid) or psutil.Process(old_pid).status() == "zombie"
    await wait_publishing(platforms, key_of(config, "tiktok"))
    assert await publisher_id(platforms, key_of(config, "youtube")) == other
    assert router.stream_state("youtube").restarts == 0
    assert_no_canary(caplog.text)
    assert_no_canary(repr(router.snapshot()))


def write_stubborn_ffmpeg(path: Path, real_ffmpeg: str) -> None:
    """Relays (reading pipe:0) ignore SIGTERM and stdin; the tap is the real ffmpeg."""
    path.write_text(
        f"""#!{sys.executable}
import os, signal, sys, time
if "pipe:0" not in sys.argv:
    os.execv({real_ffmpeg!r}, [{real_ffmpeg!r}] + sys.argv[1:])
signal.signal(signal.SIGTERM, signal.SIG_IGN)
sys.stdin.close()
while True:
    time.sleep(1)
"""
    )
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


@pytest.mark.slow
async def test_relay_ignoring_sigterm_is_killed_after_grace(
    tmp_path: Path,
    ingest: NginxRtmp,
    platforms: NginxRtmp,
    publisher: Publisher,
    services: Callable[[Config], Service],
) -> None:
    fake = tmp_path / "stubborn-ffmpeg"
    write_stubborn_ffmpeg(fake, require_tool("ffmpeg"))
    config = make_config(tmp_path, ingest, platforms, ["tiktok"])
    config = config.model_copy(
        update={"ffmpeg": config.ffmpeg.model_copy(update={"path": str(fake)})}
    )
    service = services(config)
    router = service.router
    await service.start()
    await wait_ingest_live(router)
    await router.set_enabled("tiktok", True)

    async def has_pid() -> int | None:
        return router.stream_state("tiktok").pid

    pid = await eventually(has_pid, 20, "the stubborn relay to start")
    await asyncio.sleep(0.5)  # let it install its SIGTERM handler
    await router.set_enabled("tiktok", False)
    await wait_status(router, "tiktok", "off", deadline_s=20)

    async def gone() -> bool:
        return not psutil.pid_exists(pid)

    await eventually(gone, 10, "the stubborn relay to be killed and reaped")


class FreezableProxy:
    """A TCP proxy to the platforms' server that can stop reading from its client."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.frozen = asyncio.Event()
        self.server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> None:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        self.server = await asyncio.start_server(self._handle, sock=sock)

    async def _pipe(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, freezes: bool
    ) -> None:
        with contextlib.suppress(ConnectionError, asyncio.CancelledError):
            while True:
                if freezes and self.frozen.is_set():
                    await asyncio.sleep(3600)
                data = await reader.read(4096)
                if not data:
                    break
                writer.write(data)
                await writer.drain()
        writer.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        await asyncio.gather(
            self._pipe(reader, up_writer, freezes=True),
            self._pipe(up_reader, writer, freezes=False),
        )

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()


@pytest.fixture
async def proxy(platforms: NginxRtmp) -> AsyncIterator[FreezableProxy]:
    p = FreezableProxy(platforms.rtmp_port)
    await p.start()
    yield p
    await p.close()


@pytest.mark.slow
async def test_destination_that_stops_reading_gets_its_relay_restarted(
    tmp_path: Path,
    ingest: NginxRtmp,
    platforms: NginxRtmp,
    publisher: Publisher,
    proxy: FreezableProxy,
    services: Callable[[Config], Service],
) -> None:
    config = make_config(tmp_path, ingest, platforms, ["youtube", "tiktok"])
    streams = [
        config.streams[0],
        config.streams[1].model_copy(update={"url": f"rtmp://127.0.0.1:{proxy.port}/dest"}),
    ]
    config = config.model_copy(update={"streams": streams})
    service = services(config)
    router = service.router
    await service.start()
    await wait_ingest_live(router)
    await router.set_enabled("youtube", True)
    await router.set_enabled("tiktok", True)
    await wait_status(router, "youtube", "live")
    await wait_status(router, "tiktok", "live")
    other = await publisher_id(platforms, key_of(config, "youtube"))
    old_pid = router.stream_state("tiktok").pid

    proxy.frozen.set()

    async def restarted() -> bool:
        state = router.stream_state("tiktok")
        return state.restarts >= 1 and state.pid != old_pid

    await eventually(restarted, 90, "the stuck destination's relay to be restarted")
    state = router.stream_state("tiktok")
    error = state.last_error or ""
    assert "fell behind" in error or state.error_kind == "stalled", error
    assert await publisher_id(platforms, key_of(config, "youtube")) == other
    assert router.stream_state("youtube").restarts == 0
    await wait_bytes_grow(platforms, key_of(config, "youtube"))


def tap_pids(config: Config) -> set[int]:
    """The tap: the one ffmpeg of ours that writes FLV to its stdout."""
    return {
        p.pid
        for p in owned_processes(Path(config.state_file))
        if p.cmdline()[-1] == "pipe:1" and config.ingest.url in p.cmdline()
    }


@pytest.mark.slow
@pytest.mark.parametrize(
    ("ingest", "ingest_kind"),
    [(True, "nginx"), (False, "nginx"), (True, "builtin")],
    indirect=["ingest"],
    ids=["idle_streams_on", "idle_streams_off", "builtin"],
)
async def test_short_ingest_outage_keeps_platform_connection(
    tmp_path: Path,
    ingest: Ingest,
    platforms: NginxRtmp,
    publisher: Publisher,
    services: Callable[[Config], Service],
) -> None:
    config = make_config(tmp_path, ingest, platforms, ["youtube"], hold_s=30)
    service = services(config)
    router = service.router
    await service.start()
    key = await switch_on(router, config, platforms, "youtube")
    await wait_status(router, "youtube", "live")
    connection = await publisher_id(platforms, key)
    pid = router.stream_state("youtube").pid
    taps = tap_pids(config)
    assert len(taps) == (1 if isinstance(ingest, NginxRtmp) else 0)  # the built-in: no tap

    publisher.stop()
    await wait_status(router, "youtube", "holding")
    assert router.ingest_state().live is False
    if isinstance(ingest, NginxRtmp) and ingest.idle_streams:

        async def tap_waits_at_ingest() -> bool:
            stream = (await stat_streams(ingest)).get("stream")
            return stream is not None and not stream.publishing and stream.players == 1

        # a fresh tap waits for OBS there, to read its very first keyframe
        await eventually(tap_waits_at_ingest, 20, "the tap to wait at the ingest")
        assert tap_pids(config) != taps
    await asyncio.sleep(3)
    publisher.start()
    await wait_status(router, "youtube", "live")
    await wait_bytes_grow(platforms, key)
    assert await publisher_id(platforms, key) == connection
    assert await probe_codecs(platforms.url(key)) == {"audio", "video"}
    assert router.stream_state("youtube").pid == pid
    assert router.stream_state("youtube").restarts == 0


@pytest.mark.slow
@both_ingests()
async def test_long_ingest_outage_waits_then_resumes_by_itself(
    tmp_path: Path,
    ingest: Ingest,
    platforms: NginxRtmp,
    publisher: Publisher,
    services: Callable[[Config], Service],
) -> None:
    config = make_config(tmp_path, ingest, platforms, ["youtube"], hold_s=2)
    service = services(config)
    router = service.router
    await service.start()
    key = await switch_on(router, config, platforms, "youtube")

    publisher.stop()
    await wait_status(router, "youtube", "waiting", deadline_s=30)
    await wait_gone(platforms, key)
    assert router.stream_state("youtube").pid is None
    publisher.start()
    await wait_status(router, "youtube", "live", deadline_s=40)
    await wait_publishing(platforms, key)
    assert router.stream_state("youtube").restarts == 0


async def test_platform_that_accepts_and_never_answers_is_retried_within_the_deadline(
    tmp_path: Path,
    ingest: NginxRtmp,
    platforms: NginxRtmp,
    publisher: Publisher,
    services: Callable[[Config], Service],
) -> None:
    """A listener that never accepts nor reads: the kernel completes the TCP
    handshake, then nothing. The relay gives up after ffmpeg.connect_timeout_s,
    says why and retries; the healthy destination keeps its connection."""
    with socket.socket() as hung:
        hung.bind(("127.0.0.1", 0))
        hung.listen(16)
        base = make_config(tmp_path, ingest, platforms, ["youtube"])
        hung_stream = base.streams[0].model_copy(
            update={
                "id": "hung",
                "url": f"rtmp://127.0.0.1:{hung.getsockname()[1]}/app",
                "key": "hung-" + CANARY_KEY,
            }
        )
        config = base.model_copy(
            update={
                "streams": [*base.streams, hung_stream],
                "ffmpeg": base.ffmpeg.model_copy(update={"connect_timeout_s": 4}),
            }
        )
        service = services(config)
        router = service.router
        await service.start()
        await router.set_enabled("youtube", True)
        youtube_key = key_of(config, "youtube")
        await wait_publishing(platforms, youtube_key)
        client = await publisher_id(platforms, youtube_key)
        loop = asyncio.get_running_loop()
        switched = loop.time()
        await router.set_enabled("hung", True)
        await wait_status(router, "hung", "retrying", deadline_s=20)
        took = loop.time() - switched
        state = router.stream_state("hung")
        assert state.last_error is not None and "did not answer within 4 s" in state.last_error
        assert 3.5 <= took <= 12, took
        assert_no_canary(state.last_error)
        await wait_bytes_grow(platforms, youtube_key)
        assert await publisher_id(platforms, youtube_key) == client  # never reconnected
        assert router.stream_state("youtube").status == "live"


@pytest.mark.parametrize("stunnel", ["stunnel", None], ids=["through-stunnel", "ffmpeg-tls"])
async def test_rtmps_destination_goes_live_with_and_without_the_local_tunnel(
    stunnel: str | None,
    tmp_path: Path,
    ingest: NginxRtmp,
    platforms: NginxRtmp,
    tls_platforms: TlsFront,
    publisher: Publisher,
    services: Callable[[Config], Service],
) -> None:
    base = make_config(tmp_path, ingest, platforms, ["facebook"])
    stream = base.streams[0].model_copy(
        update={"url": f"rtmps://127.0.0.1:{tls_platforms.port}/dest/"}
    )
    config = base.model_copy(
        update={
            "streams": [stream],
            "ffmpeg": base.ffmpeg.model_copy(update={"stunnel": stunnel}),
        }
    )
    service = services(config)
    router = service.router
    await service.start()
    await router.set_enabled("facebook", True)
    key = key_of(config, "facebook")
    await wait_publishing(platforms, key)
    await wait_status(router, "facebook", "live")
    names = sorted(p.name() for p in owned_processes(config.state_file))
    assert ("stunnel" in names or "stunnel4" in names) == (stunnel is not None), names
    await router.set_enabled("facebook", False)
    await wait_gone(platforms, key)
    # the tunnel stays ready for the next switch-on, and goes with its relay
    await router.set_enabled("facebook", True)
    await wait_publishing(platforms, key)
    await service.stop()

    async def tunnel_gone() -> bool:
        return not [p for p in owned_processes(config.state_file) if "stunnel" in p.name()]

    await eventually(tunnel_gone, 5, "the tunnel to end with its relay")
