"""Small fakes for the state-machine tests: pure Python, no process, no socket.
A pipe that reads as fast or as slowly as a test says, a clock a test moves, the
router's relays, ingest and clock, and a relay's ffmpeg."""

from __future__ import annotations

import asyncio
import signal
from asyncio.subprocess import Process
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from mqttrelay.config import StreamConfig
from mqttrelay.control.one_shot_timers import Timer
from mqttrelay.control.schedule_times import Change
from mqttrelay.ingest.session_info import SessionInfo
from mqttrelay.relays.relay import Relay
from mqttrelay.relays.status import Status


class FakeTransport:
    def __init__(self) -> None:
        self.buffered = 0

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def is_closing(self) -> bool:
        return False


class FakePipe:
    """A relay's stdin: what is written stays buffered until read() takes it."""

    def __init__(self) -> None:
        self.transport = FakeTransport()
        self.received: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.received.append(data)
        self.transport.buffered += len(data)

    def is_closing(self) -> bool:
        return False

    def read(self, count: int | None = None) -> None:
        taken = self.transport.buffered if count is None else min(count, self.transport.buffered)
        self.transport.buffered -= taken


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# -- the router's surroundings (control/router.py) --------------------------------
class FakeSource:
    """An ingest reader (hub/source.py's IngestSource) a test makes live or idle."""

    def __init__(self, live: bool = False) -> None:
        self.live = live
        self.bitrate_kbps = 0.0
        self.last_error: str | None = None
        self.video_problem: str | None = None
        self.standby = False
        self.has_standby = False
        self.standby_held = False
        self.listeners: list[Callable[[], None]] = []
        self.hooks: list[str] = []  # publisher_started / publisher_stopped, in order

    def set_live(self, live: bool) -> None:
        self.live = live
        for listener in list(self.listeners):
            listener()

    def hold_standby(self, on: bool) -> str | None:
        return "no standby section"

    def add_listener(self, listener: Callable[[], None]) -> None:
        self.listeners.append(listener)

    def remove_listener(self, listener: Callable[[], None]) -> None:
        self.listeners.remove(listener)

    def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    def publisher_started(self) -> None:
        self.hooks.append("publisher_started")

    def publisher_stopped(self) -> None:
        self.hooks.append("publisher_stopped")

    def session_info(self) -> SessionInfo | None:
        return None

    async def snapshot(self) -> bytes | None:
        return None

    def add_secrets(self, secrets: list[str]) -> None:
        pass


class FakeRelay:
    """What the router drives of a Relay: the switch position it was given, and
    a status a test sets (telling the router as a real relay does)."""

    def __init__(self, stream: StreamConfig, on_change: Callable[[Any, bool], None]) -> None:
        self.stream = stream
        self._on_change = on_change
        self.enabled = False
        self.calls: list[bool] = []  # every set_enabled
        self.closed = self.disposed = False
        self.status = Status.OFF
        self.bitrate_kbps = 0.0
        self.pid: int | None = None
        self.uptime_s = 0.0
        self.restarts = 0
        self.last_error: str | None = None
        self.error_kind: str | None = None
        self.error_detail: str | None = None
        self.retry_at: datetime | None = None
        self.delay_ms: int | None = None
        self.backlog_bytes: int | None = None
        self.dropped_share: float | None = None
        self.down_since: datetime | None = None
        self.problem: str | None = None

    def set_enabled(self, enabled: bool) -> None:
        self.enabled = enabled
        self.calls.append(enabled)

    def become(self, status: Status) -> None:
        self.status = status
        self._on_change(self, True)

    def stats(self, kbps: float) -> None:
        self.bitrate_kbps = kbps
        self._on_change(self, False)

    def process_stats(self) -> tuple[float, float]:
        return 0.0, 0.0

    async def close(self) -> None:
        self.enabled, self.closed = False, True

    async def dispose(self) -> None:
        await self.close()
        self.disposed = True


class FakeRelays:
    """The router's relay factory: every relay it made, newest last per stream."""

    def __init__(self) -> None:
        self.made: list[FakeRelay] = []

    def __call__(self, stream: StreamConfig, on_change: Callable[[Any, bool], None]) -> Relay:
        relay = FakeRelay(stream, on_change)
        self.made.append(relay)
        return cast(Relay, relay)

    def of(self, stream_id: str) -> FakeRelay:
        return [r for r in self.made if r.stream.id == stream_id][-1]


class FakeTimekeeper:
    """The clock as the router sees it (router.Timekeeper): timers in a list, and
    fire() as APScheduler would, through the router's switch callback."""

    def __init__(self, switch: Callable[[str, bool, str], Awaitable[None]] | None = None) -> None:
        self.switch = switch
        self.timers: list[Timer] = []
        self.now = datetime(2026, 12, 6, 20, 0, tzinfo=UTC)
        self._count = 0

    def _make(self, stream_id: str, enabled: bool, due: datetime, switch_back: bool) -> Timer:
        self._count += 1
        timer = Timer(f"t{self._count}", stream_id, enabled, due, switch_back)
        self.timers.append(timer)
        return timer

    def add(self, stream_id: str, enabled: bool, due: datetime) -> Timer:
        return self._make(stream_id, enabled, due, False)

    def switch_back(self, stream_id: str, enabled: bool, after_s: float) -> Timer:
        return self._make(stream_id, enabled, self.now + timedelta(seconds=after_s), True)

    def pending(self, stream_id: str | None = None) -> list[Timer]:
        found = [t for t in self.timers if stream_id is None or t.stream_id == stream_id]
        return sorted(found, key=lambda t: t.due)

    def cancel(
        self, stream_id: str, timer_id: str | None = None, switch_back_only: bool = False
    ) -> list[Timer]:
        gone = [
            t
            for t in self.timers
            if t.stream_id == stream_id
            and (timer_id is None or t.id == timer_id)
            and (t.switch_back or not switch_back_only)
        ]
        self.timers = [t for t in self.timers if t not in gone]
        return gone

    def next_change(self, stream_id: str) -> Change | None:
        pending = self.pending(stream_id)
        return Change(stream_id, pending[0].enabled, pending[0].due, "timer") if pending else None

    async def fire(self, timer: Timer) -> None:
        """The timer is due: it leaves the list and switches through the callback."""
        assert self.switch is not None
        self.timers.remove(timer)
        await self.switch(timer.stream_id, timer.enabled, f"timer {timer.id}")


# -- a relay's process (relays/relay.py) -----------------------------------------
# Beyond any pid the kernel hands out (pid_max is at most 2**22): a signal sent to
# one of these by mistake reaches no real process.
FAKE_PID_BASE = 2**22 + 1000


class FakeProcess:
    """ffmpeg as a relay sees it: progress on stdout, lines on stderr, an exit code;
    a test says what it prints and when it ends. Signals reach it through
    fake_signal_group (lib.process.signal_group in the tests)."""

    def __init__(self, pid: int, argv: list[str]) -> None:
        self.pid = pid
        self.argv = argv
        self.returncode: int | None = None
        self.stdin = None  # direct mode: the relay reads the ingest itself
        self.stdout = asyncio.StreamReader()
        self.stderr = asyncio.StreamReader()
        self.signals: list[int] = []
        self._ended = asyncio.Event()
        self._size = 0

    def progress(self, grow_by: int = 50_000) -> None:
        """One block of -progress output: more bytes sent to the platform."""
        self._size += grow_by
        self.stdout.feed_data(f"total_size={self._size}\nprogress=continue\n".encode())

    def say(self, line: str) -> None:
        self.stderr.feed_data(f"{line}\n".encode())

    def exit(self, code: int) -> None:
        if self.returncode is None:
            self.returncode = code
            self.stdout.feed_eof()
            self.stderr.feed_eof()
            self._ended.set()

    def signal(self, sig: int) -> None:
        self.signals.append(sig)
        if sig in (signal.SIGTERM, signal.SIGKILL):
            self.exit(255 if sig == signal.SIGTERM else -sig)

    async def wait(self) -> int:
        await self._ended.wait()
        assert self.returncode is not None
        return self.returncode


class FakeSpawner:
    """lib.process.spawn for a relay: each call makes a FakeProcess (or raises `fail`)."""

    def __init__(self) -> None:
        self.procs: list[FakeProcess] = []
        self.fail: OSError | None = None
        self.spawned = asyncio.Event()
        self.on_call: Callable[[], None] = lambda: None  # sees the relay as each spawn starts

    async def __call__(
        self, argv: list[str], owner: str, *, stdin: bool, capture: bool = True
    ) -> Process:
        self.on_call()
        if self.fail is not None:
            raise self.fail
        proc = FakeProcess(FAKE_PID_BASE + len(self.procs), argv)
        self.procs.append(proc)
        self.spawned.set()
        return cast(Process, proc)

    @property
    def last(self) -> FakeProcess:
        return self.procs[-1]


def fake_signal_group(real: Callable[[Process, int], None]) -> Callable[[Process, int], None]:
    """lib.process.signal_group that hands signals for a FakeProcess to it."""

    def send(proc: Process, sig: int) -> None:
        if isinstance(proc, FakeProcess):
            proc.signal(sig)
        else:
            real(proc, sig)

    return send
