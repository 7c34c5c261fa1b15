"""OBS straight into mqttrelay (issue 30), measured in one run against nginx:
part `ingest` of benchmarks/bench.py.

One publisher, 1080p60 H.264 at ~6 Mbit/s + AAC: a 10 s clip (tests/frame_counter.py's
counter picture, x264 ultrafast, a keyframe every 2 s) encoded once at the start,
then looped with `-re -stream_loop -1 -c copy`, so its encoder's CPU is not in the
figures. It sends every packet twice at the same instant (ffmpeg's tee muxer): to
the path under test and straight to the platform (nginx-rtmp, key `direct-*`).
The paths, one after the other:

- push:    OBS -> nginx-rtmp `push` -> platform (the floor of any relay);
- tap:     OBS -> nginx-rtmp (managed by mqttrelay) -> tap ffmpeg -> hub -> relay;
- builtin: OBS -> mqttrelay's own ingest (`ingest.listen`) -> hub -> relay.

For each: switch-on (HTTP `PUT enabled` -> media at the platform, at a random point
of the GOP; push has none: nginx must restart to add a push), CPU seconds per
minute of each process on the ingest side (psutil), and the delay the path adds:
two readers at the platform decode the counter burned into each frame, one on the
path's key and one on the direct key, with one clock; a frame's delay is when it
was decoded from the path minus when the same frame was decoded from the direct
copy (which left the publisher at the same instant). What the reader's decoder
and the platform cost is in both and cancels out.

    .venv/bin/python -m benchmarks.bench --only ingest --out benchmarks/results-ingest.json
"""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import psutil
import yaml

from benchmarks.common import summary, wait_for_keys
from mqttrelay.ingest.nginx.conf import NginxSettings, render_nginx_conf
from tests.frame_counter import CounterReader, Picture, counter_argv, decode_row
from tests.support import (
    NginxRtmp,
    ServiceProcess,
    free_port,
    require_tool,
    start_nginx,
    wait_port,
)

PICTURE = Picture(width=1920, height=1080, fps=60, gop_frames=120, video_kbps=6000, audio_kbps=160)
CLIP_S = 10
KINDS = ("push", "tap", "builtin")


def clip_argv(ffmpeg: str, path: Path) -> list[str]:
    return counter_argv(ffmpeg, str(path), PICTURE, realtime=False, seconds=CLIP_S)


def publisher_argv(ffmpeg: str, clip: Path, urls: list[str]) -> list[str]:
    """The clip in real time, copied, each packet to every URL at once."""
    outputs = "|".join(f"[f=flv:onfail=ignore]{u}" for u in urls)
    return [
        ffmpeg, "-hide_banner", "-loglevel", "error", "-nostdin",
        "-re", "-stream_loop", "-1", "-i", str(clip),
        "-map", "0", "-c", "copy", "-f", "tee", outputs,
    ]  # fmt: skip


class FrameLog(CounterReader):
    """Every decoded frame (the counter wraps with the clip), not only the first."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.frames: list[tuple[int, float]] = []

    def _note(self, row: bytes, now: float) -> None:
        n = decode_row(row)
        if n is None:
            self.bad_frames += 1
        else:
            self.frames.append((n, now))


def added_delays(path: list[tuple[int, float]], direct: list[tuple[int, float]]) -> list[float]:
    """For each frame read from the path: its time minus the same frame's time on
    the direct copy (the occurrence nearest in time: the clip repeats every 10 s)."""
    at: dict[int, list[float]] = {}
    for n, t in direct:
        at.setdefault(n, []).append(t)
    out = []
    for n, t in path:
        near = [d for d in at.get(n, []) if abs(t - d) < CLIP_S / 2]
        if near:
            out.append(t - min(near, key=lambda d: abs(t - d)))
    return out


def start_push_nginx(prefix: Path, platform: NginxRtmp) -> NginxRtmp:
    """An nginx-rtmp ingest that pushes every stream to the platform (nginx-conf --push)."""
    nginx = require_tool("nginx")
    prefix.mkdir(parents=True, exist_ok=True)
    settings = NginxSettings(
        prefix=str(prefix), rtmp_port=free_port(), http_port=free_port(), app="live",
        run_as_root=os.geteuid() == 0,
        push=(("platform", f"rtmp://127.0.0.1:{platform.rtmp_port}/dest"),),
    )  # fmt: skip
    conf = prefix / "nginx.conf"
    conf.write_text(render_nginx_conf(settings))
    proc = subprocess.Popen(
        [nginx, "-p", str(prefix), "-c", str(conf)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    assert settings.http_port is not None
    server = NginxRtmp(settings.rtmp_port, settings.http_port, "live", proc, prefix)
    wait_port(settings.rtmp_port)
    return server


def service_config(folder: Path, platform: NginxRtmp, kind: str) -> Path:
    port = free_port()
    ingest: dict[str, Any] = {"url": f"rtmp://127.0.0.1:{port}/live/stream"}
    ingest |= {"manage": True} if kind == "tap" else {"listen": f"127.0.0.1:{port}"}
    raw = {
        "state_file": str(folder / "state.json"),
        "mqtt": {"enabled": False},
        "api": {"port": free_port()},
        "ingest": ingest,
        "streams": [
            {
                "id": "dest",
                "url": f"rtmp://127.0.0.1:{platform.rtmp_port}/dest",
                "key": f"{kind}-key-0123",
            }
        ],
    }
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def role(proc: psutil.Process, platform: NginxRtmp) -> str:
    """nginx, tap (an ffmpeg reading the ingest) or relay (an ffmpeg writing to the platform)."""
    try:
        line = " ".join(proc.cmdline())
    except psutil.Error:
        return "gone"
    if "nginx" in proc.name():
        return "nginx"
    return "relay" if f":{platform.rtmp_port}/" in line else "tap"


def cpu_s(procs: dict[str, list[psutil.Process]]) -> dict[str, float]:
    out: dict[str, float] = {}
    for name, group in procs.items():
        total = 0.0
        for p in group:
            try:
                t = p.cpu_times()
                total += t.user + t.system
            except psutil.Error:
                pass
        out[name] = total
    return out


async def until(check: Callable[[], bool], limit_s: float = 60) -> None:
    start = time.perf_counter()
    while not check():
        if time.perf_counter() - start > limit_s:
            raise TimeoutError
        await asyncio.sleep(0.1)


async def bench_kind(
    folder: Path, platform: NginxRtmp, clip: Path, kind: str, tries: int, window_s: float
) -> dict[str, Any]:
    ffmpeg = require_tool("ffmpeg")
    rng = random.Random(30)
    push: NginxRtmp | None = None
    service: ServiceProcess | None = None
    api = ""
    if kind == "push":
        push = start_push_nginx(folder / "push", platform)
        ingest_url, key = push.url("push"), "push"
    else:
        config = service_config(folder, platform, kind)
        service = ServiceProcess(config, folder / "service.log")
        service.start()
        service.wait_api(60)
        api = f"http://127.0.0.1:{service.port}/api"
        ingest_url = yaml.safe_load(config.read_text())["ingest"]["url"]
        key = f"{kind}-key-0123"
    direct = f"direct-{kind}"  # the platform key of the direct copy
    publisher = start_publisher(ffmpeg, clip, [ingest_url, platform.url(direct)])
    result: dict[str, Any] = {"path": kind}
    readers: list[FrameLog] = []
    try:
        async with httpx.AsyncClient(timeout=10) as client:

            async def switch(on: bool) -> None:
                answer = await client.put(f"{api}/streams/dest", json={"enabled": on})
                answer.raise_for_status()

            async def live() -> bool:
                health = (await client.get(f"{api}/health")).json()
                return bool(health["ingest"]["live"])

            await wait_for_keys(platform, [direct], limit_s=60)
            if service is not None:
                start = time.perf_counter()
                while not await live():
                    if time.perf_counter() - start > 60:
                        raise TimeoutError("the ingest never went live")
                    await asyncio.sleep(0.1)
                on = []
                for _ in range(tries):
                    await asyncio.sleep(0.5 + rng.uniform(0, 2.0))  # a random point of the GOP
                    start = time.perf_counter()
                    await switch(True)
                    await wait_for_keys(platform, [key])
                    on.append(time.perf_counter() - start)
                    await switch(False)
                    await wait_for_keys(platform, [key], gone=True)
                result["switch_on_s"] = summary(on, (0.1, 0.9))
                await switch(True)
            await wait_for_keys(platform, [key], limit_s=60)
            await asyncio.sleep(3)
            procs = ingest_processes(push, service, platform)
            readers = [FrameLog(platform.url(key)), FrameLog(platform.url(direct))]
            for reader in readers:
                reader.start()
            await asyncio.sleep(3)  # the readers' start-up
            before, start = cpu_s(procs), time.perf_counter()
            for reader in readers:
                reader.frames.clear()
            await asyncio.sleep(window_s)
            after, elapsed = cpu_s(procs), time.perf_counter() - start
            per_min = {k: round((after[k] - before[k]) * 60 / elapsed, 2) for k in procs}
            result["cpu_s_per_min"] = per_min
            result["cpu_s_per_min_ingest_side"] = round(
                sum(v for k, v in per_min.items() if k != "relay"), 2
            )
            result["cpu_s_per_min_total"] = round(sum(per_min.values()), 2)
            delays = added_delays(readers[0].frames, readers[1].frames)
            result["added_delay_s"] = summary(delays, (0.1, 0.9))
            result["frames"] = {"path": len(readers[0].frames), "direct": len(readers[1].frames)}
            result["bad_frames"] = sum(r.bad_frames for r in readers)
    finally:
        for reader in readers:
            await reader.stop()
        publisher.terminate()
        publisher.wait()
        if service is not None:
            service.stop()
            service.cleanup()
        if push is not None:
            push.stop()
    print("ingest:", result, flush=True)
    return result


def ingest_processes(
    push: NginxRtmp | None, service: ServiceProcess | None, platform: NginxRtmp
) -> dict[str, list[psutil.Process]]:
    """The ingest side's processes by role: mqttrelay, nginx (master and workers),
    tap, relay (the relay is the same ffmpeg on both mqttrelay paths)."""
    if push is not None:
        master = psutil.Process(push.proc.pid)
        return {"nginx": [master, *master.children(recursive=True)]}
    assert service is not None
    groups: dict[str, list[psutil.Process]] = {"mqttrelay": [service.ps]}
    for proc in service.ps.children(recursive=True):
        groups.setdefault(role(proc, platform), []).append(proc)
    return groups


def start_publisher(ffmpeg: str, clip: Path, urls: list[str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        publisher_argv(ffmpeg, clip, urls), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


def make_clip(folder: Path) -> tuple[Path, int]:
    """The publisher's clip (encoded once, before anything is measured) and its kbit/s."""
    folder.mkdir(parents=True, exist_ok=True)
    clip = folder / "clip.flv"
    subprocess.run(clip_argv(require_tool("ffmpeg"), clip), check=True)
    probe = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "format=bit_rate", "-of", "csv=p=0",
         str(clip)], capture_output=True, text=True, check=True,
    )  # fmt: skip
    return clip, round(int(probe.stdout.strip()) / 1000)


async def bench_ingest(folder: Path, tries: int, window_s: float = 40.0) -> dict[str, Any]:
    clip, kbps = make_clip(folder)
    platform = start_nginx(folder / "platform", "dest", fast_start=False)
    try:
        paths = [
            await bench_kind(folder / kind, platform, clip, kind, tries, window_s) for kind in KINDS
        ]
    finally:
        platform.stop()
    return {
        "publisher": {
            "video": f"{PICTURE.width}x{PICTURE.height} {PICTURE.fps} fps H.264 (x264 "
            "ultrafast), keyframe every 2 s, AAC 160k; a 10 s clip looped with -re -c copy",
            "clip_bit_rate_kbps": kbps,
        },
        "window_s": window_s,
        "paths": paths,
    }
