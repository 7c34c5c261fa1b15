"""The command router: every transport (MQTT, HTTP, the clock, the ingest
hooks) calls this, and only this touches relays.

Desired on/off state in, one Relay per destination driven, changes out as
ChangeEvents. It is given what it needs and holds no config: relays come from
a factory, timers from the clock (through the small Timekeeper it declares),
and the state file is a listener of its events (persistence.py).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, Protocol

from mqttrelay.config import MAIN_SOURCE, IngestMode, StreamConfig
from mqttrelay.control.one_shot_timers import Timer
from mqttrelay.control.reload import ReloadPlan
from mqttrelay.control.views import (
    IngestState,
    SourceState,
    StreamState,
    Upcoming,
    ingest_view,
    on_off,
    stream_view,
)
from mqttrelay.hub.snapshot import SnapshotError
from mqttrelay.hub.source import IngestSource
from mqttrelay.lib.redact import Redactor
from mqttrelay.relays.encoder import EncoderState
from mqttrelay.relays.relay import Relay

log = logging.getLogger(__name__)


class UnknownStreamError(KeyError):
    def __init__(self, stream_id: str) -> None:
        super().__init__(stream_id)
        self.stream_id = stream_id

    def __str__(self) -> str:
        return f"unknown stream '{self.stream_id}'"


@dataclass(frozen=True)
class Sources:
    """Every ingest source's reader by id (`main` first), and the stream names
    OBS publishes them to (the publish hooks name those)."""

    readers: Mapping[str, IngestSource]
    names: Mapping[str, str]  # stream name at the ingest -> source id
    backups: Mapping[str, str] = field(default_factory=dict)  # source id -> backup id
    # source id -> its stream name (sources on the tracks of one publish share one)
    stream_names: Mapping[str, str] = field(default_factory=dict)


class UnknownSourceError(KeyError):
    def __str__(self) -> str:
        return f"unknown source '{self.args[0]}'"


class StandbyError(Exception):
    """The standby cannot be held now; the message says why."""


class StaleVersionError(Exception):
    """The destination was edited after the version the client last saw."""


@dataclass(frozen=True)
class ChangeEvent:
    """'state': enabled, status or timers changed; 'stats': new bitrate figures;
    'ingest': the ingest went live or idle; 'config': streams added or removed."""

    kind: Literal["state", "stats", "ingest", "config"]
    stream_id: str | None = None
    source_id: str | None = None  # 'ingest': which source (None: main's, as before)


Listener = Callable[[ChangeEvent], None]


class Timekeeper(Protocol):
    """What the router needs of the clock (control/clock.py)."""

    def add(self, stream_id: str, enabled: bool, due: datetime) -> Timer: ...

    def switch_back(self, stream_id: str, enabled: bool, after_s: float) -> Timer: ...

    def pending(self, stream_id: str | None = None) -> list[Timer]: ...

    def cancel(
        self, stream_id: str, timer_id: str | None = None, switch_back_only: bool = False
    ) -> list[Timer]: ...

    def next_change(self, stream_id: str) -> Upcoming | None: ...


MakeRelay = Callable[[StreamConfig, Callable[[Relay, bool], None]], Relay]


class Router:
    def __init__(
        self,
        make_relay: MakeRelay,
        source: IngestSource,
        mode: IngestMode,
        clock: Timekeeper,
        profiles: Callable[[], list[EncoderState]] = list,
        sources: Sources | None = None,
        *,
        redactor: Redactor,
    ) -> None:
        """`profiles`: the output profiles' encoders, as they are now; `sources`:
        every ingest source (`source` is `main`'s); `redactor` masks the errors it
        reports."""
        self._make_relay = make_relay
        self._redactor = redactor
        self._profiles = profiles
        self._source = source
        self._mode = mode
        self._clock = clock
        self._listeners: list[Listener] = []
        self._relays: dict[str, Relay] = {}
        self._desired: dict[str, bool] = {}
        self._lock = asyncio.Lock()
        self._version = 0
        self._edited: dict[str, int] = {}  # stream id -> the version of its last edit
        self._sources = sources or Sources({MAIN_SOURCE: source}, {})
        self._listen(self._sources)

    def _listen(self, sources: Sources) -> None:
        self._unlisten: list[Callable[[], None]] = []
        for source_id, reader in sources.readers.items():

            def changed(source_id: str = source_id) -> None:
                self._emit(ChangeEvent("ingest", source_id=source_id))

            reader.add_listener(changed)
            self._unlisten.append(lambda r=reader, c=changed: r.remove_listener(c))  # type: ignore[misc]

    # -- life cycle ---------------------------------------------------------
    def start(self, streams: list[StreamConfig], desired: Mapping[str, bool]) -> None:
        """Make the relays and switch each as `desired` says (else as configured)."""
        for stream in streams:
            self._add(stream, desired.get(stream.id, stream.enabled))

    async def stop(self) -> None:
        """Stop every relay, in parallel, and wait until their processes are gone."""
        await asyncio.gather(*(relay.close() for relay in self._relays.values()))

    # -- destinations ---------------------------------------------------------
    def _add(self, stream: StreamConfig, enabled: bool) -> None:
        self._desired[stream.id] = enabled
        self._relays[stream.id] = self._make_relay(stream, self._relay_changed)
        self._relays[stream.id].set_enabled(enabled)

    async def _remove(self, stream_id: str) -> None:
        await self._relays.pop(stream_id).dispose()
        self._clock.cancel(stream_id)
        del self._desired[stream_id]

    async def reconcile(self, plan: ReloadPlan, order: list[str]) -> None:
        """Apply a reload plan; untouched relays keep running. `order`: the new
        config's stream ids, the order snapshots keep."""
        async with self._lock:
            for stream_id in plan.removed:
                await self._remove(stream_id)
            for stream in plan.changed:  # a new process, the same switch position
                enabled = self._desired[stream.id]
                await self._relays.pop(stream.id).dispose()
                self._add(stream, enabled)
            for stream in plan.renamed:
                self._relays[stream.id].stream = stream
            for stream in plan.added:
                self._add(stream, stream.enabled)
            self._relays = {i: self._relays[i] for i in order}
            self._desired = {i: self._desired[i] for i in order}
        self._emit(ChangeEvent("config"))
        for stream in [*plan.changed, *plan.renamed, *plan.added]:
            self._edited[stream.id] = self._version
        for stream_id in plan.removed:
            self._edited.pop(stream_id, None)

    def check_version(self, stream_id: str, seen: int) -> None:
        """Raise StaleVersionError if the stream was edited after version `seen`."""
        self._relay(stream_id)
        if self._edited.get(stream_id, 0) > seen:
            raise StaleVersionError(
                f"'{stream_id}' was changed by someone else since version {seen}: "
                "load it again and repeat the change"
            )

    async def replace_engine(
        self,
        make_relay: MakeRelay,
        source: IngestSource,
        mode: IngestMode,
        sources: Sources | None = None,
    ) -> None:
        """Other ingest readers (a mode change): every relay is made again on the new
        ones, each switched as it was; the caller stops the old readers."""
        async with self._lock:
            await asyncio.gather(*(relay.dispose() for relay in self._relays.values()))
            for unlisten in self._unlisten:
                unlisten()
            self._make_relay, self._source, self._mode = make_relay, source, mode
            self._sources = sources or Sources({MAIN_SOURCE: source}, {})
            self._listen(self._sources)
            streams = [relay.stream for relay in self._relays.values()]
            self._relays = {}
            for stream in streams:
                self._add(stream, self._desired[stream.id])
        self._emit(ChangeEvent("ingest"))

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
            self._clock.switch_back(stream_id, not enabled, revert_after_s)
            timers_changed = True
        async with self._lock:
            changed = self._desired[stream_id] != enabled
            self._desired[stream_id] = enabled
            if changed:
                log.info("%s: switched %s", stream_id, "on" if enabled else "off")
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
        self._emit(ChangeEvent("state", stream_id))
        return timer

    def timers(self, stream_id: str) -> list[Timer]:
        self._relay(stream_id)
        return self._clock.pending(stream_id)

    def cancel_timers(self, stream_id: str, timer_id: str | None = None) -> list[Timer]:
        self._relay(stream_id)
        cancelled = self._clock.cancel(stream_id, timer_id)
        if cancelled:
            self._emit(ChangeEvent("state", stream_id))
        return cancelled

    async def switch(self, stream_id: str, enabled: bool, source: str) -> None:
        if stream_id in self._relays:
            log.info("%s: %s: switching %s", stream_id, source, on_off(enabled))
            await self.set_enabled(stream_id, enabled, by_timer=True)

    def _reader_named(self, name: str | None) -> IngestSource:
        """The source OBS publishes to under `name` (a hook's); none or unknown: main."""
        source_id = self._sources.names.get(name or "", MAIN_SOURCE)
        return self._sources.readers.get(source_id, self._source)

    def notify_ingest_publishing(self, name: str | None = None) -> None:
        """An on_publish hook: retry the ingest reader now instead of at its next poll."""
        self._reader_named(name).publisher_started()

    def notify_ingest_stopped(self, name: str | None = None) -> None:
        """An on_publish_done hook: relays hold (or wait) now, not after a timeout."""
        self._reader_named(name).publisher_stopped()

    # -- queries ------------------------------------------------------------
    @property
    def stream_ids(self) -> list[str]:
        return list(self._relays)

    def desired(self) -> dict[str, bool]:
        """Each stream's switch position, as the state file keeps it."""
        return dict(self._desired)

    def stream_state(self, stream_id: str) -> StreamState:
        relay = self._relay(stream_id)
        return stream_view(
            relay,
            self._desired[stream_id],
            self._clock.next_change(stream_id),
            self._version,
            self._redactor,
        )

    def profiles(self) -> list[EncoderState]:
        return self._profiles()

    def snapshot(self) -> list[StreamState]:
        return [self.stream_state(stream_id) for stream_id in self._relays]

    def _reader(self, source_id: str) -> IngestSource:
        try:
            return self._sources.readers[source_id]
        except KeyError:
            raise UnknownSourceError(source_id) from None

    def ingest_state(self, source_id: str = MAIN_SOURCE) -> IngestState:
        return ingest_view(self._reader(source_id), self._mode, self._redactor)

    @property
    def source_ids(self) -> list[str]:
        """Every ingest source's id, `main` first."""
        return [MAIN_SOURCE, *(i for i in self._sources.readers if i != MAIN_SOURCE)]

    def source_state(self, source_id: str) -> SourceState:
        reader = self._reader(source_id)
        names = {i: name for name, i in self._sources.names.items()} | dict(
            self._sources.stream_names
        )
        return SourceState(
            id=source_id,
            name=names.get(source_id, ""),
            backup=self._sources.backups.get(source_id),
            on_backup=bool(getattr(reader, "on_backup", False)),
            backup_problem=getattr(reader, "backup_problem", None),
            streams=[i for i, relay in self._relays.items() if relay.stream.source == source_id],
            ingest=self.ingest_state(source_id),
        )

    def sources(self) -> list[SourceState]:
        return [self.source_state(source_id) for source_id in self._sources.readers]

    async def ingest_snapshot(self, source_id: str = MAIN_SOURCE) -> bytes:
        """A JPEG of what OBS sends now; raises SnapshotError, saying why, if none."""
        jpeg = await self._reader(source_id).snapshot()
        if jpeg is None:
            raise SnapshotError(f"the ingest picture needs ingest.mode: cached (not {self._mode})")
        return jpeg

    def hold_standby(self, on: bool) -> IngestState:
        """ "Be right back" (on) or back (off), for every relay of this host."""
        reason = self._source.hold_standby(on)
        for reader in self._sources.readers.values():
            if reader is not self._source and reason is None:
                reader.hold_standby(on)  # each source's own card
        if reason is not None:
            raise StandbyError(reason)
        return self.ingest_state()

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
