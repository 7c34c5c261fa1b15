"""A backup feed standing in for a source, against the real lab: one nginx-rtmp
ingest, two ffmpeg publishers of the same shape (OBS's colour bars as `main`, a
blue card as `spare`), a real relay and a viewer at the platform that decodes
every frame."""

from __future__ import annotations

import asyncio
import itertools
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from mqttrelay.app import Service
from mqttrelay.config import Config
from mqttrelay.control.router import Router

from .conftest import CANARY_KEY
from .support import NginxRtmp, Publisher, SeenFrame, Viewer, eventually, require_tool
from .test_relay_e2e import wait_publishing, wait_status
from .test_sources import publisher_client, wait_source_live
from .test_standby import is_red, red_png, wait_loop_ready

pytestmark = pytest.mark.integration

BLUE_YUV = (41, 240, 110)  # a solid blue card after BT.601 conversion


def is_blue(frame: SeenFrame) -> bool:
    return len(frame.mean) == 3 and all(
        abs(a - b) <= 16 for a, b in zip(frame.mean, BLUE_YUV, strict=True)
    )


class BluePublisher(Publisher):
    """Like Publisher (320x180, 25 fps, 2 s keyframes, AAC 44.1 kHz stereo), but a blue card."""

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [require_tool("ffmpeg"), "-hide_banner", "-loglevel", "error", "-nostdin", "-re",
             "-f", "lavfi", "-i", "color=c=blue:size=320x180:rate=25",
             "-f", "lavfi", "-i", "sine=frequency=660:sample_rate=44100",
             "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency",
             "-pix_fmt", "yuv420p", "-b:v", "200k", "-g", "50", "-keyint_min", "50",
             "-c:a", "aac", "-b:a", "64k", "-ac", "2", "-f", "flv", self.url],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip


@pytest.fixture
def main_feed(ingest: NginxRtmp) -> Iterator[Publisher]:
    pub = Publisher(ingest.url("stream"), size="320x180", sample_rate=44100, channels=2)
    pub.start()
    yield pub
    pub.stop()


@pytest.fixture
def spare_feed(ingest: NginxRtmp) -> Iterator[Publisher]:
    pub = BluePublisher(ingest.url("spare"))
    pub.start()
    yield pub
    pub.stop()


def backup_config(tmp_path: Path, ingest: NginxRtmp, platforms: NginxRtmp) -> Config:
    return Config.model_validate(
        {
            "state_file": str(tmp_path / "state.json"),
            "ingest": {
                "url": ingest.url("stream"),
                "hold_s": 60,
                "backup": "spare",
                "sources": [{"id": "spare", "url": ingest.url("spare")}],
            },
            "standby": {"image": str(red_png(tmp_path)), "max_s": 120},
            "streams": [
                {
                    "id": "youtube",
                    "url": f"rtmp://127.0.0.1:{platforms.rtmp_port}/dest",
                    "key": f"yt-{CANARY_KEY}",
                }
            ],
        }
    )


async def wait_on_backup(router: Router, on: bool) -> None:
    async def check() -> bool:
        return router.source_state("main").on_backup == on

    await eventually(check, 20, f"main on_backup={on}")


def never_backwards(frames: list[SeenFrame]) -> None:
    for a, b in itertools.pairwise(frames):
        assert b.pts > a.pts, (a, b)


@pytest.mark.slow
async def test_backup_stands_in_then_the_standby_when_it_is_away_too(
    tmp_path: Path,
    ingest: NginxRtmp,
    platforms: NginxRtmp,
    main_feed: Publisher,
    spare_feed: Publisher,
    services: Callable[[Config], Service],
) -> None:
    service = services(backup_config(tmp_path, ingest, platforms))
    router = service.router
    await service.start()
    await wait_source_live(router, "main")
    await wait_source_live(router, "spare")
    await wait_loop_ready(service)
    key = f"yt-{CANARY_KEY}"
    await router.set_enabled("youtube", True)
    await wait_publishing(platforms, key)
    viewer = Viewer(platforms.url(key))
    await viewer.start()
    try:
        await eventually(lambda: _true(len(viewer.video()) > 25), 30, "the viewer to see OBS")
        assert not any(is_blue(f) for f in viewer.video())
        client = await publisher_client(platforms, key)

        # main away, the backup live: its picture on the same connection
        main_feed.stop()
        await wait_on_backup(router, True)
        switched = time.monotonic()
        await wait_status(router, "youtube", "standby", deadline_s=10)
        await asyncio.sleep(10)
        assert router.source_state("main").on_backup
        assert await publisher_client(platforms, key) == client
        back = time.monotonic()
        main_feed.start()
        await wait_on_backup(router, False)
        await wait_status(router, "youtube", "live", deadline_s=30)
        await eventually(
            lambda: _true(any(not is_blue(f) for f in viewer.video(back))),
            30,
            "OBS's picture after the backup",
        )
        during = [f for f in viewer.video(switched + 2) if f.wall < back]
        assert len(during) > 150, len(during)  # 8 s at 25 fps, give or take
        assert all(is_blue(f) for f in during), [f.mean for f in during if not is_blue(f)][:5]
        first = next(f for f in viewer.video(back) if not is_blue(f))
        assert first.key, first
        assert await publisher_client(platforms, key) == client

        # main away and then the backup too: the standby picture
        main_feed.stop()
        await wait_on_backup(router, True)
        spare_feed.stop()
        await wait_on_backup(router, False)
        away = time.monotonic()
        await eventually(
            lambda: _true(sum(is_red(f) for f in viewer.video(away)) > 25),
            30,
            "the standby picture at the platform",
        )
        assert router.stream_state("youtube").status == "standby"
        assert await publisher_client(platforms, key) == client
        main_feed.start()
        await wait_status(router, "youtube", "live", deadline_s=30)
        assert await publisher_client(platforms, key) == client
        never_backwards(viewer.video())
        never_backwards(viewer.audio())
    finally:
        await viewer.stop()


async def _true(value: bool) -> bool:
    return value
