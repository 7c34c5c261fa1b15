"""Schedules and timers: DST, instants in the configured zone, catch-up after a
downtime, persistence, no duplicate jobs; one real run against a real relay.

Time is controlled by passing `now` to the pure functions (APScheduler's own
trigger API takes it as an argument), never by sleeping until a date."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from mqttrelay.app import Service
from mqttrelay.config import Config, ScheduleConfig
from mqttrelay.control.schedule_times import build_trigger, fire_times, missed_changes, next_changes
from mqttrelay.control.state import SavedState, SavedTimer, load_state, save_state

from .kit import Ingest, both_ingests, make_config, wait_gone, wait_ingest_live, wait_publishing
from .support import NginxRtmp, Publisher, free_port

PARIS = ZoneInfo("Europe/Paris")
NEW_YORK = ZoneInfo("America/New_York")


def cron(expr: str, stream: str = "tiktok", action: str = "on") -> ScheduleConfig:
    return ScheduleConfig.model_validate({"stream": stream, "action": action, "cron": expr})


def local(times: list[datetime], tz: ZoneInfo) -> list[str]:
    return [t.astimezone(tz).isoformat(timespec="minutes") for t in times]


def test_weekly_cron_fires_at_local_time_in_winter_and_summer() -> None:
    trigger = build_trigger(cron("0 19 * * fri"), PARIS)
    winter = fire_times(
        trigger, datetime(2026, 11, 24, tzinfo=UTC), datetime(2026, 12, 5, tzinfo=UTC)
    )
    assert local(winter, PARIS) == ["2026-11-27T19:00+01:00", "2026-12-04T19:00+01:00"]
    assert winter[0] == datetime(2026, 11, 27, 18, 0, tzinfo=UTC)
    summer = fire_times(trigger, datetime(2026, 6, 1, tzinfo=UTC), datetime(2026, 6, 6, tzinfo=UTC))
    assert summer == [datetime(2026, 6, 5, 17, 0, tzinfo=UTC)]


def test_skipped_time_runs_once_shifted_and_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    trigger = build_trigger(cron("30 2 * * *"), PARIS)  # 2026-03-29: 02:00 -> 03:00
    times = fire_times(
        trigger, datetime(2026, 3, 28, tzinfo=PARIS), datetime(2026, 3, 31, tzinfo=PARIS)
    )
    assert local(times, PARIS) == [
        "2026-03-28T02:30+01:00",
        "2026-03-29T03:30+02:00",
        "2026-03-30T02:30+02:00",
    ]
    assert "2026-03-29 02:30 does not exist in Europe/Paris" in caplog.text
    assert "runs at 03:30 instead" in caplog.text


def test_repeated_time_runs_once_and_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    trigger = build_trigger(cron("30 1 * * *"), NEW_YORK)  # 2026-11-01: 02:00 -> 01:00
    start = datetime(2026, 10, 31, 12, tzinfo=NEW_YORK)
    times = fire_times(trigger, start, datetime(2026, 11, 2, 12, tzinfo=NEW_YORK))
    assert local(times, NEW_YORK) == ["2026-11-01T01:30-04:00", "2026-11-02T01:30-05:00"]
    # what the scheduler asks right after the first run, during the repeated hour
    first = times[0]
    again = trigger.get_next_fire_time(first, first + timedelta(minutes=1))
    assert again is not None and again.astimezone(NEW_YORK).day == 2
    assert "2026-11-01 01:30 happens twice in America/New_York" in caplog.text


def test_hourly_schedule_through_the_repeated_hour_never_goes_back() -> None:
    trigger = build_trigger(cron("*/20 1-2 * * *"), NEW_YORK)
    start = datetime(2026, 11, 1, 0, 30, tzinfo=NEW_YORK)
    times = fire_times(trigger, start, datetime(2026, 11, 1, 3, 0, tzinfo=NEW_YORK))
    assert times == sorted(times) and len(set(times)) == len(times)
    walls = [t.astimezone(NEW_YORK).strftime("%H:%M") for t in times]
    assert walls == ["01:00", "01:20", "01:40", "02:00", "02:20", "02:40"]


def test_missed_changes_apply_the_state_in_force_once() -> None:
    schedules = [cron("0 19 * * fri", "all", "on"), cron("0 21 * * fri", "tiktok", "off")]
    streams = ["tiktok", "youtube"]
    friday = datetime(2026, 11, 27, tzinfo=PARIS)
    down_across_both = missed_changes(
        schedules, PARIS, streams, friday.replace(hour=18), friday.replace(hour=22)
    )
    assert {k: (c.enabled, c.at.astimezone(PARIS).hour) for k, c in down_across_both.items()} == {
        "tiktok": (False, 21),
        "youtube": (True, 19),
    }
    across_start_only = missed_changes(
        schedules, PARIS, streams, friday.replace(hour=18), friday.replace(hour=20)
    )
    assert across_start_only["tiktok"].enabled is True
    nothing = missed_changes(
        schedules, PARIS, streams, friday.replace(hour=19, minute=5), friday.replace(hour=20)
    )
    assert nothing == {}
    upcoming = next_changes(schedules, PARIS, streams, friday.replace(hour=20))
    assert upcoming["tiktok"].enabled is False and upcoming["youtube"].enabled is True


def offline_config(tmp_path: Path, schedules: list[dict[str, object]], tz: str = "UTC") -> Config:
    return Config.model_validate(
        {
            "timezone": tz,
            "state_file": str(tmp_path / "state.json"),
            "ingest": {"url": f"rtmp://127.0.0.1:{free_port()}/live/stream"},
            "mqtt": {"enabled": False},
            "streams": [
                {"id": s, "url": "rtmp://127.0.0.1:9/app", "key": "k-123456"}
                for s in ("tiktok", "youtube")
            ],
            "schedules": schedules,
        }
    )


async def test_restart_recreates_jobs_without_duplicates(
    tmp_path: Path, services: Callable[[Config], Service]
) -> None:
    config = offline_config(
        tmp_path,
        [
            {"stream": "tiktok", "action": "on", "cron": "0 19 * * fri"},
            {"stream": "all", "action": "off", "cron": "0 21 * * fri"},
        ],
    )
    for _ in range(3):
        service = services(config)
        router = service.router
        await service.start()
        assert service.clock.schedules.job_ids == ["schedule-0", "schedule-1"]
        await service.runtime.reload(config)  # a reload re-installs, never adds
        assert service.clock.schedules.job_ids == ["schedule-0", "schedule-1"]
        state = router.stream_state("youtube")
        assert state.next_change_to == "off" and state.next_change_at is not None
        await service.stop()


async def test_downtime_catch_up_applies_once_and_logs(
    tmp_path: Path,
    services: Callable[[Config], Service],
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = datetime.now(UTC)
    config = offline_config(
        tmp_path,
        [{"stream": "tiktok", "action": "on", "at": (now - timedelta(hours=1)).isoformat()}],
    )
    save_state(
        config.state_file,
        SavedState(
            streams={"tiktok": False, "youtube": False},
            timers=[
                SavedTimer("due1", "youtube", True, now - timedelta(minutes=10)),
                SavedTimer("later1", "youtube", False, now + timedelta(hours=3)),
            ],
            last_seen=now - timedelta(hours=2),
        ),
    )
    first_service = services(config)
    first = first_service.router
    await first_service.start()
    assert first.stream_state("tiktok").enabled  # the 'at' schedule ran while down
    assert first.stream_state("youtube").enabled  # so did timer due1
    assert [t.id for t in first.timers("youtube")] == ["later1"]  # kept across the restart
    assert caplog.text.count("while mqttrelay was down") == 2
    await first.set_enabled("tiktok", False)  # the user decides otherwise
    await first_service.stop()

    caplog.clear()
    second_service = services(config)
    second = second_service.router
    await second_service.start()
    assert not second.stream_state("tiktok").enabled  # not replayed
    assert "while mqttrelay was down" not in caplog.text
    assert [t.id for t in second.timers("youtube")] == ["later1"]
    saved = load_state(config.state_file)
    assert [t.id for t in saved.timers] == ["later1"] and saved.last_seen is not None


async def test_commands_cancel_switch_back_but_keep_timers(
    tmp_path: Path, services: Callable[[Config], Service]
) -> None:
    service = services(offline_config(tmp_path, []))
    router = service.router
    await service.start()
    await router.set_enabled("tiktok", True, revert_after_s=600)
    router.add_timer("tiktok", False, datetime.now(UTC) + timedelta(hours=1))
    assert len(router.timers("tiktok")) == 2
    await router.set_enabled("tiktok", True)  # a new command: the switch-back goes
    remaining = router.timers("tiktok")
    assert len(remaining) == 1 and not remaining[0].switch_back


async def test_schedule_job_fires_through_apscheduler(
    tmp_path: Path, services: Callable[[Config], Service]
) -> None:
    due = datetime.now(UTC) + timedelta(seconds=2)
    service = services(
        offline_config(tmp_path, [{"stream": "all", "action": "on", "at": due.isoformat()}])
    )
    router = service.router
    await service.start()
    assert not router.stream_state("tiktok").enabled
    for _ in range(100):
        if router.stream_state("tiktok").enabled and router.stream_state("youtube").enabled:
            break
        await asyncio.sleep(0.1)
    assert router.stream_state("tiktok").enabled and router.stream_state("youtube").enabled


@pytest.mark.integration
@both_ingests()
async def test_a_timer_switches_a_real_relay_off(
    tmp_path: Path,
    ingest: Ingest,
    platforms: NginxRtmp,
    publisher: Publisher,
    services: Callable[[Config], Service],
) -> None:
    config = make_config(tmp_path, ingest, platforms, ["tiktok"])
    service = services(config)
    router = service.router
    await service.start()
    await wait_ingest_live(router)
    key = config.streams[0].target.rsplit("/", 1)[1]
    await router.set_enabled("tiktok", True)
    await wait_publishing(platforms, key)
    router.add_timer("tiktok", False, datetime.now(UTC) + timedelta(seconds=2))
    await wait_gone(platforms, key, deadline_s=30)
    assert not router.stream_state("tiktok").enabled
    assert router.timers("tiktok") == []
