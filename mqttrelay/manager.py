"""The command router: every transport (MQTT, HTTP, scheduler, hooks) calls this.

It owns the desired on/off state of each stream, persists it, and drives one
Relay per stream. Nothing else touches processes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from . import process
from .config import Config
from .ffmpeg import display_url, mask
from .hub import Hub
from .ingest import DirectIngest
from .relay import Relay, RelaySettings
from .state import StateFileError, load_state, save_state

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


@dataclass(frozen=True)
class IngestState:
    mode: str
    live: bool
    bitrate_kbps: float
    last_error: str | None


@dataclass(frozen=True)
class ChangeEvent:
    """kind 'state': enabled or status changed; 'stats': new bitrate figures."""

    kind: Literal["state", "stats", "ingest"]
    stream_id: str | None = None


Listener = Callable[[ChangeEvent], None]


class Manager:
    def __init__(self, config: Config, relay_overrides: dict[str, float] | None = None) -> None:
        self.config = config
        self._owner = str(config.state_file.resolve())
        self._secrets = tuple(config.secrets)
        self._overrides = relay_overrides or {}
        self._listeners: list[Listener] = []
        self._relays: dict[str, Relay] = {}
        self._desired: dict[str, bool] = {}
        self._lock = asyncio.Lock()
        self._reverts: dict[str, asyncio.TimerHandle] = {}
        self._background: set[asyncio.Task[StreamState]] = set()
        self.state_error: str | None = None
        self.hub: Hub | None = None
        self.direct: DirectIngest | None = None
        if config.ingest.mode == "cached":
            self.hub = Hub(config.ffmpeg.path, config.ingest.url, self._owner, list(self._secrets))
            self.hub.add_listener(lambda: self._emit(ChangeEvent("ingest")))
        else:
            self.direct = DirectIngest(config.ingest.url, config.ingest.stat_url)
            self.direct.add_listener(lambda: self._emit(ChangeEvent("ingest")))

    # -- life cycle ---------------------------------------------------------
    async def start(self) -> None:
        process.reap_orphans(self._owner)
        try:
            saved = load_state(self.config.state_file)
        except StateFileError as exc:
            log.error("%s; using each stream's 'enabled' from the config", exc)
            saved = {}
        for stream in self.config.streams:
            self._desired[stream.id] = saved.get(stream.id, stream.enabled)
            self._relays[stream.id] = Relay(
                stream,
                self._relay_settings(),
                self.hub if self.hub is not None else self._direct_source(),
                self.hub,
                self._relay_changed,
            )
        if self.hub is not None:
            self.hub.start()
        if self.direct is not None:
            self.direct.start()
        for stream_id, relay in self._relays.items():
            relay.set_enabled(self._desired[stream_id])
        self._persist()

    async def stop(self) -> None:
        """Stop every relay (in parallel), then the ingest reader."""
        for stream_id in list(self._reverts):
            self._cancel_revert(stream_id)
        await asyncio.gather(*(relay.close() for relay in self._relays.values()))
        if self.hub is not None:
            await self.hub.stop()
        if self.direct is not None:
            await self.direct.stop()

    def _direct_source(self) -> DirectIngest:
        assert self.direct is not None
        return self.direct

    def _relay_settings(self) -> RelaySettings:
        return RelaySettings(
            ffmpeg=self.config.ffmpeg.path,
            owner=self._owner,
            secrets=self._secrets,
            ingest_url=self.config.ingest.url,
            hold_s=self.config.ingest.hold_s,
            **self._overrides,  # type: ignore[arg-type]
        )

    # -- commands -----------------------------------------------------------
    def _relay(self, stream_id: str) -> Relay:
        try:
            return self._relays[stream_id]
        except KeyError:
            raise UnknownStreamError(stream_id) from None

    async def set_enabled(
        self, stream_id: str, enabled: bool, revert_after_s: float | None = None
    ) -> StreamState:
        """Switch a stream; with revert_after_s, switch it back after that long.

        Any command for a stream cancels the switch-back still pending for it.
        """
        relay = self._relay(stream_id)
        self._cancel_revert(stream_id)
        if revert_after_s is not None:
            self._reverts[stream_id] = asyncio.get_running_loop().call_later(
                revert_after_s, self._revert, stream_id, not enabled
            )
        async with self._lock:
            changed = self._desired[stream_id] != enabled
            self._desired[stream_id] = enabled
            if changed:
                log.info("%s: switched %s", stream_id, "on" if enabled else "off")
                self._persist()
            relay.set_enabled(enabled)
            if changed:
                self._emit(ChangeEvent("state", stream_id))
        return self.stream_state(stream_id)

    async def toggle(self, stream_id: str, revert_after_s: float | None = None) -> StreamState:
        enabled = not self._relay(stream_id).enabled
        return await self.set_enabled(stream_id, enabled, revert_after_s)

    async def set_all(
        self, enabled: bool, revert_after_s: float | None = None
    ) -> list[StreamState]:
        return [await self.set_enabled(s, enabled, revert_after_s) for s in self._relays]

    def pending_revert(self, stream_id: str) -> float | None:
        """Seconds until a pending switch-back, if any."""
        handle = self._reverts.get(stream_id)
        if handle is None:
            return None
        return max(0.0, handle.when() - asyncio.get_running_loop().time())

    def _cancel_revert(self, stream_id: str) -> None:
        handle = self._reverts.pop(stream_id, None)
        if handle is not None:
            handle.cancel()

    def _revert(self, stream_id: str, enabled: bool) -> None:
        self._reverts.pop(stream_id, None)
        if stream_id in self._relays:
            log.info("%s: timer: switching %s", stream_id, "on" if enabled else "off")
            task = asyncio.create_task(self.set_enabled(stream_id, enabled))
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    def notify_ingest_publishing(self) -> None:
        """An on_publish hook: retry the ingest reader now instead of at its next poll."""
        if self.hub is not None:
            self.hub.poke()
        if self.direct is not None and self.config.ingest.stat_url is None:
            self.direct.set_live(True)

    # -- queries ------------------------------------------------------------
    @property
    def stream_ids(self) -> list[str]:
        return list(self._relays)

    def stream_state(self, stream_id: str) -> StreamState:
        relay = self._relay(stream_id)
        cpu, rss = relay.process_stats()
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
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:
                log.exception("change listener failed")

    def _relay_changed(self, relay: Relay, status_changed: bool) -> None:
        self._emit(ChangeEvent("state" if status_changed else "stats", relay.stream.id))

    # -- persistence --------------------------------------------------------
    def _persist(self) -> None:
        try:
            save_state(self.config.state_file, dict(self._desired))
        except OSError as exc:
            # Keep relaying: the running state is right, only the file is stale.
            message = f"cannot write state file {self.config.state_file}: {exc.strerror or exc}"
            if message != self.state_error:
                log.error("%s", message)
            self.state_error = message
        else:
            if self.state_error is not None:
                log.info("state file written again")
            self.state_error = None
