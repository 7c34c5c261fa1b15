"""One output profile's encoder: a single ffmpeg fed from the hub's fan-out
(starting at its cached keyframe group), whose output feeds a fan-out of its
own, to every destination on that profile. It runs only while one of them is
attached; if it dies or falls behind, it is restarted with backoff and only
its destinations reconnect."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import psutil

from mqttrelay.config.profiles import ProfileConfig
from mqttrelay.ffmpeg import (
    Progress,
    ProgressParser,
    build_profile_argv,
    progress_field,
)
from mqttrelay.hub.fanout import FanOut
from mqttrelay.hub.hub import Hub
from mqttrelay.hub.subscription import Subscription
from mqttrelay.lib import process
from mqttrelay.lib.aio import cancel_and_wait
from mqttrelay.lib.flv import FlvError, FlvReader, encode_header
from mqttrelay.lib.ratelimit import RateLimitedLog
from mqttrelay.lib.redact import Redactor

log = logging.getLogger(__name__)

# An encoder short of CPU falls behind OBS: whole groups are dropped past this.
ENCODER_MAX_DELAY_MS = 5_000

LINGER_S = 3.0  # after the last destination leaves (a re-keyed relay comes back at once)
BACKOFF_FIRST_S, BACKOFF_MAX_S = 0.5, 30.0
STABLE_S = 30.0  # a run this long forgets earlier failures
SLOW_SPEED = 0.95  # below this it falls behind real time
SETTLE_S = 15.0  # its first seconds are its start-up, not its pace


@dataclass(frozen=True)
class EncoderState:
    profile: str
    running: bool
    destinations: int  # attached relays
    pid: int | None
    cpu_percent: float
    speed: float | None
    dropped_frames: int
    restarts: int
    last_error: str | None


class ProfileEncoder:
    def __init__(
        self, name: str, profile: ProfileConfig, ffmpeg: str, owner: str, hub: Hub,
        redactor: Redactor,
    ) -> None:  # fmt: skip
        self.name = name
        self.profile = profile
        self.ffmpeg = ffmpeg
        self._owner = owner
        self._hub = hub
        self._redactor = redactor
        self._fanout = FanOut()
        self._task: asyncio.Task[None] | None = None
        self._linger: asyncio.TimerHandle | None = None
        self._wake = asyncio.Event()
        self._proc: asyncio.subprocess.Process | None = None
        self._ps: psutil.Process | None = None
        self._progress = Progress()
        self._slow = RateLimitedLog(log, 60.0)
        self.restarts = 0
        self.last_error: str | None = None
        self._tail: deque[str] = deque(maxlen=10)

    # -- the relays' side: the same calls as the hub's ---------------------
    def subscribe(
        self, pipe: asyncio.StreamWriter, on_wake: Callable[[], None], max_delay_ms: int
    ) -> Subscription:
        if self._linger is not None:
            self._linger.cancel()
            self._linger = None
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._supervise(), name=f"profile-{self.name}")
        return self._fanout.subscribe(pipe, on_wake, max_delay_ms)

    def unsubscribe(self, sub: Subscription) -> None:
        self._fanout.unsubscribe(sub)
        if not self._fanout.subs and self._linger is None:
            loop = asyncio.get_running_loop()
            self._linger = loop.call_later(LINGER_S, self._stop_idle)

    def _stop_idle(self) -> None:
        self._linger = None
        if not self._fanout.subs:
            self._wake.set()

    def state(self) -> EncoderState:
        cpu = 0.0
        if self._ps is not None:
            with contextlib.suppress(psutil.Error):
                cpu = self._ps.cpu_percent(None)
        running = self._proc is not None and self._proc.returncode is None
        return EncoderState(
            profile=self.name, running=running, destinations=len(self._fanout.subs),
            pid=self._proc.pid if running and self._proc else None, cpu_percent=cpu,
            speed=self._progress.speed if running else None,
            dropped_frames=self._progress.dropped_frames, restarts=self.restarts,
            last_error=self.last_error,
        )  # fmt: skip

    async def close(self) -> None:
        if self._linger is not None:
            self._linger.cancel()
            self._linger = None
        if self._task is not None:
            await cancel_and_wait(self._task)
            self._task = None
        self._fanout.close()

    # -- supervision --------------------------------------------------------
    def _wanted(self) -> bool:
        return bool(self._fanout.subs) or self._linger is not None

    async def _supervise(self) -> None:
        failures = 0
        while self._wanted():
            started = time.monotonic()
            error = await self._run_once()
            if not self._wanted():
                break
            self.restarts += 1
            self.last_error = error
            log.warning("profile %s: %s; its destinations reconnect", self.name, error)
            self._fanout.disconnect_all(f"the {self.name} profile's encoder stopped: {error}")
            failures = 1 if time.monotonic() - started > STABLE_S else failures + 1
            delay = min(BACKOFF_MAX_S, BACKOFF_FIRST_S * 2 ** (failures - 1))
            await asyncio.sleep(delay * random.uniform(0.8, 1.2))
        log.info("profile %s: encoder stopped (no destination uses it)", self.name)

    async def _run_once(self) -> str:
        argv = build_profile_argv(self.ffmpeg, self.profile)
        try:
            proc = await process.spawn(argv, self._owner, stdin=True)
        except OSError as exc:
            return f"cannot start ffmpeg: {exc.strerror or exc}"
        assert proc.stdin is not None and proc.stdout is not None
        self._proc = proc
        with contextlib.suppress(psutil.Error):
            self._ps = psutil.Process(proc.pid)
            self._ps.cpu_percent(None)
        log.info("profile %s: encoder started (pid %d)", self.name, proc.pid)
        spawned = time.monotonic()
        self._fanout.reset()  # the last run's headers and pictures are not this one's
        feed = self._hub.subscribe(proc.stdin, self._wake.set, ENCODER_MAX_DELAY_MS)
        tasks = [
            asyncio.create_task(self._read_output(proc.stdout)),
            asyncio.create_task(self._read_stderr(proc)),
            asyncio.create_task(proc.wait()),
        ]
        try:
            while True:
                self._wake.clear()
                if proc.returncode is not None or tasks[0].done():
                    tail = self._tail[-1] if self._tail else f"exit code {proc.returncode}"
                    return f"ffmpeg ended: {tail}"
                if feed.overflow is not None:
                    return f"fell behind the ingest ({feed.overflow})"
                if not self._wanted():
                    return "not needed"
                self._check_speed(spawned)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), 1.0)
        finally:
            self._hub.unsubscribe(feed)
            if proc.returncode is None:
                await process.stop_process(proc, 2.0)
            await cancel_and_wait(*tasks)
            self._proc = self._ps = None

    async def _read_output(self, stdout: asyncio.StreamReader) -> None:
        reader = FlvReader()
        while chunk := await stdout.read(65536):
            try:
                tags = reader.feed(chunk)
            except FlvError as exc:
                self._tail.append(f"unreadable output: {exc}")
                return
            if reader.header is not None:
                self._fanout.header = encode_header(
                    audio=reader.header.audio, video=reader.header.video
                )
            for tag in tags:
                self._fanout.put(tag)

    async def _read_stderr(self, proc: asyncio.subprocess.Process) -> None:
        """Progress blocks (key=value) and error lines, masked, on one stream."""
        assert proc.stderr is not None
        parser = ProgressParser()
        while raw := await proc.stderr.readline():
            line = raw.decode("utf-8", "replace").strip()
            if progress_field(line) is not None:
                self._progress = parser.feed_line(line) or self._progress
            elif line:
                line = self._redactor.mask(line)
                self._tail.append(line)
                log.warning("profile %s: ffmpeg: %s", self.name, line)

    def _check_speed(self, since: float) -> None:
        speed = self._progress.speed  # ffmpeg's average since the start: give it time
        if speed is not None and speed < SLOW_SPEED and time.monotonic() - since > SETTLE_S:
            self._slow.warning(
                "profile %s: the encoder runs at %.2fx real time: its destinations fall "
                "behind (a lighter preset, a smaller size, or a hardware encoder)",
                self.name, speed, key=self.name,
            )  # fmt: skip
