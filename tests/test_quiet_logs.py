"""`mqttrelay run` with nothing happening says nothing after it started: the
journal shows what mqttrelay did, not the scheduler's housekeeping."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
import yaml

from .support import Mosquitto, ServiceProcess, free_port

pytestmark = pytest.mark.integration
QUIET_S = float(os.environ.get("MQTTRELAY_QUIET_SECONDS", "180"))


def test_three_quiet_minutes_log_nothing(tmp_path: Path, broker: Mosquitto) -> None:
    config = tmp_path / "config.yaml"
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
    service = ServiceProcess(config, tmp_path / "service.log")
    service.start()
    try:
        service.wait_api()
        deadline = time.monotonic() + 30
        while "mqttrelay running" not in service.log.read_text():
            assert time.monotonic() < deadline, service.log.read_text()
            time.sleep(0.2)
        time.sleep(3)  # MQTT's first connection and discovery belong to the start
        started = service.log.read_text()
        time.sleep(QUIET_S)
        later = service.log.read_text()[len(started) :]
    finally:
        assert service.stop() == 0
        service.cleanup()
    assert later == "", f"logged while nothing happened:\n{later}"
    assert "apscheduler" not in started and "Running job" not in started, started
