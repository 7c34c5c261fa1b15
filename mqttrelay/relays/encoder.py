"""One output profile's encoder: a single ffmpeg fed from the hub's fan-out
(starting at its cached keyframe group), whose output feeds a fan-out of its
own, to every destination on that profile. It runs only while one of them is
attached; if it dies or falls behind, it is restarted with backoff and only
its destinations reconnect."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

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
from mqttrelay.lib.backoff import Backoff
from mqttrelay.lib.flv import FlvError, FlvReader, encode_header
from mqttrelay.lib.ratelimit import RateLimitedLog
from mqttrelay.lib.redact import Redactor
from mqttrelay.lib.supervisor import ChildProcess, Ended, Phase, Supervisor

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
        self,
        name: str,
        profile: ProfileConfig,
        ffmpeg: str,
        owner: str,
        hub: Hub,
        redactor: Redactor,
    ) -> None:
        self.name = name
        self.profile = profile
        self.ffmpeg = ffmpeg
        self._owner = owner
        self._hub = hub
        self._redactor = redactor
        self._fanout = FanOut()
        self._linger: asyncio.TimerHandle | None = None
        self._wake = asyncio.Event()
        self._feed: Subscription | None = None  # its place in the hub's fan-out, while it runs
        self._progress = Progress()
        self._slow = RateLimitedLog(log, 60.0)
        self.last_error: str | None = None
        self._tail: deque[str] = deque(maxlen=10)
        self._backoff = Backoff(BACKOFF_FIRST_S, BACKOFF_MAX_S, STABLE_S)
        self._sup: Supervisor[ChildProcess] = Supervisor(
            f"profile-{name}",
            self._start,
            self._after_failure,
            watch=self._watch,
            wanted=self._wanted,
            on_state=self._on_phase,
        )

    @property
    def restarts(self) -> int:
        return self._sup.restarts

    # -- the relays' side: the same calls as the hub's ---------------------
    def subscribe(
        self, pipe: asyncio.StreamWriter, on_wake: Callable[[], None], max_delay_ms: int
    ) -> Subscription:
        if self._linger is not None:
            self._linger.cancel()
            self._linger = None
        self._sup.start()
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
            self._sup.wake()

    def state(self) -> EncoderState:
        child = self._sup.child
        pid = child.pid if child is not None else None
        cpu = child.usage()[0] if child is not None else 0.0
        running = pid is not None
        return EncoderState(
            profile=self.name,
            running=running,
            destinations=len(self._fanout.subs),
            pid=pid,
            cpu_percent=cpu,
            speed=self._progress.speed if running else None,
            dropped_frames=self._progress.dropped_frames,
            restarts=self.restarts,
            last_error=self.last_error,
        )

    async def close(self) -> None:
        if self._linger is not None:
            self._linger.cancel()
            self._linger = None
        await self._sup.stop()
        self._fanout.close()

    # -- supervision --------------------------------------------------------
    def _wanted(self) -> bool:
        return bool(self._fanout.subs) or self._linger is not None

    def _after_failure(self, ended: Ended) -> float:
        self.last_error = ended.reason
        log.warning("profile %s: %s; its destinations reconnect", self.name, ended.reason)
        self._fanout.disconnect_all(f"the {self.name} profile's encoder stopped: {ended.reason}")
        return self._backoff.failed(ended.ran_s)

    def _on_phase(self, phase: Phase) -> None:
        if phase is Phase.STOPPED:
            log.info("profile %s: encoder stopped (no destination uses it)", self.name)

    async def _start(self) -> ChildProcess:
        argv = build_profile_argv(self.ffmpeg, self.profile)
        child = await ChildProcess.spawn(
            argv,
            self._owner,
            "ffmpeg",
            stdin=True,
            grace_s=2.0,
            readers=[self._read_output, self._read_stderr],
            measure=True,
        )
        assert child.proc.stdin is not None
        log.info("profile %s: encoder started (pid %d)", self.name, child.proc.pid)
        self._fanout.reset()  # the last run's headers and pictures are not this one's
        self._feed = self._hub.subscribe(child.proc.stdin, self._wake.set, ENCODER_MAX_DELAY_MS)
        return child

    async def _watch(self, child: ChildProcess) -> str:
        spawned = time.monotonic()
        feed, output = self._feed, child.readers[0]
        assert feed is not None
        try:
            while True:
                self._wake.clear()
                if child.returncode is not None or output.done():
                    tail = self._tail[-1] if self._tail else f"exit code {child.returncode}"
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
            self._feed = None

    async def _read_output(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        reader = FlvReader()
        while chunk := await proc.stdout.read(65536):
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
                self.name,
                speed,
                key=self.name,
            )
