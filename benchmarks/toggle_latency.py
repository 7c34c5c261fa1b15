"""Toggle-on latency: from manager.set_enabled(id, True) to the destination
nginx-rtmp server having the stream with its video and audio codecs known and
media bytes arriving. Cached mode (the default) against direct mode (the
baseline: each relay pulls the ingest itself), in the same run.

Usage: python -m benchmarks.toggle_latency [--tries N] [--out FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

from mqttrelay.config import Config
from mqttrelay.manager import Manager
from tests.support import NginxRtmp, Publisher, start_nginx, stat_streams

# The first keyframe of the 320x240 test source is several KB; headers alone are < 1 KB.
MEDIA_BYTES = 4000


async def measure_once(manager: Manager, platforms: NginxRtmp, key: str) -> float:
    start = time.perf_counter()
    await manager.set_enabled("dest", True)
    while True:
        stream = (await stat_streams(platforms)).get(key)
        if (
            stream
            and stream.publishing
            and stream.video_codec
            and stream.audio_codec
            and stream.bytes_in >= MEDIA_BYTES
        ):
            elapsed = time.perf_counter() - start
            break
        if time.perf_counter() - start > 20:
            raise TimeoutError("destination never received the stream")
        await asyncio.sleep(0.005)
    await manager.set_enabled("dest", False)
    for _ in range(400):  # the destination sees the stream end within 20 s
        if not (await stat_streams(platforms)).get(key):
            break
        await asyncio.sleep(0.05)
    return elapsed


async def run_mode(
    mode: str, tries: int, ingest: NginxRtmp, platforms: NginxRtmp, tmp: Path
) -> list[float]:
    key = f"bench-{mode}"
    config = Config.model_validate(
        {
            "state_file": str(tmp / f"state-{mode}.json"),
            "ingest": {"url": ingest.url("stream"), "mode": mode},
            "streams": [
                {"id": "dest", "url": f"rtmp://127.0.0.1:{platforms.rtmp_port}/dest", "key": key}
            ],
        }
    )
    manager = Manager(config)
    await manager.start()
    try:
        deadline = time.monotonic() + 30
        while mode == "cached" and not manager.ingest_state().live:
            if time.monotonic() > deadline:
                raise TimeoutError("ingest not live")
            await asyncio.sleep(0.1)
        results = []
        rng = random.Random(1)
        for _ in range(tries):
            # a random moment within the 2 s keyframe interval
            await asyncio.sleep(0.5 + rng.uniform(0, 2))
            results.append(await measure_once(manager, platforms, key))
        return results
    finally:
        await manager.stop()


def summary(values: list[float]) -> str:
    ordered = sorted(values)
    p90 = ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]
    return (
        f"n={len(values)} median {statistics.median(values):.3f} s, p90 {p90:.3f} s, "
        f"min {ordered[0]:.3f} s, max {ordered[-1]:.3f} s"
    )


async def main_async(tries: int) -> dict[str, list[float]]:
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        ingest = start_nginx(tmp / "ingest", "live")
        platforms = start_nginx(tmp / "platforms", "dest", fast_start=False)
        publisher = Publisher(ingest.url("stream"))
        publisher.start()
        try:
            await asyncio.sleep(3)
            return {
                mode: await run_mode(mode, tries, ingest, platforms, tmp)
                for mode in ("cached", "direct")
            }
        finally:
            publisher.stop()
            ingest.stop()
            platforms.stop()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tries", type=int, default=12)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    results = asyncio.run(main_async(args.tries))
    lines = [f"{mode}: {summary(values)}" for mode, values in results.items()]
    print("\n".join(lines))
    if args.out:
        args.out.write_text("\n".join(lines) + "\n")
    ok = statistics.median(results["cached"]) < 1.0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
