"""The command router: every transport (MQTT, HTTP, scheduler, hooks) calls this.

It owns the desired on/off state of each stream and drives one Relay per
stream; time-driven switching is the clock's (clock.py), which calls back like
any transport, and the state file is persistence.py's. Nothing else touches
processes.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from . import process
from .clock import Clock, on_off
from .config import Config, StreamConfig
from .hub import Hub
from .ingest import DirectIngest
from .persistence import StateFile
from .redact import display_url, mask, remember_secrets
from .relay import Relay, RelaySettings
from .reload import ReloadResult, plan_reload
from .timers import Timer
from .tls_tunnel import find_stunnel

log = logging.getLogger(__name__)


class UnknownStreamError(KeyError):
    def __init__(self, stream_id: str) -> None:
        super().__init__(stream_id)
        self.stream_id = stream_id

    def __str__(self) -> str:
        return f"unknown stream '{self.stream_id}'"


@dataclass(frozen=True)
class StreamState:
    id: str
    name: str
    url: str  # key masked
    enabled: bool
    status: str
    bitrate_kbps: float
    pid: int | None
    uptime_s: float
    restarts: int
    cpu_percent: float
    rss_mb: float
    last_error: str | None
    next_change_at: str | None = None  # ISO time of the next timer for this stream
    next_change_to: str | None = None  # "on" or "off"
    version: int = 0  # grows with every change: a client keeps the newest it has seen


@dataclass(frozen=True)
class IngestState:
    mode: str
    live: bool
    bitrate_kbps: float
    last_error: str | None


@dataclass(frozen=True)
class ChangeEvent:
    """'state': enabled, status or timers changed; 'stats': new bitrate figures;
    'ingest': the ingest went live or idle; 'config': streams added or removed."""

    kind: Literal["state", "stats", "ingest", "config"]
    stream_id: str | None = None


Listener = Callable[[ChangeEvent], None]


class Manager:
    def __init__(self, config: Config, relay_overrides: dict[str, float] | None = None) -> None:
        self.config = config
        self.owner = str(config.state_file.resolve())  # marks every process we start
        self._secrets = tuple(config.secrets)
        remember_secrets(self._secrets)  # the log formatter masks these in every line
        self._overrides = relay_overrides or {}
        self._stunnel = find_stunnel(config.ffmpeg.stunnel, config.streams)
        self._listeners: list[Listener] = []
        self._relays: dict[str, Relay] = {}
        self._desired: dict[str, bool] = {}
        self._lock = asyncio.Lock()
        self._clock = Clock(
            config.timezone, lambda: self.stream_ids, self._scheduled_switch, self._persist
        )
        self._version = 0
        self._state_file = StateFile(config.state_file)
        self.hub: Hub | None = None
        self.direct: DirectIngest | None = None
        if config.ingest.mode == "cached":
            self.hub = Hub(config.ffmpeg.path, config.ingest.url, self.owner, list(self._secrets))
            self.hub.add_listener(lambda: self._emit(ChangeEvent("ingest")))
        else:
            self.direct = DirectIngest(config.ingest.url, config.ingest.stat_url)
            self.direct.add_listener(lambda: self._emit(ChangeEvent("ingest")))

    # -- life cycle ---------------------------------------------------------
    async def start(self) -> None:
        process.reap_orphans(self.owner)
        saved = self._state_file.load()
        for stream in self.config.streams:
            self._desired[stream.id] = saved.streams.get(stream.id, stream.enabled)
            self._relays[stream.id] = self._new_relay(stream)
        for stream_id, change in self._clock.catch_up(saved, self.config.schedules).items():
            self._desired[stream_id] = change.enabled
        self._clock.start(self.config.schedules)
        if self.hub is not None:
            self.hub.start()
        if self.direct is not None:
            self.direct.start()
        for stream_id, relay in self._relays.items():
            relay.set_enabled(self._desired[stream_id])
        self._persist()

    async def stop(self) -> None:
        """Stop every relay (in parallel), then the ingest reader."""
        self._clock.stop()
        self._persist()  # pending timers and the time we stopped, for the next start
        await asyncio.gather(*(relay.close() for relay in self._relays.values()))
        if self.hub is not None:
            await self.hub.stop()
        if self.direct is not None:
            await self.direct.stop()

    def _new_relay(self, stream: StreamConfig) -> Relay:
        source: Hub | DirectIngest = self.hub if self.hub is not None else self._direct_source()
        return Relay(stream, self._relay_settings(), source, self.hub, self._relay_changed)

    async def apply_config(self, new: Config) -> ReloadResult:
        """Reconcile streams with a new config; untouched relays keep running.

        Settings outside `streams` and `schedules` need a restart.
        """
        plan = plan_reload(self.config, new)
        async with self._lock:
            self._secrets = tuple(dict.fromkeys([*self._secrets, *new.secrets]))
            remember_secrets(new.secrets)
            if self.hub is not None:
                self.hub.add_secrets(new.secrets)
            for stream_id in plan.removed:
                await self._relays.pop(stream_id).dispose()
                self._clock.cancel(stream_id)
                del self._desired[stream_id]
            for stream in plan.changed:
                await self._relays[stream.id].dispose()
            for stream in plan.renamed:
                self._relays[stream.id].stream = stream
            for stream in plan.added:
                self._desired[stream.id] = stream.enabled
            for stream in [*plan.added, *plan.changed]:
                self._relays[stream.id] = self._new_relay(stream)
                self._relays[stream.id].set_enabled(self._desired[stream.id])
            # keep the config order
            self._relays = {s.id: self._relays[s.id] for s in new.streams}
            self.config = self.config.model_copy(
                update={"streams": new.streams, "schedules": new.schedules}
            )
            self._clock.schedules.install(new.schedules)
            self._persist()
        result = plan.result()
        log.info("config reloaded: %s", result.summary())
        self._emit(ChangeEvent("config"))
        return result

    def _direct_source(self) -> DirectIngest:
        assert self.direct is not None
        return self.direct

    def _relay_settings(self) -> RelaySettings:
        settings = RelaySettings(
            ffmpeg=self.config.ffmpeg.path,
            owner=self.owner,
            secrets=self._secrets,
            ingest_url=self.config.ingest.url,
            hold_s=self.config.ingest.hold_s,
            connect_timeout_s=self.config.ffmpeg.connect_timeout_s,
            stunnel=self._stunnel,
        )
        return dataclasses.replace(settings, **self._overrides)  # type: ignore[arg-type]

    # -- commands -----------------------------------------------------------
    def _relay(self, stream_id: str) -> Relay:
        try:
            return self._relays[stream_id]
        except KeyError:
            raise UnknownStreamError(stream_id) from None

    async def set_enabled(
        self,
        stream_id: str,
        enabled: bool,
        revert_after_s: float | None = None,
        *,
        by_timer: bool = False,
    ) -> StreamState:
        """Switch a stream; with revert_after_s, switch it back after that long.

        A command (not a timer firing) cancels a switch-back still pending for
        the stream; timers set for a time of day stay.
        """
        relay = self._relay(stream_id)
        timers_changed = False
        if not by_timer:
            timers_changed = bool(self._clock.cancel(stream_id, switch_back_only=True))
        if revert_after_s is not None:
            due = datetime.now(UTC) + timedelta(seconds=revert_after_s)
            self._clock.add(stream_id, not enabled, due, switch_back=True)
            timers_changed = True
        async with self._lock:
            changed = self._desired[stream_id] != enabled
            self._desired[stream_id] = enabled
            if changed:
                log.info("%s: switched %s", stream_id, "on" if enabled else "off")
            if changed or timers_changed:
                self._persist()
            relay.set_enabled(enabled)
            if changed or timers_changed:
                self._emit(ChangeEvent("state", stream_id))
        return self.stream_state(stream_id)

    async def toggle(self, stream_id: str, revert_after_s: float | None = None) -> StreamState:
        enabled = not self._relay(stream_id).enabled
        return await self.set_enabled(stream_id, enabled, revert_after_s)

    async def set_all(
        self, enabled: bool, revert_after_s: float | None = None
    ) -> list[StreamState]:
        return [await self.set_enabled(s, enabled, revert_after_s) for s in self._relays]

    # -- timers -------------------------------------------------------------
    def add_timer(self, stream_id: str, enabled: bool, due: datetime) -> Timer:
        self._relay(stream_id)
        timer = self._clock.add(stream_id, enabled, due)
        log.info("%s: timer %s: switch %s at %s", stream_id, timer.id, on_off(enabled), due)
        self._persist()
        self._emit(ChangeEvent("state", stream_id))
        return timer

    def timers(self, stream_id: str) -> list[Timer]:
        self._relay(stream_id)
        return self._clock.pending(stream_id)

    def cancel_timers(self, stream_id: str, timer_id: str | None = None) -> list[Timer]:
        self._relay(stream_id)
        cancelled = self._clock.cancel(stream_id, timer_id)
        if cancelled:
            self._persist()
            self._emit(ChangeEvent("state", stream_id))
        return cancelled

    async def _scheduled_switch(self, stream_id: str, enabled: bool, source: str) -> None:
        if stream_id in self._relays:
            log.info("%s: %s: switching %s", stream_id, source, on_off(enabled))
            await self.set_enabled(stream_id, enabled, by_timer=True)

    def notify_ingest_publishing(self) -> None:
        """An on_publish hook: retry the ingest reader now instead of at its next poll."""
        if self.hub is not None:
            self.hub.poke()
        if self.direct is not None and self.config.ingest.stat_url is None:
            self.direct.set_live(True)

    def notify_ingest_stopped(self) -> None:
        """An on_publish_done hook: relays hold (or wait) now, not after a timeout."""
        if self.hub is not None:
            self.hub.publisher_left()
        if self.direct is not None and self.config.ingest.stat_url is None:
            self.direct.set_live(False)

    # -- queries ------------------------------------------------------------
    @property
    def stream_ids(self) -> list[str]:
        return list(self._relays)

    def stream_state(self, stream_id: str) -> StreamState:
        relay = self._relay(stream_id)
        cpu, rss = relay.process_stats()
        upcoming = self._clock.next_change(stream_id)
        return StreamState(
            id=stream_id,
            name=relay.stream.name,
            url=display_url(relay.stream.url, relay.stream.key),
            enabled=self._desired[stream_id],
            status=relay.status.value,
            bitrate_kbps=relay.bitrate_kbps,
            pid=relay.pid,
            uptime_s=relay.uptime_s,
            restarts=relay.restarts,
            cpu_percent=cpu,
            rss_mb=rss,
            last_error=mask(relay.last_error, self._secrets) if relay.last_error else None,
            next_change_at=upcoming.at.isoformat() if upcoming else None,
            next_change_to=on_off(upcoming.enabled) if upcoming else None,
            version=self._version,
        )

    def snapshot(self) -> list[StreamState]:
        return [self.stream_state(stream_id) for stream_id in self._relays]

    def ingest_state(self) -> IngestState:
        source: Hub | DirectIngest = self.hub if self.hub is not None else self._direct_source()
        return IngestState(
            mode=self.config.ingest.mode,
            live=source.live,
            bitrate_kbps=source.bitrate_kbps,
            last_error=mask(source.last_error, self._secrets) if source.last_error else None,
        )

    # -- notifications ------------------------------------------------------
    def add_listener(self, listener: Listener) -> Callable[[], None]:
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def _emit(self, event: ChangeEvent) -> None:
        self._version += 1
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:
                log.exception("change listener failed")

    def _relay_changed(self, relay: Relay, status_changed: bool) -> None:
        self._emit(ChangeEvent("state" if status_changed else "stats", relay.stream.id))

    # -- persistence --------------------------------------------------------
    @property
    def state_error(self) -> str | None:
        return self._state_file.error

    def _persist(self) -> None:
        self._state_file.save(self._desired, self._clock.pending())
