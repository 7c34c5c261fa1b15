"""The ingest's picture and what OBS announces, for Home Assistant: a JPEG on
its topic every few seconds while live (an image entity), and the resolution,
frame rate and codecs as a retained JSON (a sensor with attributes)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time

import aiomqtt

from mqttrelay.config import MAIN_SOURCE
from mqttrelay.control.router import Router
from mqttrelay.control.views import IngestState
from mqttrelay.hub.snapshot import SnapshotError
from mqttrelay.lib.ratelimit import RateLimitedLog

log = logging.getLogger(__name__)

PICTURE_PERIOD_S = 10.0  # Home Assistant's card refreshes about this often anyway


def ingest_info(ingest: IngestState) -> str:
    """The retained info payload (pure): every field null while OBS is away, but
    `problem`: why a publisher's video cannot be read, while it cannot."""
    live = ingest.live
    resolution = f"{ingest.width}x{ingest.height}" if live and ingest.width else None
    return json.dumps(
        {
            "resolution": resolution,
            "fps": ingest.fps if live else None,
            "video_codec": ingest.video_codec if live else None,
            "audio_codec": ingest.audio_codec if live else None,
            "announced_video_kbps": ingest.video_kbps if live else None,
            "problem": ingest.problem,
        }
    )


async def publish_pictures(
    client: aiomqtt.Client, router: Router, topic: str, source_id: str = MAIN_SOURCE
) -> None:
    """Until cancelled or disconnected: a JPEG of the source to `topic` every
    PICTURE_PERIOD_S while it is live in cached mode."""
    warnings = RateLimitedLog(log, 300.0)
    last = -PICTURE_PERIOD_S
    with contextlib.suppress(aiomqtt.MqttError):
        while True:
            await asyncio.sleep(1.0)  # the first picture soon after OBS starts
            now = time.monotonic()
            ingest = router.ingest_state(source_id)
            if now - last < PICTURE_PERIOD_S or not ingest.live or ingest.mode != "cached":
                continue  # direct mode has no picture (its entity is gone)
            last = now
            try:
                jpeg = await router.ingest_snapshot(source_id)
            except SnapshotError as exc:
                warnings.warning("no ingest picture for Home Assistant: %s", exc)
            else:
                await client.publish(topic, jpeg, qos=0, retain=False)
