"""Output profiles, measured: switch-on of a profile destination with its
encoder cold (nobody on the profile yet) and warm (another destination on it
is live), and of a copy destination in the same tries, each against a plain
`ffmpeg -i <ingest> -c copy` relay started at the same instant; and the
encoder's CPU (libx264 veryfast). With the toggle part's 320x240 source and a
small profile, then at 640x360 and 1280x720 from a 1280x720 30 fps source.
Part `profiles` of benchmarks/bench.py."""

from __future__ import annotations

import asyncio
import random
import subprocess
from pathlib import Path
from typing import Any

import psutil

from benchmarks.common import summary, wait_for_keys
from mqttrelay.app import Service, build
from mqttrelay.config import Config
from tests.support import NginxRtmp, Publisher, start_nginx

CPU_WINDOW_S = 10.0


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


async def _switch_on(service: Service, ingest: NginxRtmp, platform: NginxRtmp, stream_id: str,
                     key: str, plain_key: str) -> tuple[float, float]:  # fmt: skip
    """(the destination, a plain `ffmpeg -i ingest -c copy`), started at the same instant."""
    router = service.router
    await router.set_enabled(stream_id, True)
    plain = subprocess.Popen(  # noqa: ASYNC220 - started at once, waited for by polling
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-i",
         ingest.url("stream"), "-c", "copy", "-f", "flv", platform.url(plain_key)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    times = await wait_for_keys(platform, [key, plain_key])
    await router.set_enabled(stream_id, False)
    plain.terminate()
    plain.wait()
    await wait_for_keys(platform, [key, plain_key], gone=True)
    return times[key], times[plain_key]


async def _try(service: Service, ingest: NginxRtmp, platform: NginxRtmp, size: str, n: int,
               runs: dict[str, list[float]], phase: str) -> None:  # fmt: skip
    """The profile destination, then the copy destination, each beside a plain relay."""
    on, plain = await _switch_on(
        service, ingest, platform, "probe", f"probe-{size}", f"plain-{size}-{phase}-{n}"
    )
    runs[phase].append(on)
    runs[f"plain_{phase}"].append(plain)
    on, plain = await _switch_on(
        service, ingest, platform, "copy", f"copy-{size}", f"plain-{size}-{phase}-copy-{n}"
    )
    runs[f"copy_{phase}"].append(on)
    runs[f"plain_copy_{phase}"].append(plain)


async def _encoder_cpu(service: Service) -> dict[str, float]:
    pid = service.router.profiles()[0].pid
    assert pid is not None
    proc = psutil.Process(pid)
    proc.cpu_percent(None)
    await asyncio.sleep(CPU_WINDOW_S)
    state = service.router.profiles()[0]
    return {"cpu_percent": round(proc.cpu_percent(None), 1), "speed": state.speed or 0.0,
            "dropped_frames": state.dropped_frames}  # fmt: skip


async def _case(folder: Path, ingest: NginxRtmp, platform: NginxRtmp, size: str, tries: int,
                rng: random.Random) -> dict[str, Any]:  # fmt: skip
    config = _config(folder, ingest, platform, size)
    service = build(config)
    await service.start()
    try:
        while not service.router.ingest_state().live:  # noqa: ASYNC110 - polled
            await asyncio.sleep(0.1)
        await asyncio.sleep(3)
        runs: dict[str, list[float]] = {
            f"{what}{phase}": []
            for phase in ("cold", "warm")
            for what in ("", "plain_", "copy_", "plain_copy_")
        }
        for n in range(tries):
            await asyncio.sleep(3.5 + rng.uniform(0, 2))  # the encoder stopped (3 s)
            await _try(service, ingest, platform, size, n, runs, "cold")
        await service.router.set_enabled("warm", True)
        await wait_for_keys(platform, [f"warm-{size}"])
        cpu = await _encoder_cpu(service)
        for n in range(tries):
            await asyncio.sleep(0.5 + rng.uniform(0, 2))  # a random point of the GOP
            await _try(service, ingest, platform, size, n, runs, "warm")
        await service.router.set_enabled("warm", False)
    finally:
        await service.stop()
    return {
        **{f"{k}_on": summary(v, (), least=True) for k, v in runs.items()}, "encoder": cpu,
        "raw_cold": [round(v, 3) for v in runs["cold"]],
        "raw_warm": [round(v, 3) for v in runs["warm"]],
    }  # fmt: skip


# (source size, frame rate, the profile's size): the toggle part's source with a
# small profile, then a 720p source with the two sizes the encoder's CPU is told for
CASES = (("320x240", 25, "160x120"), ("1280x720", 30, "640x360"), ("1280x720", 30, "1280x720"))


async def bench_profiles(folder: Path, tries: int) -> dict[str, Any]:
    folder.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 - before anything runs
    ingest = start_nginx(folder / "ingest", "live")
    platform = start_nginx(folder / "platform", "dest", fast_start=False)
    rng = random.Random(2026)
    results: dict[str, Any] = {}
    try:
        for source, rate, size in CASES:
            publisher = Publisher(ingest.url("stream"), gop_frames=2 * rate, size=source, rate=rate)
            publisher.start()
            try:
                row = await _case(folder, ingest, platform, size, tries, rng)
            finally:
                publisher.stop()
            row["source"] = f"{source} {rate} fps, keyframe every 2 s"
            results[f"{source}->{size}"] = row
            print(f"profiles {source}->{size}:",
                  {k: v for k, v in row.items() if "raw" not in k}, flush=True)  # fmt: skip
    finally:
        ingest.stop()
        platform.stop()
    return results
