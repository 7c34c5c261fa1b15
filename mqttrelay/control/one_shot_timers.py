"""One-shot timers that switch a stream on or off at a given time, as
APScheduler date jobs on the service's event loop."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.date import DateTrigger


@dataclass(frozen=True)
class Timer:
    id: str
    stream_id: str
    enabled: bool  # what it switches the stream to
    due: datetime  # timezone-aware
    switch_back: bool = False  # made by duration_s: the next command for the stream cancels it


class Timers:
    """Pending timers; `fire` is called on the event loop when one is due."""

    def __init__(self, scheduler: AsyncIOScheduler, fire: Callable[[Timer], None]) -> None:
        self._scheduler = scheduler
        self._fire = fire
        self._pending: dict[str, Timer] = {}

    def add(
        self,
        stream_id: str,
        enabled: bool,
        due: datetime,
        switch_back: bool = False,
        timer_id: str | None = None,
    ) -> Timer:
        timer = Timer(
            timer_id or uuid.uuid4().hex[:12], stream_id, enabled, due.astimezone(UTC), switch_back
        )
        self._pending[timer.id] = timer
        self._scheduler.add_job(
            self._due,
            DateTrigger(run_date=timer.due),
            args=[timer.id],
            id=f"timer-{timer.id}",
            replace_existing=True,
            misfire_grace_time=None,  # late (a busy loop, a suspended machine) still runs
        )
        return timer

    async def _due(self, timer_id: str) -> None:  # a coroutine: runs on the loop, not a thread
        timer = self._pending.pop(timer_id, None)
        if timer is not None:
            self._fire(timer)

    def pending(self, stream_id: str | None = None) -> list[Timer]:
        timers = list(self._pending.values())
        if stream_id is not None:
            timers = [t for t in timers if t.stream_id == stream_id]
        return sorted(timers, key=lambda t: t.due)

    def cancel(
        self, stream_id: str, timer_id: str | None = None, switch_back_only: bool = False
    ) -> list[Timer]:
        cancelled = []
        for timer in list(self._pending.values()):
            if timer.stream_id != stream_id or (timer_id is not None and timer.id != timer_id):
                continue
            if switch_back_only and not timer.switch_back:
                continue
            del self._pending[timer.id]
            job = self._scheduler.get_job(f"timer-{timer.id}")
            if job is not None:
                job.remove()
            cancelled.append(timer)
        return cancelled
