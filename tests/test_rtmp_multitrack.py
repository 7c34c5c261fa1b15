"""A multitrack publish into the built-in ingest, with real sockets: ffmpeg 9
(imageio-ffmpeg) publishes two H.264 pictures and two AAC sounds in one FLV
(E-RTMP v2 multitrack), as OBS's multitrack video does; two sources on its
tracks reach two destinations on a real nginx-rtmp platform through Debian's
ffmpeg 5.1 (which reads no Enhanced RTMP), each as classic single-track FLV of
its own size and sound."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mqttrelay.app import Service
from mqttrelay.config import Config

from .conftest import CANARY_KEY
from .support import NginxRtmp, eventually, free_port, require_tool, stat_streams
from .test_rtmp_ingest import KEY, Pub, ffmpeg9, wait_platform

pytestmark = pytest.mark.integration


def multitrack_argv(ffmpeg: str, url: str) -> list[str]:
    """Track 0: 320x180 and a 44.1 kHz tone; track 1: 180x320 and 48 kHz."""
    lavfi = "-f lavfi -i"
    inputs = (
        f"{lavfi} testsrc=size=320x180:rate=25 {lavfi} sine=frequency=440:sample_rate=44100"
        f" {lavfi} testsrc2=size=180x320:rate=25 {lavfi} sine=frequency=880:sample_rate=48000"
    )
    out = (
        "-map 0:v -map 2:v -map 1:a -map 3:a -c:v libx264 -preset ultrafast -tune zerolatency"
        " -pix_fmt yuv420p -b:v 300k -g 50 -keyint_min 50 -c:a aac -b:a 64k -ac 1 -f flv"
    )
    return [ffmpeg, *["-hide_banner", "-loglevel", "error", "-nostdin", "-re"], *inputs.split(),
            *out.split(), url]  # fmt: skip


def multitrack_config(tmp_path: Path, platform_url: str) -> Config:
    port = free_port()
    url = f"rtmp://127.0.0.1:{port}/live/stream"
    return Config.model_validate(
        {
            "state_file": str(tmp_path / "state.json"),
            "ingest": {
                "url": url,
                "listen": f"127.0.0.1:{port}",
                "publish_key": KEY,
                "sources": [{"id": "vertical", "url": url, "video_track": 1, "audio_track": 1}],
            },
            "streams": [
                {"id": "youtube", "url": platform_url, "key": f"y-{CANARY_KEY}"},
                {
                    "id": "tiktok",
                    "url": platform_url,
                    "key": f"t-{CANARY_KEY}",
                    "source": "vertical",
                },
            ],
        }
    )


async def probe(url: str) -> list[dict[str, Any]]:
    """The streams a player reads from url (Debian's ffprobe 5.1: classic FLV only)."""
    out = await Pub.start_capture(
        [require_tool("ffprobe"), "-v", "error", "-rw_timeout", "10000000",
         "-show_entries", "stream=codec_type,codec_name,width,height,sample_rate",
         "-of", "json", url]
    )  # fmt: skip
    streams: list[dict[str, Any]] = json.loads(out or "{}").get("streams", [])
    return sorted(streams, key=lambda s: str(s.get("codec_type")))


async def test_two_tracks_reach_two_destinations_as_two_sources(
    tmp_path: Path,
    platforms: NginxRtmp,
    services: Callable[[Config], Service],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, "mqttrelay.ingest.rtmp.tracks")
    config = multitrack_config(tmp_path, f"rtmp://127.0.0.1:{platforms.rtmp_port}/dest")
    service = services(config)
    await service.start()
    pub = await Pub.start(multitrack_argv(ffmpeg9(), f"{config.ingest.url}?key={KEY}"))
    try:

        async def both_live() -> bool:
            return all(hub.live for hub in service.hubs.values())

        await eventually(both_live, 40, "both sources to be live")
        for stream_id in ("youtube", "tiktok"):
            await service.router.set_enabled(stream_id, True)
        keys = {s.id: s.target.rsplit("/", 1)[1] for s in config.streams}
        for key in keys.values():
            await wait_platform(platforms, key, 60)
        stats = await stat_streams(platforms)
        # nginx-rtmp reads classic FLV only: it names both codecs of both
        assert all(stats[k].video_codec == "H264" for k in keys.values()), stats
        assert all(stats[k].audio_codec == "AAC" for k in keys.values()), stats
        wide = await probe(platforms.url(keys["youtube"]))
        tall = await probe(platforms.url(keys["tiktok"]))
        assert [(s["codec_type"], s["codec_name"]) for s in wide] == [
            ("audio", "aac"), ("video", "h264")
        ], wide  # fmt: skip
        assert (wide[1]["width"], wide[1]["height"], wide[0]["sample_rate"]) == (
            320, 180, "44100"
        ), wide  # fmt: skip
        assert [(s["codec_type"], s["codec_name"]) for s in tall] == [
            ("audio", "aac"), ("video", "h264")
        ], tall  # fmt: skip
        assert (tall[1]["width"], tall[1]["height"], tall[0]["sample_rate"]) == (
            180, 320, "48000"
        ), tall  # fmt: skip
        # what each source's page and Home Assistant show
        assert service.hubs["main"].session_info().resolution == "320x180"
        # the vertical picture's size is not in onMetaData (ffmpeg sends no track
        # map): its sequence header says it
        tall_info = service.hubs["vertical"].session_info()
        assert tall_info.resolution == "180x320" and tall_info.video_codec == "H.264"
        # the log says which tracks the publish carries and which source takes each
        tracks = sorted(m for m in caplog.messages if " carries " in m)
        assert tracks == [
            "built-in ingest: live/stream carries audio track 0 (source main)",
            "built-in ingest: live/stream carries audio track 1 (source vertical)",
            "built-in ingest: live/stream carries video track 0 (source main)",
            "built-in ingest: live/stream carries video track 1 (source vertical)",
        ], tracks
    finally:
        await pub.stop()
