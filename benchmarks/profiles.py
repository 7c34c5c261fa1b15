"""Output profiles, measured: switch-on of a profile destination with its
encoder cold (nobody on the profile yet) and warm (another destination on it
is live), against a plain copy relay started at the same instant; and the
encoder's CPU at 640x360 and 1280x720 (libx264 veryfast) from a 1280x720
30 fps source. Part `profiles` of benchmarks/bench.py."""

from __future__ import annotations

import asyncio
import random
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

import psutil

from mqttrelay.app import Service
from mqttrelay.config import Config
from tests.support import NginxRtmp, Publisher, start_nginx, stat_streams

POLL_S = 0.02
CPU_WINDOW_S = 10.0
SIZES = ("640x360", "1280x720")


def _config(folder: Path, ingest: NginxRtmp, platform: NginxRtmp, size: str) -> Config:
    width, height = (int(v) for v in size.split("x"))
    dest = f"rtmp://127.0.0.1:{platform.rtmp_port}/dest"
    return Config.model_validate(
        {
            "state_file": str(folder / f"state-{size}.json"),
            "ingest": {"url": ingest.url("stream")},
            "mqtt": {"enabled": False},
            "profiles": {"p": {"width": width, "height": height, "video_bitrate_kbps": 1500}},
            "streams": [
                {"id": "warm", "url": dest, "key": f"warm-{size}", "profile": "p"},
                {"id": "probe", "url": dest, "key": f"probe-{size}", "profile": "p"},
                {"id": "copy", "url": dest, "key": f"copy-{size}"},
            ],
        }
    )


async def _arrival(platform: NginxRtmp, key: str, limit_s: float = 30) -> float:
    """Seconds until the platform has audio and video for key."""
    start = time.perf_counter()
    while time.perf_counter() - start < limit_s:
        stream = (await stat_streams(platform)).get(key)
        if stream and stream.publishing and stream.video_codec and stream.audio_codec:
            return time.perf_counter() - start
        await asyncio.sleep(POLL_S)
    raise TimeoutError(f"{key} never arrived")


async def _gone(platform: NginxRtmp, key: str) -> None:
    for _ in range(1500):
        stream = (await stat_streams(platform)).get(key)
        if stream is None or not stream.publishing:
            return
        await asyncio.sleep(POLL_S)
    raise TimeoutError(f"{key} never left")


async def _switch_on(service: Service, ingest: NginxRtmp, platform: NginxRtmp, size: str,
                     n: int) -> tuple[float, float, float]:  # fmt: skip
    """(profile destination, copy destination, plain `ffmpeg -i ingest -c copy`),
    all three started at the same instant."""
    router = service.router
    key, copy_key, plain_key = f"probe-{size}", f"copy-{size}", f"plain-{size}-{n}"
    await router.set_enabled("probe", True)
    await router.set_enabled("copy", True)
    plain = subprocess.Popen(  # noqa: ASYNC220 - started at once, waited for by polling
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-i",
         ingest.url("stream"), "-c", "copy", "-f", "flv", platform.url(plain_key)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    times = await asyncio.gather(
        _arrival(platform, key), _arrival(platform, copy_key), _arrival(platform, plain_key)
    )
    await router.set_enabled("probe", False)
    await router.set_enabled("copy", False)
    plain.terminate()
    plain.wait()
    await asyncio.gather(*(_gone(platform, k) for k in (key, copy_key, plain_key)))
    return times[0], times[1], times[2]


async def _encoder_cpu(service: Service) -> dict[str, float]:
    pid = service.router.profiles()[0].pid
    assert pid is not None
    proc = psutil.Process(pid)
    proc.cpu_percent(None)
    await asyncio.sleep(CPU_WINDOW_S)
    state = service.router.profiles()[0]
    return {"cpu_percent": round(proc.cpu_percent(None), 1), "speed": state.speed or 0.0,
            "dropped_frames": state.dropped_frames}  # fmt: skip


def _summary(values: list[float]) -> dict[str, float]:
    return {"median": round(statistics.median(values), 3), "min": round(min(values), 3),
            "max": round(max(values), 3), "n": len(values)}  # fmt: skip


async def bench_profiles(folder: Path, tries: int) -> dict[str, Any]:
    folder.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 - before anything runs
    ingest = start_nginx(folder / "ingest", "live")
    platform = start_nginx(folder / "platform", "dest", fast_start=False)
    publisher = Publisher(ingest.url("stream"), gop_frames=60, size="1280x720", rate=30)
    publisher.start()
    rng = random.Random(2026)
    results: dict[str, Any] = {"source": "1280x720 30 fps, keyframe every 2 s"}
    try:
        for size in SIZES:
            config = _config(folder, ingest, platform, size)
            service = Service(config)
            await service.start()
            try:
                while not service.router.ingest_state().live:  # noqa: ASYNC110 - polled
                    await asyncio.sleep(0.1)
                await asyncio.sleep(3)
                kinds = ("cold", "copy_cold", "plain_cold", "warm", "copy_warm", "plain_warm")
                runs: dict[str, list[float]] = {k: [] for k in kinds}
                for n in range(tries):
                    await asyncio.sleep(3.5 + rng.uniform(0, 2))  # the encoder stopped (3 s)
                    p, c, b = await _switch_on(service, ingest, platform, size, n)
                    runs["cold"].append(p)
                    runs["copy_cold"].append(c)
                    runs["plain_cold"].append(b)
                await service.router.set_enabled("warm", True)
                await _arrival(platform, f"warm-{size}")
                cpu = await _encoder_cpu(service)
                for n in range(tries):
                    await asyncio.sleep(0.5 + rng.uniform(0, 2))  # a random point of the GOP
                    p, c, b = await _switch_on(service, ingest, platform, size, tries + n)
                    runs["warm"].append(p)
                    runs["copy_warm"].append(c)
                    runs["plain_warm"].append(b)
                await service.router.set_enabled("warm", False)
            finally:
                await service.stop()
            results[size] = {
                **{f"{k}_on": _summary(v) for k, v in runs.items()}, "encoder": cpu,
                "raw_cold": [round(v, 3) for v in runs["cold"]],
                "raw_warm": [round(v, 3) for v in runs["warm"]],
            }  # fmt: skip
            print(f"profiles {size}:", {k: v for k, v in results[size].items() if "raw" not in k},
                  flush=True)  # fmt: skip
    finally:
        publisher.stop()
        ingest.stop()
        platform.stop()
    return results
