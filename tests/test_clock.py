"""The clock on its own, with an explicit clock (`now`) where the result depends
on the time: it reaches the router only through the callbacks it is given."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from mqttrelay.config import ScheduleConfig
from mqttrelay.control.clock import Clock
from mqttrelay.control.state import SavedState, SavedTimer


async def test_timers_switch_through_the_callback_and_report_changes() -> None:
    switched: list[tuple[str, bool, str]] = []
    changes: list[int] = []

    async def switch(stream_id: str, enabled: bool, source: str) -> None:
        switched.append((stream_id, enabled, source))

    clock = Clock("Europe/Paris", lambda: ["tiktok"], switch, lambda: changes.append(1))
    clock.start([])
    try:
        timer = clock.add("tiktok", True, datetime.now(UTC))  # due now: APScheduler fires it
        assert clock.next_change("tiktok") is not None
        for _ in range(50):
            if switched:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.05)
        assert switched == [("tiktok", True, f"timer {timer.id}")]
        assert changes and clock.pending() == []
    finally:
        clock.stop()


async def test_catch_up_applies_the_latest_missed_change_and_keeps_timers_ahead() -> None:
    async def switch(stream_id: str, enabled: bool, source: str) -> None:
        raise AssertionError("catch-up applies, it does not switch")

    now = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
    clock = Clock("UTC", lambda: ["tiktok", "youtube"], switch, lambda: None, now=lambda: now)
    saved = SavedState(
        streams={},
        timers=[
            SavedTimer("old", "tiktok", True, now - timedelta(hours=2), False),
            SavedTimer("ahead", "youtube", False, now + timedelta(hours=1), False),
        ],
        last_seen=now - timedelta(hours=3),
    )
    every_hour_off = ScheduleConfig(stream="tiktok", action="off", cron="0 * * * *")
    latest = clock.catch_up(saved, [every_hour_off])
    # the schedule ran after the timer while mqttrelay was down: off wins, once
    assert latest["tiktok"].enabled is False and "youtube" not in latest
    assert [t.id for t in clock.pending()] == ["ahead"]


async def test_a_switch_back_is_due_its_duration_after_the_clocks_now() -> None:
    async def switch(stream_id: str, enabled: bool, source: str) -> None:
        raise AssertionError("not due yet")

    now = datetime(2026, 12, 24, 18, 0, tzinfo=UTC)
    clock = Clock("Europe/Paris", lambda: ["tiktok"], switch, lambda: None, now=lambda: now)
    timer = clock.switch_back("tiktok", False, 90)
    assert timer.due == now + timedelta(seconds=90) and timer.switch_back
    upcoming = clock.next_change("tiktok")
    assert upcoming is not None and upcoming.at == timer.due and upcoming.enabled is False
    clock.add("tiktok", True, now + timedelta(hours=1))  # a timer for a time of day stays
    assert [t.id for t in clock.cancel("tiktok", switch_back_only=True)] == [timer.id]
    assert [t.due for t in clock.pending("tiktok")] == [now + timedelta(hours=1)]


async def test_next_change_and_installed_schedules_follow_the_clocks_now() -> None:
    async def switch(stream_id: str, enabled: bool, source: str) -> None:
        raise AssertionError("not due yet")

    now = datetime(2026, 12, 4, 18, 30, tzinfo=UTC)  # a Friday, 19:30 in Paris
    clock = Clock("Europe/Paris", lambda: ["tiktok"], switch, lambda: None, now=lambda: now)
    past = ScheduleConfig(stream="tiktok", action="on", at=now - timedelta(minutes=1))
    friday_off = ScheduleConfig(stream="all", action="off", cron="0 21 * * fri")
    clock.schedules.install([past, friday_off])
    assert clock.schedules.job_ids == ["schedule-1"]  # a one-off in the past: catch-up's
    upcoming = clock.next_change("tiktok")
    assert upcoming is not None and upcoming.enabled is False
    assert upcoming.at == datetime(2026, 12, 4, 20, 0, tzinfo=UTC)  # 21:00 in Paris
    assert clock.catch_up(SavedState(last_seen=now), [past, friday_off], ["tiktok"]) == {}
