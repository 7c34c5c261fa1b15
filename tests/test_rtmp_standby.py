"""The built-in ingest under app.run: OBS (an ffmpeg publisher) into mqttrelay
itself, a relay to a platform, and when OBS drops the standby picture reaches
the platform at once: the socket's close ends the session, not silence."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import pytest

from mqttrelay import app
from mqttrelay.config import Config

from .kit import SHAPES, is_red, red_png, wait_publishing
from .support import NginxRtmp, Publisher, Viewer, eventually, free_port, wait_port

pytestmark = pytest.mark.integration
KEY = "pubkey-0123456789ab"


async def _async(value: bool) -> bool:
    return value


@pytest.mark.slow
async def test_standby_starts_when_the_publisher_drops(
    tmp_path: Path, platforms: NginxRtmp
) -> None:
    shape = SHAPES[0]
    port = free_port()
    config = Config.model_validate(
        {
            "state_file": str(tmp_path / "state.json"),
            "ingest": {"url": f"rtmp://127.0.0.1:{port}/live/stream",
                       "listen": f"127.0.0.1:{port}", "publish_key": KEY, "hold_s": 2},
            "api": {"port": free_port()},
            "mqtt": {"enabled": False},
            "standby": {"image": str(red_png(tmp_path))},
            "streams": [{"id": "youtube", "name": "YouTube", "enabled": True,
                         "url": f"rtmp://127.0.0.1:{platforms.rtmp_port}/dest", "key": "yt-key01"}],
        }
    )  # fmt: skip
    runner = asyncio.create_task(app.run(config))
    publisher = Publisher(f"{config.ingest.url}?key={KEY}", gop_frames=2 * shape["rate"], **shape)
    try:
        await asyncio.to_thread(wait_port, port, 30)
        publisher.start()
        await wait_publishing(platforms, "yt-key01")
        viewer = Viewer(platforms.url("yt-key01"))
        await viewer.start()
        try:
            await eventually(lambda: _async(len(viewer.video()) > 10), 30, "OBS at the platform")
            await asyncio.sleep(3)  # the loop is made from the session's first seconds
            stopped = time.monotonic()
            assert publisher.proc is not None
            publisher.proc.kill()  # a crash: no FCUnpublish, the socket just closes
            await eventually(
                lambda: _async(any(is_red(f) for f in viewer.video(stopped))),
                10,
                "the standby picture at the platform",
            )
            assert time.monotonic() - stopped < 5  # (the hub itself: under 1 s, test_rtmp_ingest)
        finally:
            await viewer.stop()
    finally:
        publisher.stop()
        os.kill(os.getpid(), signal.SIGTERM)  # app.run's own stop signal
        await asyncio.wait_for(runner, 30)
