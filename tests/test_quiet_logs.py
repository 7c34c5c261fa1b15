"""`mqttrelay run` with nothing happening says nothing after it started: the
journal shows what mqttrelay did, not the scheduler's housekeeping.

The quiet minutes pass while the rest of the suite runs: the service starts in
the session's first test (marker `early`) and its log is read in the last one
(marker `late`), which waits only for what is left of QUIET_S and reads the
lines of those QUIET_S alone (by their time stamps). The service has its own
broker, ports and state file; nothing else talks to it. Run alone, the last
test waits the whole QUIET_S."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

import pytest
import yaml

from .support import ServiceProcess, free_port, make_mosquitto

# One xdist worker holds both tests: the session fixture lives in one process.
pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.xdist_group("quiet")]
QUIET_S = float(os.environ.get("MQTTRELAY_QUIET_SECONDS", "180"))


@dataclass
class QuietService:
    service: ServiceProcess
    started: str  # the log up to the end of its start
    since: float  # time.monotonic() then
    since_wall: datetime  # the same, as the log's local time stamps tell it


@pytest.fixture(scope="session")
def quiet_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[QuietService]:
    folder = tmp_path_factory.mktemp("quiet")
    broker = make_mosquitto(folder / "mosquitto")
    broker.start()
    config = folder / "config.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "state_file": "state.json",
                "ingest": {"url": f"rtmp://127.0.0.1:{free_port()}/live/stream"},
                "mqtt": {"port": broker.port},
                "api": {"port": free_port()},
                "schedules": [{"stream": "all", "action": "off", "cron": "0 3 * * *"}],
                "streams": [{"id": "youtube", "url": "rtmp://127.0.0.1:1/dest", "key": "k-123456"}],
            }
        )
    )
    service = ServiceProcess(config, folder / "service.log")
    service.start()
    try:
        service.wait_api()
        deadline = time.monotonic() + 30
        while "mqttrelay running" not in service.log.read_text():
            assert time.monotonic() < deadline, service.log.read_text()
            time.sleep(0.2)
        time.sleep(3)  # MQTT's first connection and discovery belong to the start
        yield QuietService(service, service.log.read_text(), time.monotonic(), datetime.now())
    finally:
        assert service.stop() == 0
        service.cleanup()
        broker.kill()


@pytest.mark.early
def test_the_start_says_nothing_of_the_scheduler(quiet_service: QuietService) -> None:
    started = quiet_service.started
    assert "apscheduler" not in started and "Running job" not in started, started


@pytest.mark.late
def test_three_quiet_minutes_log_nothing(quiet_service: QuietService) -> None:
    left = QUIET_S - (time.monotonic() - quiet_service.since)
    time.sleep(max(0.0, left))
    later = quiet_service.service.log.read_text()[len(quiet_service.started) :]
    window = within(later, quiet_service.since_wall + timedelta(seconds=QUIET_S))
    assert window == "", f"logged while nothing happened:\n{window}"


def within(log: str, until: datetime) -> str:
    """The lines logged up to `until` (a line without a time stamp goes with the
    line before it)."""
    kept: list[str] = []
    stamp: datetime | None = None
    for line in log.splitlines(keepends=True):
        with contextlib.suppress(ValueError):
            stamp = datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f")
        if stamp is None or stamp <= until:
            kept.append(line)
    return "".join(kept)
