"""One run of the shaped-link lab (issue 25), for tests/test_shaped_link.py and
part `shaped` of benchmarks/bench.py: mqttrelay (`mqttrelay run`, cached mode)
relays the frame-counter stream to a platform on loopback and to one platform
per rate behind a shaped link (tests/shaped_link.py). Every destination runs
unshaped first, then every link is shaped at once (t = 0) for `shaped_s`, then
unshaped for `recover_s`. Every `sample_s` it notes, per destination: the delay
a viewer at the platform sees (tests/frame_counter.py, against a viewer of the
ingest), the platform's publisher client id (a new one is a reconnect), and what
the API says (status, delay_ms, dropped_share, restarts). Throughout, it notes
when the sound arrives at each platform (tests/sound_log.py)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

import httpx
import yaml

from .frame_counter import CounterReader, Picture, delay_s, publisher_argv
from .player import Player
from .shaped_link import ShapedPlatform, shaped_platforms
from .sound_log import SoundLog, largest_gap
from .support import (
    NginxRtmp,
    ServiceProcess,
    free_port,
    require_tool,
    start_nginx,
    stat_client,
    stat_streams,
)

GOOD = "good"
P = TypeVar("P", bound=Player)


@dataclass(frozen=True)
class Plan:
    rates_kbit: tuple[int, ...] = (1000, 2200)
    warm_s: float = 15.0  # sampled before shaping, once every viewer sees the stream
    shaped_s: float = 180.0
    recover_s: float = 30.0
    sample_s: float = 0.5
    ready_s: float = 90.0  # deadline for every destination to be live before shaping
    picture: Picture = field(default_factory=Picture)
    max_delay_s: float | None = None  # written into each stream's config when set


@dataclass(frozen=True)
class Destination:
    id: str
    rate_kbit: int | None  # None: the unshaped platform on loopback
    key: str


@dataclass(frozen=True)
class Sample:
    t: float  # seconds since the links were shaped (negative before)
    delay_s: float | None  # how old the viewer's picture is, against the ingest's
    publisher_id: str | None  # the platform's publisher client; None: nobody publishes
    status: str | None  # the API's fields; None where the API has no such field
    delay_ms: float | None
    dropped_share: float | None
    restarts: int | None


@dataclass
class Run:
    plan: Plan
    destinations: list[Destination]
    samples: dict[str, list[Sample]] = field(default_factory=dict)
    viewer_starts: dict[str, int] = field(default_factory=dict)
    bad_frames: dict[str, int] = field(default_factory=dict)
    qdisc: dict[str, str] = field(default_factory=dict)  # tc counters as shaping ends
    fell_behind_lines: int = 0  # the service's "fell behind" log lines
    log_lines: list[str] = field(default_factory=list)  # its lines about the relays, masked
    misses: dict[str, int] = field(default_factory=dict)  # stat pages and API answers missed
    # per destination, the longest stretch without sound at the platform while shaped
    sound_gap_s: dict[str, float | None] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def stream_id(rate_kbit: int) -> str:
    return f"slow{rate_kbit}k"


def write_config(
    path: Path, ingest: NginxRtmp, targets: dict[str, tuple[str, str]], plan: Plan
) -> None:
    """targets: stream id -> (platform URL without key, key)."""
    extra = {} if plan.max_delay_s is None else {"max_delay_s": plan.max_delay_s}
    path.write_text(
        yaml.safe_dump(
            {
                "state_file": "state.json",
                "mqtt": {"enabled": False},
                "api": {"port": free_port()},
                "ingest": {"url": ingest.url("stream"), "stat_url": ingest.stat_url},
                "streams": [
                    {"id": sid, "url": url, "key": key, "enabled": True, **extra}
                    for sid, (url, key) in targets.items()
                ],
            }
        )
    )


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


class _Lab:
    """The parts of a run that are sampled: viewers, platforms, the API."""

    def __init__(
        self,
        plan: Plan,
        destinations: list[Destination],
        servers: dict[str, NginxRtmp],
        ingest_viewer: CounterReader,
        viewers: dict[str, CounterReader],
        api_port: int,
    ) -> None:
        self.plan, self.destinations, self.servers = plan, destinations, servers
        self.ingest_viewer, self.viewers, self.api_port = ingest_viewer, viewers, api_port
        self.shaped_at = 0.0
        self.last: dict[str, Sample] = {}
        self.misses = {"stat": 0, "api": 0}  # answers that did not come

    async def sample(self, http: httpx.AsyncClient) -> dict[str, Sample]:
        """One sample per destination. A stat page or API answer that does not come
        (a loaded machine) repeats the last one: unknown is not "gone"."""
        stats = await asyncio.gather(
            *(stat_streams(self.servers[d.id], http) for d in self.destinations),
            return_exceptions=True,
        )
        api: dict[str, dict[str, Any]] | None
        try:
            response = await http.get(f"http://127.0.0.1:{self.api_port}/api/streams")
            api = {s["id"]: s for s in response.json()}
        except (httpx.HTTPError, ValueError, KeyError, TypeError):
            api = None
            self.misses["api"] += 1
        now = time.monotonic()
        out = {}
        for d, found in zip(self.destinations, stats, strict=True):
            last = self.last.get(d.id)
            if isinstance(found, BaseException):
                self.misses["stat"] += 1
                publisher = last.publisher_id if last else None
            else:
                stream = found.get(d.key)
                publisher = stream.publisher_id if stream and stream.publishing else None
            fields = api.get(d.id, {}) if api is not None else {}
            restarts = _number(fields.get("restarts"))
            sample = Sample(
                t=round(now - self.shaped_at, 3),
                delay_s=_rounded(
                    delay_s(self.ingest_viewer, self.viewers[d.id], now, self.plan.picture.fps)
                ),
                publisher_id=publisher,
                status=fields.get("status"),
                delay_ms=_number(fields.get("delay_ms")),
                dropped_share=_number(fields.get("dropped_share")),
                restarts=None if restarts is None else int(restarts),
            )
            if api is None and last is not None:
                sample = replace(
                    sample, status=last.status, delay_ms=last.delay_ms,
                    dropped_share=last.dropped_share, restarts=last.restarts,
                )  # fmt: skip
            out[d.id] = self.last[d.id] = sample
        return out


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


async def _ready(lab: _Lab, http: httpx.AsyncClient) -> None:
    """Every viewer sees the stream within a second of the ingest, every status live."""
    end = time.monotonic() + lab.plan.ready_s
    last: dict[str, Sample] = {}
    while time.monotonic() < end:
        last = await lab.sample(http)
        if all(
            s.delay_s is not None and s.delay_s < 1.0 and s.status == "live" and s.publisher_id
            for s in last.values()
        ):
            return
        await asyncio.sleep(0.5)
    raise AssertionError(f"not every destination live within {lab.plan.ready_s} s: {last}")


@contextlib.asynccontextmanager
async def _playing(players: dict[str, P]) -> AsyncIterator[dict[str, P]]:
    for player in players.values():
        player.start()
    try:
        yield players
    finally:
        for player in players.values():
            await player.stop()


async def run_shaped(folder: Path, plan: Plan) -> Run:
    """The whole run: start everything, sample, shape, unshape; stop everything."""
    ffmpeg = require_tool("ffmpeg")
    folder.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 - once, before anything runs
    ingest = start_nginx(folder / "ingest", "live")
    good = start_nginx(folder / "good", "dest", fast_start=False)
    publisher: asyncio.subprocess.Process | None = None
    service = ServiceProcess(folder / "config.yaml", folder / "service.log")
    try:
        with shaped_platforms(folder / "shaped", len(plan.rates_kbit)) as slow:
            destinations = [Destination(GOOD, None, "good-key")] + [
                Destination(stream_id(r), r, f"{stream_id(r)}-key") for r in plan.rates_kbit
            ]
            servers: dict[str, NginxRtmp] = {GOOD: good}
            shaped: dict[str, ShapedPlatform] = {}
            for d, platform in zip(destinations[1:], slow, strict=True):
                servers[d.id] = shaped[d.id] = platform
            targets = {d.id: (servers[d.id].url(""), d.key) for d in destinations}
            write_config(service.config, ingest, targets, plan)
            service.start()
            publisher = await asyncio.create_subprocess_exec(
                *publisher_argv(ffmpeg, ingest.url("stream"), plan.picture),
                stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
            )  # fmt: skip
            urls = {"ingest": ingest.url("stream")}
            for d in destinations:
                server = servers[d.id]
                urls[d.id] = (
                    server.viewer_url(d.key)
                    if isinstance(server, ShapedPlatform)
                    else server.url(d.key)
                )
            platforms = {d.id: urls[d.id] for d in destinations}
            async with (
                _playing({n: CounterReader(u, ffmpeg) for n, u in urls.items()}) as readers,
                _playing({n: SoundLog(u, ffmpeg) for n, u in platforms.items()}) as sounds,
                stat_client() as http,
            ):
                viewers = {d.id: readers[d.id] for d in destinations}
                lab = _Lab(plan, destinations, servers, readers["ingest"], viewers, service.port)
                lab.shaped_at = time.monotonic() + 1e9  # t stays very negative until shaped
                await _ready(lab, http)
                lab.misses = {"stat": 0, "api": 0}  # the service may start slowly
                run = Run(plan, destinations, {d.id: [] for d in destinations})
                lab.shaped_at = time.monotonic() + plan.warm_s  # t from -warm_s to 0
                await _sample_until(lab, http, run, 0.0)
                for d in destinations:
                    if d.rate_kbit is not None:
                        shaped[d.id].shape(d.rate_kbit)
                lab.shaped_at = time.monotonic()
                await _sample_until(lab, http, run, plan.shaped_s)
                window = (lab.shaped_at, lab.shaped_at + plan.shaped_s)
                run.sound_gap_s = {
                    sid: _rounded(largest_gap(sound.arrivals, *window))
                    for sid, sound in sounds.items()
                }
                for sid, platform in shaped.items():
                    run.qdisc[sid] = platform.qdisc_stats()
                    platform.unshape()
                await _sample_until(lab, http, run, plan.shaped_s + plan.recover_s)
                run.viewer_starts = {d.id: viewers[d.id].starts for d in destinations}
                run.viewer_starts["ingest"] = readers["ingest"].starts
                run.bad_frames = {name: r.bad_frames for name, r in readers.items()}
                run.misses = lab.misses
    finally:
        if publisher is not None and publisher.returncode is None:
            publisher.kill()
            await publisher.wait()
        if service.proc is not None and service.proc.poll() is None:
            service.stop()
        service.cleanup()
        good.stop()
        ingest.stop()
    log = service.log.read_text(errors="replace") if service.log.exists() else ""
    run.fell_behind_lines = log.count("fell behind")
    run.log_lines = [
        line for line in log.splitlines() if any(d.id in line for d in run.destinations)
    ][-60:]
    return run


async def _sample_until(lab: _Lab, http: httpx.AsyncClient, run: Run, until_t: float) -> None:
    """Sample every sample_s until t (seconds since shaping) reaches until_t."""
    while True:
        started = time.monotonic()
        if started - lab.shaped_at >= until_t:
            return
        for sid, sample in (await lab.sample(http)).items():
            run.samples[sid].append(sample)
        await asyncio.sleep(max(0.0, lab.plan.sample_s - (time.monotonic() - started)))
