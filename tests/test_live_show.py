"""A live show's misbehaving world, against real nginx-rtmp and ffmpeg: a platform
down for minutes comes back by itself, and a platform that closes a long-running
connection gets the stream again at once. (A slow link: tests/test_shaped_link.py.)"""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import datetime
from pathlib import Path

import pytest

from mqttrelay.app import build
from mqttrelay.config import Config

from .kit import make_config, wait_ingest_live, wait_publishing, wait_status
from .support import NginxRtmp, Publisher, free_port, start_nginx

pytestmark = pytest.mark.integration


def with_url(config: Config, url: str) -> Config:
    stream = config.streams[0].model_copy(update={"url": url})
    return config.model_copy(update={"streams": [stream]})


@pytest.mark.slow
async def test_a_platform_down_for_three_minutes_is_live_again_within_one_backoff_step(
    tmp_path: Path, ingest: NginxRtmp, platforms: NginxRtmp, publisher: Publisher
) -> None:
    port = free_port()  # nothing listens here for three minutes: connections are refused
    config = with_url(
        make_config(tmp_path, ingest, platforms, ["tiktok"]), f"rtmp://127.0.0.1:{port}/dest"
    )
    # the product's own backoff (up to 30 s between tries), not the tests' faster one
    service = build(config, relay_overrides={"stop_grace_s": 2.0})
    router = service.router
    back: NginxRtmp | None = None
    await service.start()
    try:
        await wait_ingest_live(router)
        await router.set_enabled("tiktok", True)
        seen: set[str] = set()
        problem: str | None = None
        started = time.monotonic()
        while time.monotonic() - started < 180:
            state = router.stream_state("tiktok")
            seen.add(state.status)
            if state.status == "retrying":
                assert state.retry_at is not None, "retrying without saying when"
                wait_s = datetime.fromisoformat(state.retry_at) - datetime.now().astimezone()
                assert -1 < wait_s.total_seconds() <= 30 + 1, state.retry_at
                assert state.down_since is not None
            problem = problem or state.problem
            await asyncio.sleep(0.5)
        assert "retrying" in seen and "failed" not in seen, seen
        assert problem is not None and "still trying" in problem, problem
        state = router.stream_state("tiktok")
        assert state.enabled and state.status in ("retrying", "starting"), state.status

        back = start_nginx(tmp_path / "back", "dest", fast_start=False, rtmp_port=port)
        came_back = time.monotonic()
        await wait_publishing(back, "tiktok-canary-SECRET-4711", deadline_s=30 + 15)
        took = time.monotonic() - came_back
        assert took <= 30 + 5, f"live again after {took:.1f} s"
        await wait_status(router, "tiktok", "live", deadline_s=10)
        state = router.stream_state("tiktok")
        assert state.problem is None and state.down_since is None
    finally:
        await service.stop()
        if back is not None:
            back.stop()


class CuttingProxy:
    """A TCP forwarder in front of a platform that closes its first connection after
    cut_after_s, as platforms do with long connections; later ones are kept."""

    def __init__(self, backend_port: int, cut_after_s: float) -> None:
        self.backend_port = backend_port
        self.cut_after_s = cut_after_s
        self.connections = 0
        self.cut_at: float | None = None
        self.cut = asyncio.Event()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.port = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        first = self.connections == 1
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.backend_port)

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()

        pumps = [
            asyncio.create_task(pump(reader, up_writer)),
            asyncio.create_task(pump(up_reader, writer)),
        ]
        try:
            if first:
                await asyncio.wait(pumps, timeout=self.cut_after_s)
                self.cut_at = time.monotonic()
                self.cut.set()
            else:
                await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in pumps:
                task.cancel()
            for w in (writer, up_writer):
                w.close()

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()


@pytest.mark.slow
async def test_a_platform_closing_a_long_run_gets_the_stream_again_at_once(
    tmp_path: Path, ingest: NginxRtmp, platforms: NginxRtmp, publisher: Publisher
) -> None:
    proxy = CuttingProxy(platforms.rtmp_port, cut_after_s=12)
    await proxy.start()
    config = with_url(
        make_config(tmp_path, ingest, platforms, ["tiktok"]), f"rtmp://127.0.0.1:{proxy.port}/dest"
    )
    # a "long" run is 8 s here (30 s in the product) so the test stays short
    service = build(
        config, relay_overrides={"stop_grace_s": 2.0, "stable_s": 8.0, "backoff_first_s": 5.0}
    )
    router = service.router
    await service.start()
    try:
        await wait_ingest_live(router)
        await router.set_enabled("tiktok", True)
        await wait_status(router, "tiktok", "live", deadline_s=20)
        await asyncio.wait_for(proxy.cut.wait(), 30)
        assert proxy.cut_at is not None
        statuses: list[str] = []
        while time.monotonic() - proxy.cut_at < 15:
            state = router.stream_state("tiktok")
            statuses.append(state.status)
            if proxy.connections >= 2 and state.status == "live" and state.restarts >= 1:
                break
            await asyncio.sleep(0.02)
        took = time.monotonic() - proxy.cut_at
        state = router.stream_state("tiktok")
        assert state.status == "live" and proxy.connections == 2, (state, statuses)
        # no backoff (its first step is 5 s here) and no failure counted
        assert took < 3.0, f"live again {took:.2f} s after the platform closed the connection"
        assert "retrying" not in statuses and state.down_since is None, statuses
        assert state.restarts == 1
    finally:
        await service.stop()
        await proxy.stop()
