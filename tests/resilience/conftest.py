"""The service as users run it, for the resilience tests."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
import yaml

from ..conftest import CANARY_KEY
from ..support import Mosquitto, NginxRtmp, free_port, owned_processes, wait_port

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


class Service:
    """`mqttrelay run` as a user starts it, which the test may kill and start again."""

    def __init__(self, config: Path, log: Path) -> None:
        self.config = config
        self.log = log
        self.port = int(yaml.safe_load(config.read_text())["api"]["port"])
        self.proc: subprocess.Popen[bytes] | None = None
        self.cwd = config.parent / "cwd"  # where a stray relative file would land
        self.cwd.mkdir(exist_ok=True)

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "mqttrelay", "run", "--config", str(self.config)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, cwd=self.cwd,
            )  # fmt: skip
        wait_port(self.port, 30)

    @property
    def ps(self) -> psutil.Process:
        assert self.proc is not None
        return psutil.Process(self.proc.pid)

    def stop(self) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.terminate()
        return self.proc.wait(30)


@pytest.fixture
def service(
    tmp_path: Path, ingest: NginxRtmp, platforms: NginxRtmp, broker: Mosquitto
) -> Iterator[Service]:
    svc = Service(service_config(tmp_path, ingest, platforms, broker), tmp_path / "service.log")
    svc.start()
    yield svc
    svc.stop()
    for leftover in owned_processes(tmp_path / "state.json"):
        leftover.kill()
