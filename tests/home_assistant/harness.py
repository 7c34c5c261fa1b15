"""A real Home Assistant (2026.2, in .ha-venv, see scripts/setup-home-assistant)
for tests: its MQTT integration on the test broker, HTTP on loopback only, and
automations that let a test see and drive it over MQTT alone:
`hatest/states` (every entity's state, JSON, every second), `hatest/call`
({"action": "switch.turn_on", "entity_id": "..."}) and `hatest/perform`
({"action": "text.set_value", "data": {...}}: any action with its data)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest

from ..support import free_port, wait_port

ROOT = Path(__file__).resolve().parents[2]
HASS = ROOT / ".ha-venv" / "bin" / "hass"

CONFIGURATION = """\
homeassistant:
  name: mqttrelay test
  time_zone: UTC
  latitude: 0
  longitude: 0
  elevation: 0
  unit_system: metric
  country: FR
  currency: EUR
  language: en
http:
  server_host: 127.0.0.1
  server_port: {http_port}
logger:
  default: info
automation: !include automations.yaml
"""

AUTOMATIONS = """\
- id: report_states
  alias: report states
  mode: single
  triggers:
    - trigger: time_pattern
      seconds: "/1"
  actions:
    - action: mqtt.publish
      data:
        topic: hatest/states
        payload: >-
          {%- set ns = namespace(d={}) -%}
          {%- set domains = ['switch', 'sensor', 'binary_sensor', 'image', 'text'] -%}
          {%- for s in states if s.domain in domains -%}
          {%- set ns.d = dict(ns.d, **{s.entity_id: s.state}) -%}
          {%- endfor -%}
          {{ ns.d | tojson }}
- id: call
  alias: call
  mode: queued
  triggers:
    - trigger: mqtt
      topic: hatest/call
  actions:
    - action: "{{ trigger.payload_json.action }}"
      target:
        entity_id: "{{ trigger.payload_json.entity_id }}"
- id: perform
  alias: perform
  mode: queued
  triggers:
    - trigger: mqtt
      topic: hatest/perform
  actions:
    - action: "{{ trigger.payload_json.action }}"
      data: "{{ trigger.payload_json.data }}"
"""


def _config_entries(broker_host: str, broker_port: int) -> str:
    entry = {
        "entry_id": "01MQTTRELAYTESTMQTT000000",
        "version": 1,
        "minor_version": 2,
        "domain": "mqtt",
        "title": broker_host,
        "data": {"broker": broker_host, "port": broker_port},
        "options": {},
        "source": "user",
        "unique_id": None,
        "disabled_by": None,
    }
    # an older storage minor version: Home Assistant fills in the newer keys itself
    return json.dumps(
        {"version": 1, "minor_version": 1, "key": "core.config_entries",
         "data": {"entries": [entry]}}
    )  # fmt: skip


class HomeAssistant:
    def __init__(
        self, folder: Path, broker_host: str, broker_port: int, extra_config: str = ""
    ) -> None:
        """`extra_config`: more of configuration.yaml (files it names go in `folder`)."""
        if not HASS.exists():
            message = "Home Assistant is not installed: run scripts/setup-home-assistant"
            pytest.fail(message) if os.environ.get("CI") else pytest.skip(message)
        self.folder = folder
        self.http_port = free_port()
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "configuration.yaml").write_text(
            CONFIGURATION.format(http_port=self.http_port) + extra_config
        )
        (folder / "automations.yaml").write_text(AUTOMATIONS)
        (folder / ".storage").mkdir(exist_ok=True)
        (folder / ".storage" / "core.config_entries").write_text(
            _config_entries(broker_host, broker_port)
        )
        self.log = folder / "home-assistant.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, argv_prefix: list[str] | None = None) -> None:
        self.proc = subprocess.Popen(
            [*(argv_prefix or []), str(HASS), "-c", str(self.folder), "--skip-pip",
             "--log-file", str(self.log)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip

    def wait_http(self, deadline_s: float = 180) -> None:
        wait_port(self.http_port, deadline_s)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def mqtt_complaints(self) -> list[str]:
        """Every WARNING or ERROR line of its MQTT integration."""
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return [
            line
            for line in text.splitlines()
            if ("WARNING" in line or "ERROR" in line) and "homeassistant.components.mqtt" in line
        ]
