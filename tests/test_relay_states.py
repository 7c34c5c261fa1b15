"""A relay (relays/relay.py) as a state machine, on a fake ffmpeg (tests/fakes.py)
and a fake ingest, in direct mode: no process, no socket, timings in tenths of a
second. The fake comes in through lib.process (spawn, signal_group), so the
relay itself is as it runs. Start, live, a stop, a refused platform retried with growing waits until
it is a problem, a stall, the ingest going away, a long run closed by the
platform. The real ffmpeg is in test_relay_e2e.py, test_faults.py and the rest."""

from __future__ import annotations

import asyncio
import dataclasses
import signal
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from mqttrelay.config import StreamConfig
from mqttrelay.lib import process
from mqttrelay.lib.redact import Redactor
from mqttrelay.relays import relay as relay_module
from mqttrelay.relays.relay import Relay, RelaySettings
from mqttrelay.relays.status import Status

from .fakes import FakeSource, FakeSpawner, fake_signal_group
from .kit import CANARY_KEY

KEY = f"tiktok-{CANARY_KEY}"
FAST = RelaySettings(
    ffmpeg="ffmpeg",
    owner="relay-state-tests",
    redactor=Redactor([KEY]),
    ingest_url="rtmp://127.0.0.1:9/live/stream",
    hold_s=0.5,
    stop_grace_s=0.2,
    connect_timeout_s=0.5,
    stall_s=0.4,
    backoff_first_s=0.05,
    backoff_max_s=0.2,
    stable_s=30.0,
    max_failures=3,
    problem_after_s=3600.0,
)
REFUSED = "Connection to tcp://127.0.0.1:9?tcp_nodelay=1 failed: Connection refused"


@dataclass
class Lab:
    relay: Relay
    source: FakeSource
    spawn: FakeSpawner
    statuses: list[str] = field(default_factory=list)  # every status, repeats folded

    async def until(self, what: str, check: Callable[[], bool], deadline_s: float = 10) -> None:
        end = time.monotonic() + deadline_s
        while not check():
            assert time.monotonic() < end, f"timed out waiting for {what}: {self.statuses}"
            await asyncio.sleep(0.01)

    async def status(self, status: Status, deadline_s: float = 10) -> None:
        await self.until(status.value, lambda: self.relay.status is status, deadline_s)

    async def spawned(self, count: int) -> None:
        await self.until(f"{count} processes", lambda: len(self.spawn.procs) >= count)


@pytest.fixture
async def make(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Callable[..., Lab]]:
    """Relays on a fake ffmpeg (one relay a test: lib.process.spawn is its spawner);
    closed after the test."""
    monkeypatch.setattr(process, "signal_group", fake_signal_group(process.signal_group))
    monkeypatch.setattr(relay_module, "DIRECT_START_ALLOWANCE_S", 0.0)
    made: list[Relay] = []

    def factory(live: bool = True, **settings: Any) -> Lab:
        source, spawn = FakeSource(live=live), FakeSpawner()
        monkeypatch.setattr(process, "spawn", spawn)
        stream = StreamConfig(id="tiktok", url="rtmp://127.0.0.1:9/app", key=KEY)
        seen: list[str] = []

        def changed(relay: Relay, status_changed: bool) -> None:
            if status_changed and (not seen or seen[-1] != relay.status.value):
                seen.append(relay.status.value)

        relay = Relay(
            stream,
            dataclasses.replace(FAST, **settings),
            source,
            None,
            changed,
        )
        made.append(relay)
        return Lab(relay, source, spawn, seen)

    yield factory
    for relay in made:
        await relay.close()


async def test_on_live_and_off(make: Callable[..., Lab]) -> None:
    lab = make()
    lab.relay.set_enabled(True)
    await lab.spawned(1)
    proc = lab.spawn.last
    assert KEY in " ".join(proc.argv) and "rtmp://127.0.0.1:9/live/stream" in proc.argv
    await lab.status(Status.STARTING)
    assert lab.relay.pid == proc.pid
    proc.progress()
    await lab.status(Status.LIVE)
    for _ in range(15):  # a stream going out: more bytes every 0.1 s (1 s settles)
        await asyncio.sleep(0.1)
        proc.progress()
    await lab.until("a bitrate", lambda: lab.relay.bitrate_kbps > 0)
    assert lab.relay.status is Status.LIVE and lab.relay.uptime_s > 0
    lab.relay.set_enabled(False)
    await lab.status(Status.OFF)
    assert proc.signals == [signal.SIGTERM] and lab.relay.pid is None
    assert lab.statuses == ["starting", "live", "off"]
    assert lab.relay.restarts == 0 and lab.relay.last_error is None


async def test_it_waits_for_the_ingest_and_starts_when_it_comes(make: Callable[..., Lab]) -> None:
    lab = make(live=False)
    lab.relay.set_enabled(True)
    await lab.status(Status.WAITING)
    await asyncio.sleep(0.2)
    assert lab.spawn.procs == []
    lab.source.set_live(True)  # wakes the relay, as the hub or DirectIngest does
    await lab.spawned(1)
    await lab.status(Status.STARTING)


async def test_a_refusing_platform_is_retried_with_backoff_until_it_is_a_problem(
    make: Callable[..., Lab],
) -> None:
    lab = make()
    lab.relay.set_enabled(True)
    unexplained: list[int] = []  # tries whose start showed "retrying" with no time

    def at_spawn() -> None:
        if lab.relay.status is Status.RETRYING and lab.relay.retry_at is None:
            unexplained.append(len(lab.spawn.procs) + 1)

    lab.spawn.on_call = at_spawn
    for tries in range(1, 4):
        await lab.spawned(tries)
        lab.spawn.last.say(f"[tcp] {REFUSED} for rtmp://127.0.0.1:9/app/{KEY}")
        lab.spawn.last.exit(1)
        await lab.until(f"failure {tries}", lambda t=tries: lab.relay.restarts == t)  # type: ignore[misc]
        assert lab.relay.status is Status.RETRYING
        assert lab.relay.error_kind == "refused" and lab.relay.retry_at is not None
    assert lab.relay.down_since is not None
    problem = lab.relay.problem
    assert problem is not None and "3 tries" in problem
    assert KEY not in (lab.relay.last_error or "") + (lab.relay.error_detail or "")
    assert not any(KEY in line for line in lab.relay.stderr_tail)
    await lab.spawned(4)  # it never gives up while switched on
    lab.spawn.last.progress()
    await lab.status(Status.LIVE)
    assert lab.relay.problem is None and lab.relay.down_since is None  # the outage is over
    assert lab.statuses[:3] == ["starting", "retrying", "starting"]
    assert unexplained == [], unexplained


async def test_switching_on_again_while_retrying_tries_at_once(make: Callable[..., Lab]) -> None:
    lab = make(backoff_first_s=60.0, backoff_max_s=60.0)
    lab.relay.set_enabled(True)
    await lab.spawned(1)
    lab.spawn.last.exit(1)
    await lab.status(Status.RETRYING)
    assert lab.relay.retry_at is not None
    lab.relay.set_enabled(True)  # "try again now"
    await lab.spawned(2)
    await lab.status(Status.STARTING)


async def test_a_process_that_cannot_start_is_retried(make: Callable[..., Lab]) -> None:
    lab = make()
    lab.spawn.fail = FileNotFoundError(2, "No such file or directory")
    lab.relay.set_enabled(True)
    await lab.until("a failure", lambda: lab.relay.restarts >= 1)
    assert lab.relay.last_error == "cannot start ffmpeg: No such file or directory"
    lab.spawn.fail = None
    await lab.spawned(1)


async def test_a_stalled_relay_is_killed_and_retried(make: Callable[..., Lab]) -> None:
    lab = make()
    lab.relay.set_enabled(True)
    await lab.spawned(1)
    first = lab.spawn.last
    first.progress()
    await lab.status(Status.LIVE)  # then nothing more reaches the platform
    await lab.until("the stall", lambda: lab.relay.restarts == 1)
    assert first.signals == [signal.SIGKILL] and lab.relay.error_kind == "stalled"
    await lab.spawned(2)


async def test_a_platform_that_never_answers_times_out(make: Callable[..., Lab]) -> None:
    lab = make()
    lab.relay.set_enabled(True)
    await lab.spawned(1)
    await lab.until("the time-out", lambda: lab.relay.restarts == 1)
    assert lab.spawn.procs[0].signals == [signal.SIGKILL]
    assert lab.relay.error_kind is not None and lab.relay.last_error is not None


async def test_the_ingest_going_away_stops_a_direct_relay_without_a_failure(
    make: Callable[..., Lab],
) -> None:
    lab = make()
    lab.relay.set_enabled(True)
    await lab.spawned(1)
    lab.spawn.last.progress()
    await lab.status(Status.LIVE)
    lab.source.set_live(False)
    await lab.status(Status.WAITING)
    assert lab.spawn.last.returncode is not None and lab.relay.restarts == 0
    assert lab.relay.enabled  # still switched on: it starts when OBS is back
    lab.source.set_live(True)
    await lab.spawned(2)


async def test_a_long_run_closed_by_the_platform_comes_back_at_once(
    make: Callable[..., Lab],
) -> None:
    lab = make(stable_s=0.2, backoff_first_s=60.0, backoff_max_s=60.0)
    lab.relay.set_enabled(True)
    await lab.spawned(1)
    lab.spawn.last.progress()
    await lab.status(Status.LIVE)
    await asyncio.sleep(0.3)  # longer than stable_s
    lab.spawn.last.progress()
    lab.spawn.last.exit(1)  # the platform ends a long connection
    await lab.spawned(2)  # no 60 s wait
    assert lab.relay.restarts == 1 and lab.relay.down_since is None
    assert Status.RETRYING.value not in lab.statuses
