"""One destination's ffmpeg: when it runs (the restarts and their backoff are
lib/supervisor.py's), the stall and hold watch, its status and stats."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime

from mqttrelay.config import IngestMode, StreamConfig
from mqttrelay.ffmpeg import BitrateMeter, ProgressParser, build_relay_argv
from mqttrelay.ffmpeg.check import ffmpeg_enhanced_rtmp_problem
from mqttrelay.hub.hub import Hub
from mqttrelay.hub.source import Feed, LiveSignal
from mqttrelay.hub.subscription import Subscription
from mqttrelay.lib.redact import display_url
from mqttrelay.lib.supervisor import (
    ChildProcess,
    Ended,
    Phase,
    StartError,
    Supervisor,
    stderr_reader,
)
from mqttrelay.relays import relay_errors
from mqttrelay.relays.link_watch import LinkWatch, follow_congestion
from mqttrelay.relays.outage import Outage
from mqttrelay.relays.relay_settings import RelaySettings as RelaySettings
from mqttrelay.relays.status import Status
from mqttrelay.relays.tls_tunnel import TlsTunnel, TunnelError, is_rtmps

log = logging.getLogger(__name__)

# Direct mode first waits for the ingest's next keyframe and probes it (an OBS
# default of 250 frames is 8.3 s at 30 fps) before it connects to the platform.
DIRECT_START_ALLOWANCE_S = 15.0
# what each ffmpeg cannot carry of Enhanced RTMP (ffmpeg_check), asked once per path
_ENHANCED_RTMP_PROBLEMS: dict[str, str | None] = {}


class Relay:
    """Keeps one destination's ffmpeg running while it is enabled."""

    def __init__(
        self,
        stream: StreamConfig,
        settings: RelaySettings,
        source: LiveSignal,
        hub: Hub | None,
        on_change: Callable[[Relay, bool], None],
        feed: Feed | None = None,
    ) -> None:
        """`source`: is OBS there; `hub`: its cache (cached mode), None in direct
        mode, where the relay pulls settings.ingest_url itself; `feed`: where its
        stdin is fed from in cached mode, the hub (OBS's stream as it is) or a
        profile's encoder; by default the hub."""
        self.stream = stream
        self.settings = settings
        self._source = source
        self._hub = hub
        self._mode: IngestMode = "cached" if hub is not None else "direct"
        self._feed: Feed | None = feed if feed is not None else hub
        self._on_change = on_change
        self._wake = asyncio.Event()
        self._desired = False
        self.status = Status.OFF
        self.last_error: str | None = None  # reason: hint (relay_errors.py)
        self.error_kind: relay_errors.ErrorKind | None = None
        self.error_detail: str | None = None  # the masked raw lines behind last_error
        self._explained: relay_errors.RelayError | None = None  # of the run's reason
        self.retry_at: datetime | None = None  # the next attempt, while retrying
        self._outage = Outage(
            settings.backoff_first_s, settings.backoff_max_s,
            settings.max_failures, settings.problem_after_s,
        )  # fmt: skip
        self._sub: Subscription | None = None  # its place in the fan-out, while it runs
        self._link = LinkWatch()
        self.bitrate_kbps = 0.0
        self.stderr_tail: deque[str] = deque(maxlen=20)
        self._child: ChildProcess | None = None  # the last ffmpeg (pid None once it ended)
        self._sup: Supervisor[ChildProcess] = Supervisor(
            f"relay-{stream.id}", self._start_run, self._after_failure, watch=self._watch_run,
            wanted=lambda: self._desired, ready=self._input_flows, on_state=self._on_phase,
        )  # fmt: skip
        self._live_since: float | None = None
        self._last_growth = 0.0
        self._total_size = 0
        self._live_since_last_run = 0.0
        stunnel = settings.stunnel  # rtmps:// destinations' tunnel, kept between runs
        self._tunnel = TlsTunnel(stunnel, settings.owner, settings.redactor) if stunnel else None
        source.add_listener(self.wake)

    # -- control ------------------------------------------------------------
    @property
    def enabled(self) -> bool:
        return self._desired

    @property
    def pid(self) -> int | None:
        return self._child.pid if self._child is not None else None

    @property
    def restarts(self) -> int:
        return self._sup.restarts

    @property
    def uptime_s(self) -> float:
        return round(time.monotonic() - self._live_since, 1) if self._live_since else 0.0

    def process_stats(self) -> tuple[float, float]:
        """(cpu percent since the last call, resident memory in MB) of the process."""
        return self._child.usage() if self._child is not None else (0.0, 0.0)

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
        self._sup.wake()

    def _on_standby(self) -> bool:
        return self._hub is not None and self._hub.standby

    def _input_flows(self) -> bool:
        """OBS is live, or the standby picture stands in for it."""
        return self._source.live or self._on_standby()

    def set_enabled(self, enabled: bool) -> None:
        """Idempotent; switching on a retrying relay tries again at once."""
        if enabled and self.status is Status.RETRYING:
            self._sup.retry_now()
        self._desired = enabled
        if enabled and self.status is Status.OFF:
            # the answer to the command already says what happens next
            self._set(Status.STARTING if self._input_flows() else Status.WAITING)
        if enabled:
            self._sup.start()
        self.wake()

    async def close(self) -> None:
        """Switch off and wait until the process is gone."""
        self._desired = False
        self.wake()
        await self._sup.join()
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

    def _on_phase(self, phase: Phase) -> None:
        if phase is not Phase.RETRYING:
            self.retry_at = None  # the pause is over
        if phase is Phase.STARTING and self.status is Status.RETRYING:
            self._set(Status.STARTING)  # not "retrying" with no time while the try starts
        elif phase is Phase.WAITING:
            self._set(Status.WAITING)
        elif phase is Phase.STOPPED:
            self._set(Status.OFF)

    def _after_failure(self, ended: Ended) -> float:
        """Say why the run failed; the pause before the next try is longer after each
        failure in a row, up to backoff_max_s, and trying never ends while it is on."""
        error = ended.reason
        explained = self._explained or relay_errors.other(error)
        self._explained = None
        self.last_error, self.error_kind = error, explained.kind
        self.error_detail = explained.detail
        log.warning("%s: %s [%s]", self.stream.id, error, explained.kind)
        if self._live_since_last_run >= self.settings.stable_s:
            # a long run closed by the platform (they end long connections):
            # back at once, from the keyframe cache, counted as no failure
            log.info("%s: reconnecting after a long run", self.stream.id)
            return 0.0
        self.retry_at, is_news = self._outage.failed(datetime.now(UTC))
        if is_news:
            log.error(
                "%s: %d tries failed; still trying every %.0f s at most while it is on",
                self.stream.id, self._outage.failures, self.settings.backoff_max_s,
            )  # fmt: skip
        delay = (self.retry_at - datetime.now(UTC)).total_seconds()
        if self.status is Status.RETRYING:
            self._on_change(self, True)  # the next try's time is news too
        else:
            self._set(Status.RETRYING)
        return delay

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

    async def _start_run(self) -> ChildProcess:
        """Start ffmpeg (through its tunnel for rtmps://); StartError says why not."""
        problem = await self._codec_problem()
        if problem is not None:
            self._explained = problem
            raise StartError(problem.headline)
        target, tcurl = self.stream.target, None
        self._live_since_last_run = 0.0
        self._explained = None
        self.stderr_tail.clear()  # this run's lines explain this run's end
        if self._tunnel is not None:
            self._tunnel.stderr_tail.clear()
            try:
                if is_rtmps(target):
                    target, tcurl = await self._tunnel.ensure(target)
            except TunnelError as exc:
                raise StartError(str(exc)) from None
        argv = build_relay_argv(
            self.settings.ffmpeg, target, self._mode, self.settings.ingest_url, tcurl
        )
        stderr = stderr_reader(self.settings.redactor, self.stderr_tail, self._log_stderr)
        child = await ChildProcess.spawn(
            argv, self.settings.owner, "ffmpeg", stdin=self._mode == "cached",
            grace_s=self.settings.stop_grace_s, readers=[self._read_progress, stderr],
            on_exit=self.wake, measure=True,
        )  # fmt: skip
        self._child = child
        self._set(Status.STARTING)
        if self._feed is not None:
            assert child.proc.stdin is not None
            max_delay_ms = int(self.stream.max_delay_s * 1000)
            self._sub = self._feed.subscribe(child.proc.stdin, self.wake, max_delay_ms)
            self._link.started(self._sub)
        return child

    async def _watch_run(self, child: ChildProcess) -> str | None:
        """The run to its end; None when it ended as wanted, else the reason."""
        sub = self._sub
        try:
            return await self._watch(child, sub)
        finally:
            if sub is not None and self._feed is not None:
                self._feed.unsubscribe(sub)
            self._sub = None
            if self._live_since is not None:
                self._live_since_last_run = time.monotonic() - self._live_since

    async def _watch(self, child: ChildProcess, sub: Subscription | None) -> str | None:
        self._last_growth = time.monotonic()
        self._total_size = 0
        held_since: float | None = None
        while True:
            now = time.monotonic()
            if not self._desired:
                how = await child.stop()
                log.info("%s: stopped (%s)", self.stream.id, how)
                return None
            if child.returncode is not None:
                if not self._source.live:
                    return None  # the ingest ended under a direct-mode relay
                await child.drained(1.0)  # its last lines explain the exit
                tunnel = list(self._tunnel.stderr_tail) if self._tunnel is not None else []
                return self._explain(
                    relay_errors.exited(
                        [*tunnel, *self.stderr_tail], child.returncode, self._shown, self.uptime_s
                    )
                )
            if sub is not None and sub.overflow is not None:
                await child.kill()
                reason = sub.overflow
                return self._explain(
                    relay_errors.RelayError("stalled", reason, "restarting", reason)
                )
            if not self._source.live:
                if self._mode == "direct":  # no standby, no hold: the pull ends with OBS
                    await child.stop()
                    return None
                held_since = held_since or now
                if self._on_standby():  # the hub ends it after standby.max_s
                    if self._total_size > 0:
                        self._set(Status.STANDBY)
                elif self.status is Status.STANDBY and self._total_size > 0:
                    # standby.max_s are over: stop, as after hold_s
                    log.info("%s: standby over; stopping", self.stream.id)
                    await child.stop()
                    return None
                else:
                    self._set(Status.HOLDING)
                if not self._on_standby() and now - held_since >= self.settings.hold_s:
                    log.info(
                        "%s: ingest gone for %.0f s; stopping", self.stream.id, now - held_since
                    )
                    await child.stop()
                    return None
                self._last_growth = now  # no input, so no output is expected
            else:
                held_since = None
                if self._on_standby() and self._total_size > 0:
                    self._set(Status.STANDBY)  # held by hand while OBS sends
                elif sub is not None and self.status in (Status.LIVE, Status.CONGESTED):
                    tunnel_pid = self._tunnel.pid if self._tunnel is not None else None
                    self._link.update(sub, (child.proc.pid, tunnel_pid), self.bitrate_kbps)
                    self._set(follow_congestion(self.stream, self.status, sub))
                if self._total_size == 0:
                    # a platform that accepts the connection and never answers
                    limit = self.settings.connect_timeout_s
                    if self._mode == "direct":
                        limit += DIRECT_START_ALLOWANCE_S
                    if now - self._last_growth > limit:
                        await child.kill()
                        return self._explain(relay_errors.timed_out(limit, self._shown))
                elif now - self._last_growth > self.settings.stall_s:
                    await child.kill()
                    return self._explain(relay_errors.stalled(self.settings.stall_s, self._shown))
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), 0.5)

    @property
    def _shown(self) -> str:
        return display_url(self.stream.url, self.stream.key)

    def _explain(self, error: relay_errors.RelayError) -> str:
        """The headline _watch returns; _after_failure takes kind and detail from here."""
        self._explained = error
        return error.headline

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
