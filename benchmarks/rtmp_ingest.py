"""The built-in ingest (ingest.listen) against nginx-rtmp with the tap, same run,
same machine, same publisher (ffmpeg 5.1, H.264 + AAC, 2 s GOP):

- live: publisher started -> the hub is live (its first keyframe read);
- on: relay switched on (router call) -> media at the platform (nginx-rtmp);
- gone: publisher killed -> the hub is no longer live (the built-in ingest sees
  the socket close; nginx without hooks: the tap's 2 s silence).

    .venv/bin/python -m benchmarks.rtmp_ingest [--tries 5] [--out <file.json>]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import summary, wait_for_keys
from mqttrelay.app import build
from mqttrelay.config import Config
from tests.support import NginxRtmp, Publisher, free_port, start_nginx

KEY = "bench-key-0123"


def _config(folder: Path, platform: NginxRtmp, kind: str, ingest: NginxRtmp | None) -> Config:
    port = free_port()
    section: dict[str, Any] = (
        {"url": ingest.url("stream")}
        if ingest is not None
        else {
            "url": f"rtmp://127.0.0.1:{port}/live/stream",
            "listen": f"127.0.0.1:{port}",
            "publish_key": KEY,
        }
    )
    return Config.model_validate(
        {
            "state_file": str(folder / f"state-{kind}.json"),
            "mqtt": {"enabled": False},
            "ingest": section,
            "streams": [
                {"id": "dest", "url": f"rtmp://127.0.0.1:{platform.rtmp_port}/dest", "key": kind}
            ],
        }
    )


async def _until(check: Any, limit_s: float = 30) -> float:
    start = time.perf_counter()
    while not check():
        if time.perf_counter() - start > limit_s:
            raise TimeoutError
        await asyncio.sleep(0.005)
    return time.perf_counter() - start


async def bench_kind(folder: Path, platform: NginxRtmp, kind: str, tries: int) -> dict[str, Any]:
    ingest = start_nginx(folder / "ingest", "live") if kind == "nginx" else None
    config = _config(folder, platform, kind, ingest)
    url = config.ingest.url if ingest is not None else f"{config.ingest.url}?key={KEY}"
    service = build(config)
    await service.start()
    live, on, gone = [], [], []
    rng = random.Random(4)
    try:
        for _ in range(tries):
            pub = Publisher(url)
            pub.start()
            live.append(await _until(lambda: service.router.ingest_state().live))
            await asyncio.sleep(0.5 + rng.uniform(0, 2.0))
            await service.router.set_enabled("dest", True)
            on.append((await wait_for_keys(platform, [kind]))[kind])
            await service.router.set_enabled("dest", False)
            await wait_for_keys(platform, [kind], gone=True)
            assert pub.proc is not None
            pub.proc.kill()
            pub.proc.wait()
            gone.append(await _until(lambda: not service.router.ingest_state().live))
            await asyncio.sleep(1.0)
    finally:
        await service.stop()
        if ingest is not None:
            ingest.stop()
    return {
        "ingest": kind,
        "publisher_to_live": summary(live),
        "switch_on": summary(on),
        "publisher_gone_to_not_live": summary(gone),
    }


async def main_async(tries: int) -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        platform = start_nginx(folder / "platform", "dest", fast_start=False)
        try:
            return [
                await bench_kind(folder / kind, platform, kind, tries)
                for kind in ("builtin", "nginx")
            ]
        finally:
            platform.stop()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tries", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results-rtmp-ingest.json"))
    args = parser.parse_args()
    results = asyncio.run(main_async(args.tries))
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
