"""Two sources on one host, measured: OBS's main output (320x240) and a vertical
one (180x320) on the same ingest, one destination on each. Switch-on (command ->
media at the platform) from each source's keyframe cache, at a random point of
the 2 s keyframe interval; and while the vertical destination is toggled, the
main one's relay process and platform connection. Part `sources` of
benchmarks/bench.py."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

from benchmarks.common import summary, wait_for_keys
from mqttrelay.config import Config
from mqttrelay.control.router import Router
from tests.support import Publisher, stat_streams

Serve = Callable[[Any, Config], AbstractAsyncContextManager[tuple[Router, Any, Any]]]


async def bench_sources(lab: Any, serve: Serve, tries: int, rng: random.Random) -> dict[str, Any]:
    """`lab`: bench.Lab (its ingest calls the service's hooks); `serve`: bench.service."""
    ingest, platform = lab.ingest, lab.platform
    config = Config.model_validate(
        {
            "state_file": str(lab.folder / "state-sources.json"),
            "ingest": {
                "url": ingest.url("stream"),
                "sources": [{"id": "vertical", "url": ingest.url("vertical")}],
            },
            "mqtt": {"port": lab.broker.port, "node_id": "benchsources"},
            "api": {"port": lab.api_port},
            "streams": [
                {"id": "wide", "url": f"rtmp://127.0.0.1:{platform.rtmp_port}/dest",
                 "key": "sources-wide"},
                {"id": "tall", "url": f"rtmp://127.0.0.1:{platform.rtmp_port}/dest",
                 "key": "sources-tall", "source": "vertical"},
            ],
        }
    )  # fmt: skip
    on: dict[str, list[float]] = {"wide": [], "tall": []}
    vertical = Publisher(ingest.url("vertical"), size="180x320")
    async with serve(lab, config) as (router, _, _):
        vertical.start()  # its on_publish hook needs the service's API
        try:
            for _ in range(600):
                if router.ingest_state("main").live and router.ingest_state("vertical").live:
                    break
                await asyncio.sleep(0.05)
            await asyncio.sleep(2.5)  # past a keyframe: switch-on from the cache
            for _ in range(tries):
                for stream_id in ("wide", "tall"):
                    await asyncio.sleep(0.5 + rng.uniform(0, 2.0))  # a random point of the GOP
                    key = f"sources-{stream_id}"
                    started = time.perf_counter()
                    await router.set_enabled(stream_id, True)
                    await wait_for_keys(platform, [key])  # polled every 5 ms
                    on[stream_id].append(time.perf_counter() - started)
                    await router.set_enabled(stream_id, False)
                    await wait_for_keys(platform, [key], gone=True)
            # the vertical destination toggled while the main one stays on
            await router.set_enabled("wide", True)
            await wait_for_keys(platform, ["sources-wide"])
            pid = router.stream_state("wide").pid
            client = (await stat_streams(platform))["sources-wide"].publisher_id
            for _ in range(tries):
                await router.set_enabled("tall", True)
                await wait_for_keys(platform, ["sources-tall"])
                await router.set_enabled("tall", False)
                await wait_for_keys(platform, ["sources-tall"], gone=True)
            kept = (
                router.stream_state("wide").pid == pid
                and (await stat_streams(platform))["sources-wide"].publisher_id == client
            )
            await router.set_enabled("wide", False)
        finally:
            vertical.stop()
    return {
        "on_main": summary(on["wide"], (0.9,)),
        "on_vertical": summary(on["tall"], (0.9,)),
        "raw_on_main": [round(v, 3) for v in on["wide"]],
        "raw_on_vertical": [round(v, 3) for v in on["tall"]],
        "main_untouched_while_vertical_toggled": kept,
    }
