"""Time-driven switching: one-shot timers, the config's schedules, the change
missed while mqttrelay was down, and the "next change" of each stream.

The clock owns the APScheduler instance on the service's event loop. It reaches
the router only through the `switch` callback it is given (stream, on/off,
source), exactly as MQTT or HTTP would, and says through `on_change` when its
pending timers changed (for the state file) or a heartbeat is due."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from mqttrelay.config import ScheduleConfig
from mqttrelay.control.config_schedules import ConfigSchedules, catch_up
from mqttrelay.control.one_shot_timers import Timer, Timers
from mqttrelay.control.schedule_times import Change
from mqttrelay.control.state import SavedState

log = logging.getLogger(__name__)
HEARTBEAT_S = 60  # how often the state file notes that the service still runs
Switch = Callable[[str, bool, str], Coroutine[Any, Any, None]]
Now = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


def on_off(enabled: bool) -> str:
    return "on" if enabled else "off"


class Clock:
    def __init__(
        self,
        timezone: str,
        stream_ids: Callable[[], list[str]],
        switch: Switch,
        on_change: Callable[[], None],
        now: Now = utc_now,
    ) -> None:
        """`on_change`: the pending timers changed, or a heartbeat is due (the state
        file notes both); `now`: the time catch-up and "next change" are taken at."""
        self.tz = ZoneInfo(timezone)
        self._stream_ids = stream_ids
        self._switch = switch
        self._on_change = on_change
        self._now = now
        self._scheduler = AsyncIOScheduler(timezone=self.tz, event_loop=asyncio.get_running_loop())
        self._timers = Timers(self._scheduler, self._timer_due)
        self.schedules = ConfigSchedules(self._scheduler, self.tz, stream_ids, switch, now)
        self._background: set[asyncio.Task[None]] = set()

    # -- life cycle ---------------------------------------------------------
    def catch_up(
        self,
        saved: SavedState,
        schedules: list[ScheduleConfig],
        stream_ids: list[str] | None = None,
    ) -> dict[str, Change]:
        """Set the saved timers still ahead again, and return, per stream, the one
        change that should be in force now after a downtime (never a replay).

        `stream_ids`: the streams about to start, when the router has none yet."""
        ids = self._stream_ids() if stream_ids is None else stream_ids
        latest, ahead = catch_up(saved, schedules, self.tz, ids, self._now())
        for t in ahead:
            self._timers.add(t.stream_id, t.enabled, t.due, t.switch_back, timer_id=t.id)
        for stream_id, change in latest.items():
            log.warning(
                "%s: while mqttrelay was down, %s was due at %s to switch it %s: applying it now",
                stream_id,
                change.source,
                change.at.astimezone(self.tz).isoformat(timespec="minutes"),
                on_off(change.enabled),
            )
        return latest

    def start(self, schedules: list[ScheduleConfig]) -> None:
        self.schedules.install(schedules)
        self._scheduler.add_job(self._on_change, "interval", seconds=HEARTBEAT_S, id="last-seen")
        self._scheduler.start()

    def stop(self) -> None:
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)

    # -- timers ---------------------------------------------------------------
    def add(self, stream_id: str, enabled: bool, due: datetime, switch_back: bool = False) -> Timer:
        return self._timers.add(stream_id, enabled, due, switch_back)

    def switch_back(self, stream_id: str, enabled: bool, after_s: float) -> Timer:
        """The timer of a command with duration_s; the stream's next command cancels it."""
        due = self._now() + timedelta(seconds=after_s)
        return self._timers.add(stream_id, enabled, due, switch_back=True)

    def pending(self, stream_id: str | None = None) -> list[Timer]:
        return self._timers.pending(stream_id)

    def cancel(
        self, stream_id: str, timer_id: str | None = None, switch_back_only: bool = False
    ) -> list[Timer]:
        return self._timers.cancel(stream_id, timer_id, switch_back_only)

    def _timer_due(self, timer: Timer) -> None:
        if timer.stream_id in self._stream_ids():
            task = asyncio.create_task(
                self._switch(timer.stream_id, timer.enabled, f"timer {timer.id}")
            )
            self._background.add(task)
            task.add_done_callback(self._background.discard)
        self._on_change()

    def next_change(self, stream_id: str) -> Change | None:
        """The next timer or schedule that will switch this stream."""
        candidates = [
            Change(t.stream_id, t.enabled, t.due, f"timer {t.id}")
            for t in self._timers.pending(stream_id)[:1]
        ]
        scheduled = self.schedules.next_change(stream_id)
        if scheduled is not None:
            candidates.append(scheduled)
        return min(candidates, key=lambda c: c.at) if candidates else None
