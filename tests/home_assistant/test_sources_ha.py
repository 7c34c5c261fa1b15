"""A second ingest source (OBS's vertical output) in a real Home Assistant: its
own live, resolution and picture entities, the ingest's entities still `main`'s,
and not a single warning from Home Assistant's MQTT integration."""

from __future__ import annotations

from pathlib import Path

import pytest

from ..support import Mosquitto, NginxRtmp, Publisher, eventually
from ..test_sources import TALL
from .test_home_assistant import (
    expected_entities,
    ha_states,
    relay_beside_home_assistant,
    relay_config,
    wait_ha,
)

pytestmark = pytest.mark.home_assistant


async def test_home_assistant_shows_each_source(
    tmp_path: Path,
    ingest: NginxRtmp,
    platforms: NginxRtmp,
    publisher: Publisher,
    broker: Mosquitto,
) -> None:
    tall = Publisher(ingest.url("vertical"), **TALL)
    tall.start()
    try:
        ingest_section = {
            "url": ingest.url("stream"),
            "sources": [{"id": "vertical", "url": ingest.url("vertical")}],
        }
        config = relay_config(
            tmp_path / "relay", ingest.url("stream"), platforms.rtmp_port,
            {"port": broker.port}, "studio", ["tiktok"], ingest=ingest_section,
        )  # fmt: skip
        source_entities = {
            "binary_sensor.studio_source_vertical_live",
            "sensor.studio_source_vertical_resolution",
            "image.studio_source_vertical_picture",
        }
        entities = expected_entities("studio", ["tiktok"]) | source_entities
        entities |= {"sensor.studio_ingest_resolution"}
        async with relay_beside_home_assistant(tmp_path, broker, config, entities) as session:
            col = session.col
            await wait_ha(
                col,
                {
                    "binary_sensor.studio_source_vertical_live": "on",
                    "sensor.studio_source_vertical_resolution": "180x320",
                    "binary_sensor.studio_ingest_live": "on",
                    "sensor.studio_ingest_resolution": "320x240",  # still main's
                },
                60,
                "each source in Home Assistant",
            )

            async def picture_shown() -> bool:
                state = ha_states(col).get("image.studio_source_vertical_picture", "unknown")
                return state not in ("unknown", "unavailable")

            await eventually(picture_shown, 60, "the vertical picture in Home Assistant", step_s=1)
            tall.stop()
            await wait_ha(
                col,
                {
                    "binary_sensor.studio_source_vertical_live": "off",
                    "binary_sensor.studio_ingest_live": "on",
                },
                60,
                "the vertical source idle, main still live",
            )
    finally:
        tall.stop()
