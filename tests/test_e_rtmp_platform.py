"""HEVC end to end against a real Enhanced RTMP platform: ffmpeg 9 publishes
HEVC to the built-in ingest, a relay (ffmpeg 9, stream copy) takes it to
node-media-server 4, which serves HEVC back; a destination that takes H.264
only, in the same run, gets error_kind `codec` and starts no ffmpeg."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest

from mqttrelay.app import Service
from mqttrelay.config import Config

from .conftest import CANARY_KEY
from .node_media_server import NodeMediaServer, start_node_media_server
from .support import eventually
from .test_rtmp_ingest import builtin_config, ffmpeg9, publish_url, source_argv, wait_live

pytestmark = pytest.mark.integration


@pytest.fixture
def nms(tmp_path: Path) -> Iterator[NodeMediaServer]:
    server = start_node_media_server(tmp_path / "nms")
    yield server
    server.stop()


async def served_streams(ffmpeg: str, url: str) -> str:
    """What the platform serves to a player: ffmpeg's description of its input."""
    proc = await asyncio.create_subprocess_exec(
        *[ffmpeg, "-hide_banner", "-rw_timeout", "10000000", "-i", url],
        *["-t", "1", "-c", "copy", "-f", "null", "-"],
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(proc.communicate(), 30)
    return err.decode(errors="replace")


async def test_hevc_reaches_node_media_server_as_hevc_and_h264_only_gets_a_reason(
    tmp_path: Path, nms: NodeMediaServer, services: Callable[[Config], Service]
) -> None:
    ff9 = ffmpeg9()
    config = builtin_config(tmp_path, nms.url("live"), ff9)
    hevc_ok = config.streams[0].model_copy(
        update={"id": "youtube", "name": "YouTube", "key": f"y-{CANARY_KEY}",
                "video_codecs": ["h264", "hevc"]}
    )  # fmt: skip
    h264_only = config.streams[0].model_copy(update={"video_codecs": ["h264"]})
    config = config.model_copy(update={"streams": [hevc_ok, h264_only]})
    service = services(config)
    await service.start()
    pub = await asyncio.create_subprocess_exec(
        *source_argv(ff9, publish_url(config), "libx265"),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        await wait_live(service, deadline_s=40)
        assert service.hub is not None and service.hub.session_info().video_codec == "HEVC"
        for stream_id in ("youtube", "tiktok"):
            await service.router.set_enabled(stream_id, True)

        async def refused() -> bool:
            return service.router.stream_state("tiktok").error_kind == "codec"

        await eventually(refused, 30, "the H.264-only destination to name the codec")
        tiktok = service.router.stream_state("tiktok")
        assert "takes H.264 only (video_codecs) and OBS sends HEVC" in (tiktok.last_error or "")
        assert tiktok.pid is None

        served = ""

        async def hevc_served() -> bool:
            nonlocal served
            served = await served_streams(ff9, nms.url("live", f"y-{CANARY_KEY}"))
            return "Video: hevc" in served

        await eventually(hevc_served, 60, "node-media-server to serve HEVC")
        assert "Audio: aac" in served and "320x240" in served, served
        # sent as it came: the relay copies, it does not encode
        youtube = service.router.stream_state("youtube")
        assert youtube.pid is not None and youtube.error_kind is None
        argv = psutil.Process(youtube.pid).cmdline()
        assert argv[argv.index("-c") + 1] == "copy"
        assert not {"libx264", "libx265", "-c:v"} & set(argv), argv
        assert "start push /live/y-" in nms.log.read_text(errors="replace")
    finally:
        if pub.returncode is None:
            pub.kill()
        await pub.wait()
        for stream_id in ("youtube", "tiktok"):
            await service.router.set_enabled(stream_id, False)
