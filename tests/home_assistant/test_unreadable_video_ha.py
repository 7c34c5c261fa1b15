"""OBS set to HEVC (issue 25) as Home Assistant shows it: the "Ingest problem"
sensor says why the ingest is not live, and `none` again once OBS leaves."""

from __future__ import annotations

from pathlib import Path

import pytest

from ..support import HevcPublisher, Mosquitto, NginxRtmp, ffmpeg_with_x265, free_port, start_nginx
from ..test_unreadable_video_e2e import REASON
from .test_home_assistant import (
    expected_entities,
    relay_beside_home_assistant,
    relay_config,
    wait_ha,
)

pytestmark = pytest.mark.home_assistant


async def test_home_assistant_shows_why_an_hevc_publisher_is_not_live(
    tmp_path: Path, platforms: NginxRtmp, broker: Mosquitto
) -> None:
    ffmpeg_with_x265()
    api_port = free_port()
    hooks = f"http://127.0.0.1:{api_port}/api/hooks"
    ingest = start_nginx(tmp_path / "ingest", "live", hooks_url=hooks)
    hevc = HevcPublisher(ingest.url("stream"))
    try:
        config = relay_config(
            tmp_path / "relay", ingest.url("stream"), platforms.rtmp_port,
            {"port": broker.port}, "studio", ["tiktok"], api={"port": api_port},
        )  # fmt: skip
        entities = expected_entities("studio", ["tiktok"]) | {"sensor.studio_ingest_problem"}
        async with relay_beside_home_assistant(tmp_path, broker, config, entities) as session:
            problem = "sensor.studio_ingest_problem"
            await wait_ha(session.col, {problem: "none"}, 60, "no problem before OBS")
            hevc.start()
            await wait_ha(
                session.col,
                {problem: REASON, "binary_sensor.studio_ingest_live": "off"},
                60,
                "the reason in Home Assistant",
            )
            hevc.stop()
            await wait_ha(session.col, {problem: "none"}, 60, "no problem after OBS left")
    finally:
        hevc.stop()
        ingest.stop()
