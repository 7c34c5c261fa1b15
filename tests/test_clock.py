"""The clock on its own: it reaches the router only through the callbacks it is given."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from mqttrelay.clock import Clock
from mqttrelay.config import ScheduleConfig
from mqttrelay.state import SavedState, SavedTimer


async def test_timers_switch_through_the_callback_and_report_changes() -> None:
    switched: list[tuple[str, bool, str]] = []
    changes: list[int] = []

    async def switch(stream_id: str, enabled: bool, source: str) -> None:
        switched.append((stream_id, enabled, source))

    clock = Clock("Europe/Paris", lambda: ["tiktok"], switch, lambda: changes.append(1))
    clock.start([])
    try:
        timer = clock.add("tiktok", True, datetime.now(UTC) + timedelta(seconds=0.2))
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

    clock = Clock("UTC", lambda: ["tiktok", "youtube"], switch, lambda: None)
    now = datetime.now(UTC)
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
