"""Config schedules as APScheduler 3 triggers, with daylight-saving rules, and
the catch-up of changes missed while mqttrelay was down (no I/O here).

DST rules (documented in docs/schedules.md):
- a time the clock skips (02:30 when 02:00-03:00 does not exist) runs once,
  at the same instant an hour-shifted clock shows (03:30), and is logged;
- a time the clock shows twice (01:30 in New York, 02:30 in Paris when the
  clock goes back) runs once, the first time, and the second is logged.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.date import DateTrigger

from mqttrelay.config import ScheduleConfig

log = logging.getLogger(__name__)
CATCH_UP_WINDOW = timedelta(days=35)  # further back, a missed change is stale
CATCH_UP_MAX_STEPS = 20_000
UTC_ZONE = ZoneInfo("UTC")


def _wall(moment: datetime) -> datetime:
    return moment.replace(tzinfo=None, fold=0)


def _utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC_ZONE)


def wall_time_exists(moment: datetime) -> bool:
    """False for a local time inside a spring-forward gap."""
    tz = moment.tzinfo
    assert tz is not None
    round_trip = moment.astimezone(UTC_ZONE).astimezone(tz)
    return _wall(round_trip) == _wall(moment)


class DstSafeCronTrigger(BaseTrigger):  # type: ignore[misc]
    """A five-field cron schedule in a time zone, by the wall clock.

    APScheduler 3's CronTrigger can run a repeated hour twice, or cycle, on
    the day clocks go back. This one finds the next wall-clock match with a
    CronTrigger on UTC (which has no DST), then places it in the zone: the
    first occurrence of a repeated time, the shifted instant of a skipped one.
    """

    def __init__(self, expression: str, tz: tzinfo) -> None:
        self.expression = expression
        self.tz = tz
        self._wall_trigger = CronTrigger.from_crontab(expression, timezone=UTC_ZONE)

    def __str__(self) -> str:
        return f"cron[{self.expression}]"

    def get_next_fire_time(
        self, previous_fire_time: datetime | None, now: datetime
    ) -> datetime | None:
        if previous_fire_time is not None:
            self._note_repeat(previous_fire_time, now)
        probe = _wall(now.astimezone(self.tz)).replace(tzinfo=UTC_ZONE)
        for _ in range(CATCH_UP_MAX_STEPS):
            wall_fire: datetime | None = self._wall_trigger.get_next_fire_time(None, probe)
            if wall_fire is None:
                return None
            local = wall_fire.replace(tzinfo=self.tz, fold=0)
            # compare instants: datetimes of one zone compare by wall clock, ignoring fold
            late = _utc(local) < _utc(now) or (
                previous_fire_time is not None and _utc(local) <= _utc(previous_fire_time)
            )
            if not late:
                instant = local.astimezone(UTC_ZONE).astimezone(self.tz)
                if not wall_time_exists(local):
                    log.info(
                        "%s does not exist in %s (clocks go forward): %s runs at %s instead",
                        _wall(local).strftime("%Y-%m-%d %H:%M"),
                        self.tz,
                        self,
                        instant.strftime("%H:%M"),
                    )
                return instant
            probe = wall_fire + timedelta(seconds=1)
        return None

    def _note_repeat(self, previous: datetime, now: datetime) -> None:
        wall = _wall(previous.astimezone(self.tz))
        first = _utc(wall.replace(tzinfo=self.tz, fold=0))
        second = _utc(wall.replace(tzinfo=self.tz, fold=1))
        if first != second and _utc(now) < second:
            log.info(
                "%s happens twice in %s (clocks go back): %s runs the first time only",
                wall.strftime("%Y-%m-%d %H:%M"),
                self.tz,
                self,
            )


def build_trigger(schedule: ScheduleConfig, tz: tzinfo) -> BaseTrigger:
    if schedule.cron is not None:
        return DstSafeCronTrigger(schedule.cron, tz)
    assert schedule.at is not None
    at = schedule.at if schedule.at.tzinfo else schedule.at.replace(tzinfo=tz)
    return DateTrigger(run_date=at, timezone=tz)


def fire_times(
    trigger: BaseTrigger, start: datetime, end: datetime, max_steps: int = CATCH_UP_MAX_STEPS
) -> list[datetime]:
    """Fire times in (start, end], in order (bounded)."""
    times: list[datetime] = []
    previous = None
    now = start + timedelta(microseconds=1)
    for _ in range(max_steps):
        fire = trigger.get_next_fire_time(previous, now)
        if fire is None or _utc(fire) > _utc(end):
            break
        if _utc(fire) > _utc(start):  # a date trigger answers its date, even a past one
            times.append(fire)
        previous, now = fire, fire + timedelta(seconds=1)
    return times


@dataclass(frozen=True)
class Change:
    stream_id: str
    enabled: bool
    at: datetime
    source: str  # what decided it, for logs


def targets(schedule: ScheduleConfig, stream_ids: list[str]) -> list[str]:
    return list(stream_ids) if schedule.stream == "all" else [schedule.stream]


def missed_changes(
    schedules: list[ScheduleConfig],
    tz: tzinfo,
    stream_ids: list[str],
    since: datetime,
    now: datetime,
) -> dict[str, Change]:
    """Per stream, the latest scheduled change in (since, now]: the one in force now."""
    start = max(_utc(since), _utc(now) - CATCH_UP_WINDOW)
    latest: dict[str, Change] = {}
    for n, schedule in enumerate(schedules):
        times = fire_times(build_trigger(schedule, tz), start, now)
        if not times:
            continue
        for stream_id in targets(schedule, stream_ids):
            change = Change(stream_id, schedule.action == "on", times[-1], f"schedules[{n}]")
            if stream_id not in latest or _utc(change.at) >= _utc(latest[stream_id].at):
                latest[stream_id] = change
    return latest


def next_changes(
    schedules: list[ScheduleConfig], tz: tzinfo, stream_ids: list[str], now: datetime
) -> dict[str, Change]:
    """Per stream, the next scheduled change after now."""
    upcoming: dict[str, Change] = {}
    for n, schedule in enumerate(schedules):
        fire = build_trigger(schedule, tz).get_next_fire_time(None, now)
        if fire is None or _utc(fire) <= _utc(now):
            continue
        for stream_id in targets(schedule, stream_ids):
            change = Change(stream_id, schedule.action == "on", fire, f"schedules[{n}]")
            if stream_id not in upcoming or _utc(change.at) < _utc(upcoming[stream_id].at):
                upcoming[stream_id] = change
    return upcoming
