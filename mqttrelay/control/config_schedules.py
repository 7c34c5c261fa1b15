"""The config's schedules as APScheduler jobs that call the router back."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from mqttrelay.config import ScheduleConfig
from mqttrelay.control.schedule_times import (
    Change,
    build_trigger,
    missed_changes,
    next_changes,
    targets,
)
from mqttrelay.control.state import SavedState, SavedTimer

log = logging.getLogger(__name__)
JOB_PREFIX = "schedule-"
Switch = Callable[[str, bool, str], Awaitable[None]]


class ConfigSchedules:
    def __init__(
        self,
        scheduler: AsyncIOScheduler,
        tz: ZoneInfo,
        stream_ids: Callable[[], list[str]],
        switch: Switch,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._now = now
        self._scheduler = scheduler
        self._tz = tz
        self._stream_ids = stream_ids
        self._switch = switch
        self._schedules: list[ScheduleConfig] = []
        self._next: dict[str, Change] | None = None

    def install(self, schedules: list[ScheduleConfig]) -> None:
        """(Re)create one job per schedule; fixed ids, so never a duplicate."""
        for job in self._scheduler.get_jobs():
            if job.id.startswith(JOB_PREFIX):
                job.remove()
        self._schedules = list(schedules)
        self._next = None
        now = self._now()
        for n, schedule in enumerate(self._schedules):
            if schedule.at is not None and build_trigger(schedule, self._tz).run_date <= now:
                continue  # in the past: the start-up catch-up has dealt with it
            self._scheduler.add_job(
                self._run,
                build_trigger(schedule, self._tz),
                args=[n],
                id=f"{JOB_PREFIX}{n}",
                replace_existing=True,
                coalesce=True,  # one run, however many were missed while the loop was busy
                misfire_grace_time=300,
            )

    @property
    def job_ids(self) -> list[str]:
        return sorted(j.id for j in self._scheduler.get_jobs() if j.id.startswith(JOB_PREFIX))

    async def _run(self, n: int) -> None:  # a coroutine: runs on the loop, not a thread
        schedule = self._schedules[n]
        self._next = None
        for stream_id in targets(schedule, self._stream_ids()):
            await self._switch(stream_id, schedule.action == "on", f"schedules[{n}]")

    def next_change(self, stream_id: str) -> Change | None:
        now = self._now()
        if self._next is None or any(c.at <= now for c in self._next.values()):
            self._next = next_changes(self._schedules, self._tz, self._stream_ids(), now)
        return self._next.get(stream_id)


def catch_up(
    saved: SavedState,
    schedules: list[ScheduleConfig],
    tz: ZoneInfo,
    stream_ids: list[str],
    now: datetime,
) -> tuple[dict[str, Change], list[SavedTimer]]:
    """After a downtime: per stream, the latest change that came due while
    mqttrelay was not running (a saved timer, or a schedule since last_seen),
    and the saved timers still ahead, to set again."""
    latest: dict[str, Change] = {}
    ahead: list[SavedTimer] = []
    for t in saved.timers:
        if t.stream_id not in stream_ids:
            continue
        if t.due > now:
            ahead.append(t)
        elif t.stream_id not in latest or t.due >= latest[t.stream_id].at:
            latest[t.stream_id] = Change(t.stream_id, t.enabled, t.due, f"timer {t.id}")
    if saved.last_seen is not None:
        for stream_id, change in missed_changes(
            schedules, tz, stream_ids, saved.last_seen, now
        ).items():
            if stream_id not in latest or change.at >= latest[stream_id].at:
                latest[stream_id] = change
    return latest, ahead
