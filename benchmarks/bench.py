"""mqttrelay benchmarks against the plain relay, in the same run on the same machine.

    .venv/bin/python -m benchmarks.bench [--tries 20] [--out benchmarks/results.json]

- toggle: MQTT `ON` published -> the platform (a second nginx-rtmp server) holds
  the stream with its video and audio codecs known and media bytes arriving.
  At the same instant the baseline, the original tool's plain
  `ffmpeg -i <ingest> -c copy -f flv <dest>`, is started to another key of
  the same platform. Then MQTT `OFF` -> the platform's connection is gone.
  For the cached (default) and the direct mode.
- isolation: one destination toggled 20 times while another one is watched by
  a player: the largest gap between packets it receives (wall clock and
  stream time), and whether its platform connection ever changed.
- outage: the publisher (OBS) stops for 10 s and returns: the platform
  connection of every enabled destination is kept, and the time from the
  publisher's first keyframe to new media at the platform. The same for an
  outage longer than `hold_s`: the time until every platform has the stream
  again (new connections).
- scale: mqttrelay's own CPU and memory with 1 to 50 live relays.
- sources: two sources on one ingest (main and a vertical output), a destination
  on each: switch-on from each source's cache, and the main destination's relay
  and connection while the vertical one is toggled (benchmarks/sources.py).
- ingest: OBS straight into mqttrelay (issue 30): nginx-rtmp `push`, mqttrelay over
  nginx (tap) and the built-in ingest, 1080p60 at 6 Mbit/s: switch-on, CPU of the
  ingest side and the delay each path adds (benchmarks/ingest.py; its own lab).
- shaped: a slow link to a platform (benchmarks/shaped.py; needs root): the delay
  at platforms behind 1 and 2.2 Mbit/s links, reconnects, status, recovery.

Everything runs on 127.0.0.1. Timing is polled every 5 ms from nginx-rtmp's
stat page, so each figure includes up to ~5 ms of polling.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiomqtt
import psutil
import uvicorn

from benchmarks.common import MEDIA_BYTES, POLL_S, arrived, summary, wait_for_keys
from benchmarks.ingest import bench_ingest
from benchmarks.profiles import bench_profiles
from benchmarks.shaped import bench_shaped
from benchmarks.sources import bench_sources
from benchmarks.standby import bench_standby
from mqttrelay.app import build
from mqttrelay.config import Config
from mqttrelay.control.router import Router
from mqttrelay.transports.http.server import ApiServer, bind_api_socket
from mqttrelay.transports.mqtt.bridge import MqttBridge
from tests.support import (
    Mosquitto,
    NginxRtmp,
    Publisher,
    StatStream,
    free_port,
    make_mosquitto,
    start_nginx,
    start_tls_front,
    stat_streams,
)

PARTS = (
    "toggle", "rtmps", "isolation", "outage", "scale", "standby", "profiles", "shaped", "sources",
    "ingest",
)  # fmt: skip


class Lab:
    """Ingest, platform, broker and publisher, all local."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.api_port = free_port()
        # the ingest calls mqttrelay's on_publish hook, as the rendered config does
        self.ingest: NginxRtmp = start_nginx(
            folder / "ingest", "live", hooks_url=f"http://127.0.0.1:{self.api_port}/api/hooks"
        )
        self.platform: NginxRtmp = start_nginx(folder / "platform", "dest", fast_start=False)
        # the same platform over rtmps://, through a TLS terminator
        self.tls = start_tls_front(folder / "tls", self.platform.rtmp_port)
        self.broker: Mosquitto = make_mosquitto(folder / "mqtt")
        self.broker.start()
        self.publisher = Publisher(self.ingest.url("stream"))
        self.publisher.start()

    def close(self) -> None:
        self.publisher.stop()
        self.broker.kill()
        self.ingest.stop()
        self.tls.stop()
        self.platform.stop()

    def config(
        self,
        mode: str,
        names: list[str],
        hold_s: float = 30,
        scheme: str = "rtmp",
        stunnel: str | None = "stunnel",
    ) -> Config:
        tag = mode if scheme == "rtmp" else f"{mode}-{scheme}-{stunnel or 'ffmpeg'}"
        port = self.platform.rtmp_port if scheme == "rtmp" else self.tls.port
        return Config.model_validate(
            {
                "state_file": str(self.folder / f"state-{tag}-{len(names)}.json"),
                "ingest": {"url": self.ingest.url("stream"), "mode": mode, "hold_s": hold_s},
                "ffmpeg": {"stunnel": stunnel},
                "mqtt": {"port": self.broker.port, "node_id": f"bench{mode}"},
                "api": {"port": self.api_port},
                "streams": [
                    {
                        "id": n,
                        "url": f"{scheme}://127.0.0.1:{port}/dest",
                        "key": f"{n}-{tag}",
                    }
                    for n in names
                ],
            }
        )

    def target(self, key: str, scheme: str = "rtmp") -> str:
        if scheme == "rtmps":
            return f"rtmps://127.0.0.1:{self.tls.port}/dest/{key}"
        return self.platform.url(key)


@contextlib.asynccontextmanager
async def service(
    lab: Lab, config: Config
) -> AsyncIterator[tuple[Router, MqttBridge, aiomqtt.Client]]:
    parts = build(config)
    router, bridge = parts.router, parts.bridge
    assert bridge is not None  # mqtt.enabled
    await parts.start()
    bridge.start()
    api = parts.api
    server = ApiServer(
        uvicorn.Config(api, port=config.api.port, log_level="warning", lifespan="off")
    )
    http = asyncio.create_task(
        server.serve(sockets=[bind_api_socket("127.0.0.1", config.api.port)])
    )
    await asyncio.sleep(0.5)
    if not lab.publisher.running:  # refused by on_publish while no mqttrelay answered
        lab.publisher.start()
    try:
        async with aiomqtt.Client("127.0.0.1", lab.broker.port, identifier="bench") as client:
            for _ in range(600):
                live = router.ingest_state().live or config.ingest.mode == "direct"
                if bridge.connected and live:
                    break
                await asyncio.sleep(0.05)
            yield router, bridge, client
    finally:
        server.should_exit = True
        await http
        await bridge.stop()
        await parts.stop()


async def wait_for(lab: Lab, keys: list[str], gone: bool = False) -> dict[str, float]:
    """Seconds until each key has arrived (or is gone), measured from now."""
    return await wait_for_keys(lab.platform, keys, gone)


def plain_relay(lab: Lab, key: str, scheme: str = "rtmp") -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-i",
         lab.ingest.url("stream"), "-c", "copy", "-f", "flv", lab.target(key, scheme)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


async def bench_toggle(
    lab: Lab,
    mode: str,
    tries: int,
    rng: random.Random,
    scheme: str = "rtmp",
    stunnel: str | None = "stunnel",
) -> dict[str, Any]:
    """MQTT ON to media at the platform, against the plain relay started at the
    same instant over the same scheme."""
    config = lab.config(mode, ["dest"], scheme=scheme, stunnel=stunnel)
    key = config.streams[0].key
    assert key is not None
    on: list[float] = []
    off: list[float] = []
    baseline: list[float] = []
    async with service(lab, config) as (_manager, _bridge, client):
        for n in range(tries):
            await asyncio.sleep(0.5 + rng.uniform(0, 2.0))  # a random point of the 2 s GOP
            base_key = f"baseline-{key}-{n}"
            await client.publish("streamrelay/dest/set", "ON", qos=1)
            plain = plain_relay(lab, base_key, scheme)
            times = await wait_for(lab, [key, base_key])
            on.append(times[key])
            baseline.append(times[base_key])
            await client.publish("streamrelay/dest/set", "OFF", qos=1)
            off.append((await wait_for(lab, [key], gone=True))[key])
            plain.terminate()
            plain.wait()
            await wait_for(lab, [base_key], gone=True)
    result = {
        "mode": mode,
        "scheme": scheme,
        "tls_by": (stunnel or "ffmpeg") if scheme == "rtmps" else None,
        "on": summary(on),
        "off": summary(off),
        "baseline_on": summary(baseline),
        "ratio_median": round(statistics.median(on) / statistics.median(baseline), 3),
        "raw_on": [round(v, 3) for v in on],
        "raw_baseline": [round(v, 3) for v in baseline],
    }
    return result


async def watch_packets(url: str, stop: asyncio.Event) -> tuple[float, float, int]:
    """(largest wall-clock gap, largest video timestamp gap, packets) seen by a player."""
    proc = await asyncio.create_subprocess_exec(
        "ffprobe", "-v", "error", "-show_entries", "packet=codec_type,pts_time",
        "-of", "csv=p=0", url,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    assert proc.stdout is not None
    wall_gap = ts_gap = 0.0
    last_wall: float | None = None
    last_ts: float | None = None
    count = 0
    try:
        while not stop.is_set():
            try:
                line = await asyncio.wait_for(proc.stdout.readline(), 0.5)
            except TimeoutError:
                continue
            if not line:
                break
            kind, _, pts = line.decode().strip().partition(",")
            now = time.perf_counter()
            if last_wall is not None and count > 50:  # after the player's start-up burst
                wall_gap = max(wall_gap, now - last_wall)
            last_wall = now
            count += 1
            if kind == "video" and pts not in ("", "N/A"):
                value = float(pts)
                if last_ts is not None:
                    ts_gap = max(ts_gap, value - last_ts)
                last_ts = value
    finally:
        proc.kill()
        await proc.wait()
    return wall_gap, ts_gap, count


async def bench_isolation(lab: Lab, toggles: int) -> dict[str, Any]:
    config = lab.config("cached", ["steady", "flappy"])
    async with service(lab, config) as (router, _bridge, client):
        await client.publish("streamrelay/steady/set", "ON", qos=1)
        await wait_for(lab, ["steady-cached"])
        await asyncio.sleep(2)
        before = (await stat_streams(lab.platform))["steady-cached"].publisher_id
        ingest_before = (await stat_streams(lab.ingest))["stream"].publisher_id
        stop = asyncio.Event()
        watcher = asyncio.create_task(watch_packets(lab.target("steady-cached"), stop))
        await asyncio.sleep(3)
        for n in range(toggles):
            await client.publish("streamrelay/flappy/set", "ON" if n % 2 == 0 else "OFF", qos=1)
            await asyncio.sleep(0.4)
        await client.publish("streamrelay/flappy/set", "OFF", qos=1)
        await asyncio.sleep(2)
        stop.set()
        wall_gap, ts_gap, packets = await watcher
        after = (await stat_streams(lab.platform))["steady-cached"].publisher_id
        ingest_after = (await stat_streams(lab.ingest))["stream"].publisher_id
        return {
            "toggles": toggles,
            "watched_packets": packets,
            "max_wall_gap_s": round(wall_gap, 3),
            "max_video_timestamp_gap_s": round(ts_gap, 3),
            "platform_connection_kept": before == after,
            "ingest_publisher_kept": ingest_before == ingest_after,
            "steady_restarts": router.stream_state("steady").restarts,
        }


async def resume_times(
    lab: Lab, keys: list[str], resumed: Callable[[str, StatStream | None], bool]
) -> tuple[float, dict[str, float]]:
    """Start the publisher again; (its start -> its first keyframe at the ingest,
    that keyframe -> resumed(key) at the platform, for each key)."""
    lab.publisher.start()
    # The publisher's first packet is its first keyframe (x264 opens with an IDR).
    back = time.perf_counter()
    first_keyframe: float | None = None
    times: dict[str, float] = {}
    while len(times) < len(keys) and time.perf_counter() - back < 30:
        if first_keyframe is None:
            ingest = (await stat_streams(lab.ingest)).get("stream")
            if ingest is not None and ingest.publishing and ingest.bytes_in >= MEDIA_BYTES:
                first_keyframe = time.perf_counter()
        streams = await stat_streams(lab.platform)
        for k in keys:
            if k not in times and resumed(k, streams.get(k)):
                times[k] = time.perf_counter() - (first_keyframe or back)
        await asyncio.sleep(POLL_S)
    return round((first_keyframe or back) - back, 3), {k: round(v, 3) for k, v in times.items()}


async def bench_outage(lab: Lab, outage_s: float, hold_s: float) -> dict[str, Any]:
    """OBS away for outage_s. Shorter than hold_s: the platform connections stay
    and media resumes on them. Longer: the relays stopped and start again."""
    names = ["a", "b", "c"]
    config = lab.config("cached", names, hold_s=hold_s)
    keys = [f"{n}-cached" for n in names]
    async with service(lab, config) as (_manager, _bridge, client):
        for n in names:
            await client.publish(f"streamrelay/{n}/set", "ON", qos=1)
        await wait_for(lab, keys)
        await asyncio.sleep(2)
        before = {k: s.publisher_id for k, s in (await stat_streams(lab.platform)).items()}
        lab.publisher.stop()
        await asyncio.sleep(outage_s)
        paused = await stat_streams(lab.platform)
        paused_bytes = {k: paused[k].bytes_in if k in paused else 0 for k in keys}

        def resumed(k: str, stream: StatStream | None) -> bool:
            if outage_s < hold_s:
                return stream is not None and stream.bytes_in > paused_bytes[k] + MEDIA_BYTES
            return arrived(stream)

        to_keyframe, times = await resume_times(lab, keys, resumed)
        after = {k: s.publisher_id for k, s in (await stat_streams(lab.platform)).items()}
        return {
            "outage_s": outage_s,
            "hold_s": hold_s,
            "connections_kept": all(before[k] == after.get(k) for k in keys),
            "connections_while_away": sum(1 for k in keys if k in paused and paused[k].publishing),
            "publisher_start_to_first_keyframe_at_ingest_s": to_keyframe,
            "first_keyframe_at_ingest_to_media_at_platform_s": times,
        }


async def bench_scale(lab: Lab, sizes: list[int], tries: int) -> list[dict[str, Any]]:
    """mqttrelay's own CPU and memory (hub included, ffmpeg excluded) with N live
    relays, and the toggle latency of one more destination at that size."""
    me = psutil.Process()
    rows = []
    for size in sizes:
        names = [f"r{i}" for i in range(size)] + ["probe"]
        config = lab.config("cached", names)
        async with service(lab, config) as (router, _bridge, client):
            await client.publish("streamrelay/all/set", "ON", qos=1)
            await client.publish("streamrelay/probe/set", "OFF", qos=1)
            await wait_for(lab, [f"r{i}-cached" for i in range(size)])
            await asyncio.sleep(3)
            relays = [psutil.Process(s.pid) for s in router.snapshot() if s.pid]
            for proc in [me, *relays]:
                proc.cpu_percent(None)
            cpu = []
            for _ in range(3):  # three 10 s windows: the figure is noisy on 2 cores
                await asyncio.sleep(10)
                cpu.append(me.cpu_percent(None))
            rss_mb = me.memory_info().rss / 2**20
            relay_cpu = [p.cpu_percent(None) for p in relays]
            latencies = []
            for _ in range(tries):
                await client.publish("streamrelay/probe/set", "ON", qos=1)
                latencies.append((await wait_for(lab, ["probe-cached"]))["probe-cached"])
                await client.publish("streamrelay/probe/set", "OFF", qos=1)
                await wait_for(lab, ["probe-cached"], gone=True)
                await asyncio.sleep(0.5)
            rows.append(
                {
                    "relays": size,
                    "mqttrelay_cpu_percent_of_one_core": round(statistics.median(cpu), 1),
                    "mqttrelay_cpu_percent_windows": [round(c, 1) for c in cpu],
                    "mqttrelay_rss_mb": round(rss_mb, 1),
                    "relay_cpu_percent_median": round(statistics.median(relay_cpu), 1),
                    "toggle_on": summary(latencies),
                }
            )
            print("scale:", rows[-1], flush=True)
            await client.publish("streamrelay/all/set", "OFF", qos=1)
    return rows


async def lab_parts(tmp: Path, tries: int, rng: random.Random, parts: list[str]) -> dict[str, Any]:
    """The parts that share one Lab (and standby and profiles, run while it is up,
    as they always were)."""
    lab = Lab(tmp)
    try:
        await asyncio.sleep(3)
        results: dict[str, Any] = {}
        if "toggle" in parts:
            results["toggle"] = [
                await bench_toggle(lab, m, tries, rng) for m in ("cached", "direct")
            ]
        if "rtmps" in parts:
            # before (ffmpeg's own TLS) and after (local stunnel), with RTMP beside them
            results["rtmps"] = [
                await bench_toggle(lab, "cached", tries, rng, "rtmps", None),
                await bench_toggle(lab, "cached", tries, rng, "rtmps", "stunnel"),
                await bench_toggle(lab, "cached", tries, rng, "rtmp"),
            ]
        if "isolation" in parts:
            results["isolation"] = await bench_isolation(lab, 20)
        if "outage" in parts:
            results["outage"] = [await bench_outage(lab, 10.0, 30.0) for _ in range(3)]
            results["long_outage"] = [await bench_outage(lab, 8.0, 3.0) for _ in range(3)]
        if "scale" in parts:
            results["scale"] = await bench_scale(lab, [1, 10, 25, 50], 5)
        if "standby" in parts:
            results["standby"] = await bench_standby(tmp / "standby")
        if "profiles" in parts:
            results["profiles"] = await bench_profiles(tmp / "profiles", min(tries, 10))
        if "sources" in parts:
            results["sources"] = await bench_sources(lab, service, min(tries, 10), rng)
    finally:
        lab.close()
    return results


async def main_async(
    tries: int, parts: list[str], shaped_s: float = 180.0, max_delay_s: float | None = None
) -> dict[str, Any]:
    rng = random.Random(2026)
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        if [p for p in parts if p not in ("shaped", "ingest")]:
            results.update(await lab_parts(Path(tmp), tries, rng, parts))
        if "shaped" in parts:  # its own lab, after the shared one is gone
            results["shaped"] = await bench_shaped(Path(tmp) / "shaped", shaped_s, max_delay_s)
        if "ingest" in parts:  # its own lab too: one platform, one path at a time
            results["ingest"] = await bench_ingest(Path(tmp) / "ingest", min(tries, 10))
    for t in [*results.get("toggle", []), *results.get("rtmps", [])]:
        print(
            f"{t['mode']:>6} {t.get('scheme', 'rtmp')} {t.get('tls_by') or ''}: "
            f"on {t['on']}  off {t['off']}\n"
            f"        baseline on {t['baseline_on']}  ratio {t['ratio_median']}"
        )
    for part in ("isolation", "outage", "long_outage", "sources"):
        if part in results:
            print(f"{part}:", results[part])
    return results


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tries", type=int, default=20)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results.json"))
    parser.add_argument("--only", nargs="*", default=list(PARTS), choices=PARTS)
    parser.add_argument("--shaped-s", type=float, default=180.0, help="part shaped: how long")
    parser.add_argument(
        "--max-delay-s", type=float, default=None,
        help="part shaped: streams[].max_delay_s to write (default: the service's own)",
    )  # fmt: skip
    args = parser.parse_args()
    results = asyncio.run(main_async(args.tries, args.only, args.shaped_s, args.max_delay_s))
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
