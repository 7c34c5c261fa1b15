"""One destination's ffmpeg: start, stop, backoff, stall watch, stats."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import psutil

from mqttrelay.config import StreamConfig
from mqttrelay.engine import relay_errors
from mqttrelay.engine.ffmpeg import BitrateMeter, ProgressParser, build_relay_argv
from mqttrelay.engine.ffmpeg_check import ffmpeg_enhanced_rtmp_problem
from mqttrelay.engine.hub import Hub
from mqttrelay.engine.outage import Outage
from mqttrelay.engine.source import Feed, IngestSource
from mqttrelay.engine.status import Status
from mqttrelay.engine.subscription import Subscription
from mqttrelay.engine.tls_tunnel import TlsTunnel, TunnelError, is_rtmps
from mqttrelay.lib import process, socket_queue
from mqttrelay.lib.aio import cancel_and_wait
from mqttrelay.lib.redact import display_url

log = logging.getLogger(__name__)

# Unsent data a relay's socket may hold: past it, nothing can be dropped any more.
UNSENT_MAX_BYTES = 16 * 1024
# The kernel's pipe into a relay holds 64 KB by default: half a second at 1 Mbit/s.
PIPE_BYTES = 32 * 1024
IDLE_PIPE_BYTES = 4 * 1024  # below this in its pipe (and nothing queued), a relay keeps up
_cap_refused = False  # the warning is given once


# Direct mode first waits for the ingest's next keyframe and probes it (an OBS
# default of 250 frames is 8.3 s at 30 fps) before it connects to the platform.
DIRECT_START_ALLOWANCE_S = 15.0
# what each ffmpeg cannot carry of Enhanced RTMP (ffmpeg_check), asked once per path
_ENHANCED_RTMP_PROBLEMS: dict[str, str | None] = {}


@dataclass(frozen=True)
class RelaySettings:
    ffmpeg: str
    owner: str
    secrets: tuple[str, ...]
    ingest_url: str
    hold_s: float = 30.0
    stop_grace_s: float = 3.0
    connect_timeout_s: float = 10.0  # input available to first bytes the platform took
    stunnel: str | None = None  # rtmps:// through this stunnel binary (tls_tunnel.py)
    stall_s: float = 10.0  # no output growth while input flows
    backoff_first_s: float = 0.5
    backoff_max_s: float = 30.0  # tries go on for as long as it is switched on
    stable_s: float = 30.0  # a run this long forgets earlier failures, and returns at once
    # a destination down this many tries, or this long, is reported as a problem
    max_failures: int = 8
    problem_after_s: float = 60.0


class Relay:
    """Keeps one destination's ffmpeg running while it is enabled."""

    def __init__(
        self,
        stream: StreamConfig,
        settings: RelaySettings,
        source: IngestSource,
        hub: Hub | None,
        on_change: Callable[[Relay, bool], None],
        feed: Feed | None = None,
    ) -> None:
        """`feed`: where its stdin is fed from in cached mode, the hub (OBS's stream as
        it is) or a profile's encoder; by default the hub."""
        self.stream = stream
        self.settings = settings
        self._source = source
        self._hub = hub
        self._feed: Feed | None = feed if feed is not None else hub
        self._on_change = on_change
        self._wake = asyncio.Event()
        self._desired = False
        self._task: asyncio.Task[None] | None = None
        self.status = Status.OFF
        self.restarts = 0
        self.last_error: str | None = None  # reason: hint (relay_errors.py)
        self.error_kind: relay_errors.ErrorKind | None = None
        self.error_detail: str | None = None  # the masked raw lines behind last_error
        self._explained: relay_errors.RelayError | None = None  # of the error _run_once returns
        self._stderr_read: asyncio.Task[None] | None = None
        self.retry_at: datetime | None = None  # the next attempt, while retrying
        self._outage = Outage(
            settings.backoff_first_s,
            settings.backoff_max_s,
            settings.max_failures,
            settings.problem_after_s,
        )
        self._sub: Subscription | None = None  # its place in the fan-out, while it runs
        self._unsent_capped = False  # this run's sockets have their cap
        self.bitrate_kbps = 0.0
        self.stderr_tail: deque[str] = deque(maxlen=20)
        self._proc: asyncio.subprocess.Process | None = None
        self._ps: psutil.Process | None = None
        self._live_since: float | None = None
        self._last_growth = 0.0
        self._total_size = 0
        self._live_since_last_run = 0.0
        self._fresh_start = False
        self._tunnel: TlsTunnel | None = None  # rtmps:// destinations, kept between runs
        source.add_listener(self.wake)

    # -- control ------------------------------------------------------------
    @property
    def enabled(self) -> bool:
        return self._desired

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc and self._proc.returncode is None else None

    @property
    def uptime_s(self) -> float:
        return round(time.monotonic() - self._live_since, 1) if self._live_since else 0.0

    def process_stats(self) -> tuple[float, float]:
        """(cpu percent since the last call, resident memory in MB) of the process."""
        if self._ps is None or self.pid is None:
            return 0.0, 0.0
        try:
            return self._ps.cpu_percent(None), round(self._ps.memory_info().rss / 2**20, 1)
        except psutil.Error:
            return 0.0, 0.0

    @property
    def delay_ms(self) -> int | None:
        """How far behind OBS the relay reads (cached mode, while it runs)."""
        return self._sub.delay_ms if self._sub is not None else None

    @property
    def backlog_bytes(self) -> int | None:
        return self._sub.backlog_bytes if self._sub is not None else None

    @property
    def dropped_share(self) -> float | None:
        """The share of the stream dropped over the last 30 s for a slow link."""
        return round(self._sub.dropped_share(), 4) if self._sub is not None else None

    @property
    def down_since(self) -> datetime | None:
        """The first failed try of the outage it is in, if it is in one."""
        return self._outage.since

    @property
    def problem(self) -> str | None:
        """A long outage, in words; None while it is not one."""
        return self._outage.problem(datetime.now(UTC))

    def wake(self) -> None:
        self._wake.set()

    def _on_standby(self) -> bool:
        return self._hub is not None and self._hub.standby

    def _input_flows(self) -> bool:
        """OBS is live, or the standby picture stands in for it."""
        return self._source.live or self._on_standby()

    def set_enabled(self, enabled: bool) -> None:
        """Idempotent; switching on a retrying relay tries again at once."""
        if enabled and self.status is Status.RETRYING:
            self._fresh_start = True
        self._desired = enabled
        if enabled and self.status is Status.OFF:
            # the answer to the command already says what happens next
            self._set(Status.STARTING if self._input_flows() else Status.WAITING)
        if enabled and (self._task is None or self._task.done()):
            self._task = asyncio.create_task(self._supervise(), name=f"relay-{self.stream.id}")
        self.wake()

    async def close(self) -> None:
        """Switch off and wait until the process is gone."""
        self._desired = False
        self.wake()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._tunnel is not None:
            await self._tunnel.stop()

    async def dispose(self) -> None:
        """Close for good: the relay's stream was removed from the config."""
        await self.close()
        self._source.remove_listener(self.wake)

    # -- supervision --------------------------------------------------------
    def _set(self, status: Status) -> None:
        if status is not self.status:
            log.info("%s: %s -> %s", self.stream.id, self.status.value, status.value)
            self.status = status
            if status not in (Status.LIVE, Status.CONGESTED, Status.HOLDING):
                self._live_since = None
                self.bitrate_kbps = 0.0
            if status in (
                Status.LIVE,
                Status.CONGESTED,
                Status.STANDBY,
                Status.OFF,
                Status.WAITING,
            ):
                self._outage.over()
            self._on_change(self, True)

    async def _sleep_until(self, condition: Callable[[], bool], limit_s: float | None) -> None:
        """Wait for wake-ups until condition() holds or limit_s passes."""
        deadline = None if limit_s is None else time.monotonic() + limit_s
        while not condition():
            self._wake.clear()
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), remaining)

    async def _supervise(self) -> None:
        try:
            while self._desired:
                if not self._input_flows():
                    self._set(Status.WAITING)
                    await self._sleep_until(lambda: not self._desired or self._input_flows(), None)
                    continue
                error = await self._run_once()
                if error is None or not self._desired:
                    continue
                explained = self._explained or relay_errors.other(error)
                self._explained = None
                self.last_error, self.error_kind = error, explained.kind
                self.error_detail = explained.detail
                self.restarts += 1
                log.warning("%s: %s [%s]", self.stream.id, error, explained.kind)
                if self._live_since_last_run >= self.settings.stable_s:
                    # a long run closed by the platform (they end long connections):
                    # back at once, from the keyframe cache, counted as no failure
                    log.info("%s: reconnecting after a long run", self.stream.id)
                    continue
                await self._back_off()
        finally:
            self._set(Status.OFF)

    async def _back_off(self) -> None:
        """Wait before the next try: longer after each failure in a row, up to
        backoff_max_s, and never giving up while the destination is switched on."""
        self.retry_at, is_news = self._outage.failed(datetime.now(UTC))
        if is_news:
            log.error(
                "%s: %d tries failed; still trying every %.0f s at most while it is on",
                self.stream.id,
                self._outage.failures,
                self.settings.backoff_max_s,
            )
        delay = (self.retry_at - datetime.now(UTC)).total_seconds()
        self._fresh_start = False
        if self.status is Status.RETRYING:
            self._on_change(self, True)  # the next try's time is news too
        else:
            self._set(Status.RETRYING)
        try:
            await self._sleep_until(lambda: not self._desired or self._fresh_start, delay)
        finally:
            self.retry_at = None

    async def _codec_problem(self) -> relay_errors.RelayError | None:
        """OBS's codec against this destination and this ffmpeg (cached mode, sent
        as it is: a profile re-encodes)."""
        if self._hub is None or self._feed is not self._hub:
            return None
        codec = self._hub.session_info().video_codec
        if codec in (None, "H.264"):
            return None
        ffmpeg = self.settings.ffmpeg
        if ffmpeg not in _ENHANCED_RTMP_PROBLEMS:
            problem = await ffmpeg_enhanced_rtmp_problem(ffmpeg, self.settings.owner)
            _ENHANCED_RTMP_PROBLEMS[ffmpeg] = problem
        return relay_errors.codec_problem(
            codec, self.stream.video_codecs, _ENHANCED_RTMP_PROBLEMS[ffmpeg]
        )

    async def _run_once(self) -> str | None:
        """Run the process once; None when it ended as wanted, else the reason."""
        cached = self._hub is not None
        problem = await self._codec_problem()
        if problem is not None:
            self._explained = problem
            return problem.headline
        target, tcurl = self.stream.target, None
        self._live_since_last_run = 0.0
        self._explained = None
        self.stderr_tail.clear()  # this run's lines explain this run's end
        if self._tunnel is not None:
            self._tunnel.stderr_tail.clear()
        if self.settings.stunnel is not None and is_rtmps(target):
            if self._tunnel is None:
                self._tunnel = TlsTunnel(
                    self.settings.stunnel, self.settings.owner, self.settings.secrets
                )
            try:
                target, tcurl = await self._tunnel.ensure(target)
            except TunnelError as exc:
                return str(exc)
        return await self._run_ffmpeg(target, tcurl, cached)

    async def _run_ffmpeg(self, target: str, tcurl: str | None, cached: bool) -> str | None:
        argv = build_relay_argv(
            self.settings.ffmpeg, target, None if cached else self.settings.ingest_url, tcurl
        )
        try:
            proc = await process.spawn(argv, self.settings.owner, stdin=cached)
        except OSError as exc:
            return f"cannot start ffmpeg: {exc.strerror or exc}"
        self._proc = proc
        with contextlib.suppress(psutil.Error):
            self._ps = psutil.Process(proc.pid)
            self._ps.cpu_percent(None)
        self._set(Status.STARTING)
        sub = None
        if self._feed is not None:
            assert proc.stdin is not None
            sub = self._feed.subscribe(proc.stdin, self.wake, int(self.stream.max_delay_s * 1000))
            self._sub = sub
            fd = sub.pipe_fd()
            if fd is not None:
                socket_queue.resize_pipe(fd, PIPE_BYTES)
        self._unsent_capped = False
        tasks = [
            asyncio.create_task(self._read_progress(proc)),
            asyncio.create_task(
                process.read_stderr(
                    proc.stderr, self.settings.secrets, self.stderr_tail, self._log_stderr
                )
            ),
            asyncio.create_task(self._notify_exit(proc)),
        ]
        self._stderr_read = tasks[1]
        try:
            return await self._watch(proc, sub)
        finally:
            if sub is not None and self._feed is not None:
                self._feed.unsubscribe(sub)
            self._sub = None
            if self._live_since is not None:
                self._live_since_last_run = time.monotonic() - self._live_since
            if proc.returncode is None:
                await process.stop_process(proc, self.settings.stop_grace_s)
            await cancel_and_wait(*tasks)
            self._proc = None
            self._ps = None

    async def _watch(
        self, proc: asyncio.subprocess.Process, sub: Subscription | None
    ) -> str | None:
        spawned = time.monotonic()
        self._last_growth = spawned
        self._total_size = 0
        held_since: float | None = None
        while True:
            now = time.monotonic()
            if not self._desired:
                how = await process.stop_process(proc, self.settings.stop_grace_s)
                log.info("%s: stopped (%s)", self.stream.id, how)
                return None
            if proc.returncode is not None:
                if not self._source.live:
                    return None  # the ingest ended under a direct-mode relay
                # its last lines explain the exit, which can be noticed before them
                if self._stderr_read is not None:
                    await asyncio.wait([self._stderr_read], timeout=1.0)
                tunnel = list(self._tunnel.stderr_tail) if self._tunnel is not None else []
                return self._explain(
                    relay_errors.exited(
                        [*tunnel, *self.stderr_tail], proc.returncode, self._shown, self.uptime_s
                    )
                )
            if sub is not None and sub.overflow is not None:
                await process.kill_process(proc)
                reason = sub.overflow
                return self._explain(
                    relay_errors.RelayError("stalled", reason, "restarting", reason)
                )
            if not self._source.live:
                if self._hub is None:
                    await process.stop_process(proc, self.settings.stop_grace_s)
                    return None
                held_since = held_since or now
                if self._on_standby():  # the hub ends it after standby.max_s
                    if self._total_size > 0:
                        self._set(Status.STANDBY)
                elif self.status is Status.STANDBY and self._total_size > 0:
                    # standby.max_s are over: stop, as after hold_s
                    log.info("%s: standby over; stopping", self.stream.id)
                    await process.stop_process(proc, self.settings.stop_grace_s)
                    return None
                else:
                    self._set(Status.HOLDING)
                if not self._on_standby() and now - held_since >= self.settings.hold_s:
                    log.info(
                        "%s: ingest gone for %.0f s; stopping", self.stream.id, now - held_since
                    )
                    await process.stop_process(proc, self.settings.stop_grace_s)
                    return None
                self._last_growth = now  # no input, so no output is expected
            else:
                held_since = None
                if self._on_standby() and self._total_size > 0:
                    self._set(Status.STANDBY)  # held by hand while OBS sends
                elif sub is not None and self.status in (Status.LIVE, Status.CONGESTED):
                    sub.downstream_bytes = self._downstream_bytes(proc, sub)
                    sub.link_bytes_per_s = self.bitrate_kbps * 125
                    self._follow_congestion(sub)
                if self._total_size == 0:
                    # a platform that accepts the connection and never answers
                    limit = self.settings.connect_timeout_s
                    if self._hub is None:
                        limit += DIRECT_START_ALLOWANCE_S
                    if now - self._last_growth > limit:
                        await process.kill_process(proc)
                        return self._explain(relay_errors.timed_out(limit, self._shown))
                elif now - self._last_growth > self.settings.stall_s:
                    await process.kill_process(proc)
                    return self._explain(relay_errors.stalled(self.settings.stall_s, self._shown))
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), 0.5)

    def _downstream_bytes(self, proc: asyncio.subprocess.Process, sub: Subscription) -> int:
        """What waits past the relay's feed: in its stdin pipe, and unacknowledged in
        its socket (or its TLS tunnel's) to the platform."""
        fd = sub.pipe_fd()
        in_pipe = socket_queue.pipe_fill(fd) if fd is not None else 0
        pids = [proc.pid]
        if self._tunnel is not None and self._tunnel.pid is not None:
            pids.append(self._tunnel.pid)
        if not self._unsent_capped:
            self._unsent_capped = self._cap_unsent(pids)
        if in_pipe < IDLE_PIPE_BYTES and sub.held_bytes == 0:
            # ffmpeg keeps up with its pipe: its socket takes what it is given, and
            # /proc (every socket of the host's network) is not read for nothing
            return in_pipe
        return in_pipe + (socket_queue.unacked_bytes(pids) or 0)

    def _cap_unsent(self, pids: list[int]) -> bool:
        """Once per run, when its connection is up: at most UNSENT_MAX_BYTES may wait
        unsent in the sockets towards the platform. True once done (or impossible)."""
        global _cap_refused
        try:
            return all(socket_queue.limit_unsent(pid, UNSENT_MAX_BYTES) for pid in pids)
        except OSError as exc:
            if not _cap_refused:
                _cap_refused = True
                log.warning(
                    "cannot cap the relays' unsent socket data (%s): on a slow link the "
                    "delay may exceed max_delay_s by what the kernel buffers",
                    exc.strerror or exc,
                )
            return True

    def _follow_congestion(self, sub: Subscription) -> None:
        """live <-> congested, as the link to the platform keeps up or not."""
        congested = sub.congested()
        if congested and self.status is Status.LIVE:
            log.warning(
                "%s: the link to the platform is too slow: %.1f s behind OBS, whole "
                "keyframe groups are dropped to stay within %.1f s (max_delay_s)",
                self.stream.id,
                sub.delay_ms / 1000,
                self.stream.max_delay_s,
            )
            self._set(Status.CONGESTED)
        elif not congested and self.status is Status.CONGESTED:
            log.info(
                "%s: the link keeps up again (%.0f %% dropped over the last 30 s)",
                self.stream.id,
                sub.dropped_share() * 100,
            )
            self._set(Status.LIVE)

    @property
    def _shown(self) -> str:
        return display_url(self.stream.url, self.stream.key)

    def _explain(self, error: relay_errors.RelayError) -> str:
        """The headline _run_once returns; _supervise takes kind and detail from here."""
        self._explained = error
        return error.headline

    async def _notify_exit(self, proc: asyncio.subprocess.Process) -> None:
        await proc.wait()
        self.wake()

    async def _read_progress(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        parser = ProgressParser()
        meter = BitrateMeter()
        # one read per block rather than one per line: fewer wake-ups at 50 relays
        while chunk := await proc.stdout.read(4096):
            for progress in parser.feed(chunk.decode("utf-8", "replace")):
                if progress.total_size is not None:
                    self._on_progress(meter, progress.total_size)

    def _on_progress(self, meter: BitrateMeter, total_size: int) -> None:
        now = time.monotonic()
        self.bitrate_kbps = meter.add(now, total_size)
        if total_size > self._total_size:
            self._total_size = total_size
            self._last_growth = now
            if self.status in (Status.STARTING, Status.HOLDING, Status.STANDBY):
                status = Status.STANDBY if self._on_standby() else Status.LIVE
                if status is not self.status:
                    self._live_since = self._live_since or now
                    self._set(status)
                    return
        self._on_change(self, False)

    def _log_stderr(self, line: str) -> None:
        # The last line goes into the warning when the process ends; all of them at debug.
        log.debug("%s: ffmpeg: %s", self.stream.id, line)
