"""The service as users run it, for the resilience tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from ..kit import CANARY_KEY
from ..support import Mosquitto, NginxRtmp, ServiceProcess, free_port

STREAMS = ["facebook", "tiktok", "youtube", "onestream", "kick"]


def service_config(
    tmp_path: Path, ingest: NginxRtmp, platforms: NginxRtmp, broker: Mosquitto
) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "state_file": "state.json",
                "ingest": {"url": ingest.url("stream"), "hold_s": 10},
                "mqtt": {"port": broker.port},
                "api": {"port": free_port()},
                "streams": [
                    {
                        "id": s,
                        "url": f"rtmp://127.0.0.1:{platforms.rtmp_port}/dest",
                        "key": f"{s}-{CANARY_KEY}",
                    }
                    for s in STREAMS
                ],
            }
        )
    )
    return path


@pytest.fixture
def service(
    tmp_path: Path, ingest: NginxRtmp, platforms: NginxRtmp, broker: Mosquitto
) -> Iterator[ServiceProcess]:
    config = service_config(tmp_path, ingest, platforms, broker)
    svc = ServiceProcess(config, tmp_path / "service.log")
    svc.start()
    svc.wait_api()
    yield svc
    svc.stop()
    svc.cleanup()
