"""The standby picture, measured: OBS's last packet -> standby frames at the
platform (with the on_publish_done hook and by silence alone), OBS's first
keyframe back -> OBS's frames at the platform, and mqttrelay's CPU while it
plays the standby loop, against a live encode of the same card (the baseline a
loop spares). Part `standby` of benchmarks/bench.py."""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import subprocess
import time
from collections.abc import AsyncIterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import psutil
import uvicorn

from mqttrelay.app import Service, build
from mqttrelay.config import Config
from mqttrelay.ffmpeg import StreamShape, loop_argv
from mqttrelay.transports.http.server import ApiServer, bind_api_socket
from tests.support import (
    NginxRtmp,
    Publisher,
    SeenFrame,
    Viewer,
    free_port,
    require_tool,
    start_nginx,
    stat_streams,
)

RED_YUV = (81, 90, 240)
CPU_WINDOW_S = 10.0


def is_red(frame: SeenFrame) -> bool:
    return len(frame.mean) == 3 and all(
        abs(a - b) <= 16 for a, b in zip(frame.mean, RED_YUV, strict=True)
    )


def red_card(folder: Path, size: str) -> Path:
    """A solid red card of the stream's aspect (no bars: every pixel is red)."""
    path = folder / "red.png"
    subprocess.run(
        [require_tool("ffmpeg"), "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi",
         "-i", f"color=c=red:s={size}", "-frames:v", "1", str(path)],
        check=True, timeout=30,
    )  # fmt: skip
    return path


@contextlib.asynccontextmanager
async def running(config: Config) -> AsyncIterator[Service]:
    """The service with its API, so the ingest's hooks reach it."""
    service = build(config)
    await service.start()
    api = service.api
    server = ApiServer(uvicorn.Config(api, log_level="warning", lifespan="off"))
    http = asyncio.create_task(
        server.serve(sockets=[bind_api_socket("127.0.0.1", config.api.port)])
    )
    try:
        yield service
    finally:
        server.should_exit = True
        await http
        await service.stop()


async def until(check: Any, deadline_s: float, what: str) -> None:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if await check():
            return
        await asyncio.sleep(0.005)
    raise RuntimeError(f"timed out waiting for {what}")


async def one_outage(
    ingest: NginxRtmp, platform: NginxRtmp, publisher: Publisher, service: Service, key: str
) -> dict[str, float]:
    """OBS away for 4 s; (last OBS packet -> standby frames, first keyframe -> OBS frames)."""
    viewer = Viewer(platform.url(key))
    await viewer.start()
    try:

        async def watching() -> bool:
            return len(viewer.video()) > 25

        await until(watching, 30, "the viewer")
        publisher.stop()  # returns once the publisher has exited: its last packet is out
        gone = time.monotonic()

        async def standby() -> bool:
            return any(is_red(f) for f in viewer.video(gone))

        await until(standby, 20, "standby frames at the platform")
        to_standby = min(f.wall for f in viewer.video(gone) if is_red(f)) - gone
        await asyncio.sleep(4)
        publisher.start()
        start = time.monotonic()
        keyframe_at = None
        while keyframe_at is None and time.monotonic() - start < 30:
            stream = (await stat_streams(ingest)).get("stream")
            if stream is not None and stream.publishing and stream.bytes_in >= 4000:
                keyframe_at = time.monotonic()
            await asyncio.sleep(0.005)
        assert keyframe_at is not None

        async def back() -> bool:
            return any(not is_red(f) for f in viewer.video(start))

        await until(back, 30, "OBS's frames at the platform")
        first_obs = min(f.wall for f in viewer.video(start) if not is_red(f))
        return {
            "last_obs_packet_to_standby_frames_s": round(to_standby, 3),
            "first_keyframe_at_ingest_to_obs_frames_s": round(first_obs - keyframe_at, 3),
        }
    finally:
        await viewer.stop()


async def cpu_of(proc: psutil.Process, seconds: float) -> float:
    proc.cpu_percent(None)
    await asyncio.sleep(seconds)
    return round(proc.cpu_percent(None), 1)


async def live_encode_cpu(shape: StreamShape, card: Path, seconds: float) -> float:
    """The baseline: encoding the card live, in real time, as a naive standby would."""
    argv = loop_argv(require_tool("ffmpeg"), shape, card, None)
    argv = [argv[0], "-re", *argv[1:]]
    at = argv.index("-t")
    argv[at + 1] = str(int(seconds) + 5)
    argv[-1] = "-"
    argv[-2] = "null"
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        await asyncio.sleep(1)
        return await cpu_of(psutil.Process(proc.pid), seconds)
    finally:
        proc.kill()
        await proc.wait()


async def bench_shape(folder: Path, size: str, hooks: bool, tries: int) -> dict[str, Any]:
    width, height = (int(v) for v in size.split("x"))
    folder.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 - once, before anything runs
    api_port = free_port()
    hooks_url = f"http://127.0.0.1:{api_port}/api/hooks" if hooks else None
    ingest = start_nginx(folder / "ingest", "live", hooks_url=hooks_url)
    platform = start_nginx(folder / "platform", "dest", fast_start=False)
    publisher = Publisher(ingest.url("stream"), size=size)
    card = red_card(folder, size)
    config = Config.model_validate(
        {
            "state_file": str(folder / "state.json"),
            "ingest": {"url": ingest.url("stream"), "hold_s": 2},
            "api": {"port": api_port},
            "mqtt": {"enabled": False},
            "standby": {"image": str(card)},
            "streams": [
                {"id": "a", "enabled": True, "key": "a-standby",
                 "url": f"rtmp://127.0.0.1:{platform.rtmp_port}/dest"},
            ],
        }
    )  # fmt: skip
    try:
        async with running(config) as service:
            publisher.start()

            async def ready() -> bool:
                loops = service.hub._loops if service.hub else None
                live = service.router.stream_state("a").status == "live"
                return live and loops is not None and loops.current is not None

            await until(ready, 60, "live with the standby loop made")
            outages = [
                await one_outage(ingest, platform, publisher, service, "a-standby")
                for _ in range(tries)
            ]
            loop = service.hub._loops.current if service.hub and service.hub._loops else None
            assert loop is not None
            publisher.stop()

            async def on_standby() -> bool:
                return service.router.ingest_state().standby

            await until(on_standby, 20, "standby")
            await asyncio.sleep(1)
            me = await cpu_of(psutil.Process(), CPU_WINDOW_S)
            relay_pid = service.router.stream_state("a").pid
            relay = await cpu_of(psutil.Process(relay_pid), 3) if relay_pid else None
        shape = StreamShape(width, height, Fraction(25), "yuv420p", 44100, 1)
        baseline = await live_encode_cpu(shape, card, CPU_WINDOW_S)
    finally:
        publisher.stop()
        ingest.stop()
        platform.stop()
    to_standby = [o["last_obs_packet_to_standby_frames_s"] for o in outages]
    back = [o["first_keyframe_at_ingest_to_obs_frames_s"] for o in outages]
    return {
        "size": size,
        "hooks": hooks,
        "tries": outages,
        "to_standby_median_s": round(statistics.median(to_standby), 3),
        "to_standby_max_s": max(to_standby),
        "back_to_obs_median_s": round(statistics.median(back), 3),
        "back_to_obs_max_s": max(back),
        "mqttrelay_cpu_percent_during_standby": me,
        "relay_ffmpeg_cpu_percent_during_standby": relay,
        "baseline_live_encode_cpu_percent": baseline,
        "loop_kib_in_memory": loop.size // 1024,
        "loop_encode_s": loop.encode_s,
    }


async def bench_standby(folder: Path, tries: int = 3) -> list[dict[str, Any]]:
    rows = []
    for size, hooks in (("320x240", True), ("320x240", False), ("1280x720", True)):
        rows.append(await bench_shape(folder / f"{size}-{hooks}", size, hooks, tries))
        print("standby:", rows[-1], flush=True)
    return rows
