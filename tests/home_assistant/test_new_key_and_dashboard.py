"""The streamer's side in a real Home Assistant 2026.2: the "new key" box
re-keys the live relay (the key in no MQTT state topic and no log line), and
the ready dashboard (ha_dashboards/mqttrelay.yaml) loads as Home Assistant
loads a YAML dashboard, names only entities that exist, and its "Stop
everything" switches every destination off."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ..kit import CANARY_KEY, Collector, collector
from ..support import Mosquitto, NginxRtmp, Publisher, eventually, stat_streams
from .harness import ROOT, HomeAssistant
from .test_home_assistant import (
    expected_entities,
    ha_states,
    relay_beside_home_assistant,
    relay_config,
    turn,
    wait_ha,
)

pytestmark = pytest.mark.home_assistant

DASHBOARD = ROOT / "ha_dashboards" / "mqttrelay.yaml"
PYTHON = ROOT / ".ha-venv" / "bin" / "python"
NEW_KEY = f"broadcast-2-{CANARY_KEY}"
# configuration.yaml's part that installs the dashboard, as its comments say
DASHBOARD_CONFIG = """\
lovelace:
  dashboards:
    mqttrelay-studio:
      mode: yaml
      filename: mqttrelay.yaml
      title: Streaming
      icon: mdi:broadcast
      show_in_sidebar: true
"""
# Home Assistant's recorder keeps every action's data, a new key too (seen in
# 2026.2: a call_service event holding text.set_value's value): the README's advice
RECORDER_CONFIG = """\
recorder:
  commit_interval: 1
  exclude:
    event_types:
      - call_service
"""
# Run by .ha-venv's Python: the dashboard entry checked by lovelace's
# CONFIG_SCHEMA, the file read by LovelaceYAML (what serves a YAML dashboard).
LOADER = """\
import asyncio, json, sys
from pathlib import Path
import yaml
from homeassistant.components.lovelace import CONFIG_SCHEMA
from homeassistant.components.lovelace.dashboard import LovelaceYAML
from homeassistant.core import HomeAssistant

async def main(folder):
    conf = CONFIG_SCHEMA(yaml.safe_load(Path(folder, "configuration.yaml").read_text()))
    entry = conf["lovelace"]["dashboards"]["mqttrelay-studio"]
    hass = HomeAssistant(folder)
    dashboard = LovelaceYAML(hass, "mqttrelay-studio", entry)
    config = await dashboard.async_load(True)
    info = await dashboard.async_get_info()
    await hass.async_stop(force=True)
    print(json.dumps({"info": info, "config": config}))

asyncio.run(main(sys.argv[1]))
"""


def load_dashboard(folder: Path) -> dict[str, Any]:
    """The dashboard as Home Assistant's own loader reads it (from `folder`,
    with DASHBOARD_CONFIG as its configuration.yaml)."""
    if not PYTHON.exists():
        pytest.fail("Home Assistant is not installed: run scripts/setup-home-assistant")
    done = subprocess.run(
        [str(PYTHON), "-c", LOADER, str(folder)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    loaded: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return loaded


def cards(node: Any) -> Iterator[dict[str, Any]]:
    """Every card, card feature and entities row, however deep."""
    if isinstance(node, dict):
        if "type" in node or "entity" in node:
            yield node
        for value in node.values():
            yield from cards(value)
    elif isinstance(node, list):
        for item in node:
            yield from cards(item)


def entity_ids(config: dict[str, Any]) -> set[str]:
    return {c["entity"] for c in cards(config) if isinstance(c.get("entity"), str)}


def install_dashboard(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(DASHBOARD, folder / "mqttrelay.yaml")
    (folder / "configuration.yaml").write_text(DASHBOARD_CONFIG)
    return folder


def test_the_dashboard_loads_as_home_assistant_loads_it(tmp_path: Path) -> None:
    loaded = load_dashboard(install_dashboard(tmp_path / "ha"))
    assert loaded["info"] == {"mode": "yaml", "views": 1}
    config = loaded["config"]
    # what the frontend of 2026.2 draws: every card type and tile feature is one of its own
    scripts = (ROOT / ".ha-venv" / "lib").glob("python3*/site-packages/hass_frontend/*/*.js")
    bundle = "".join(p.read_text(errors="replace") for p in scripts if "latest" in p.parent.name)
    types = {c["type"] for c in cards(config) if "type" in c}
    features = {f["type"] for c in cards(config) for f in c.get("features", [])}
    view_types = {v.get("type") for v in config["views"]}
    assert view_types == {"sections"} and "hui-sections-view" in bundle
    for card_type in types - features - {"grid", "sections"}:
        assert f"hui-{card_type}-card" in bundle, card_type
    for feature in features:
        assert f"hui-{feature}-card-feature" in bundle, feature
    ids = entity_ids(config)
    assert {"switch.studio_brb", "image.studio_ingest_picture"} <= ids
    for stream in ("facebook", "youtube", "tiktok"):
        assert {f"switch.studio_{stream}", f"text.studio_{stream}_new_key"} <= ids
    stop = next(c for c in cards(config) if c.get("name") == "Stop everything")
    assert stop["tap_action"]["perform_action"] == "mqtt.publish"
    assert stop["tap_action"]["data"]["topic"] == "streamrelay/all/set"


def carriers(seen: list[Any], secret: str) -> set[tuple[str, bool]]:
    return {(s.topic, s.retain) for s in seen if secret.encode() in s.payload}


async def test_new_key_box_rekeys_the_live_relay_and_the_dashboard_works(
    tmp_path: Path,
    ingest: NginxRtmp,
    platforms: NginxRtmp,
    publisher: Publisher,
    broker: Mosquitto,
) -> None:
    streams = ["facebook", "youtube", "tiktok"]
    config = relay_config(
        tmp_path / "relay", ingest.url("stream"), platforms.rtmp_port,
        {"port": broker.port}, "studio", streams, standby={},
    )  # fmt: skip
    dashboard = load_dashboard(install_dashboard(tmp_path / "ha"))["config"]
    shown = entity_ids(dashboard)
    entities = expected_entities("studio", streams) | shown
    old_key = f"studio-tiktok-{CANARY_KEY}"
    key_topic = "streamrelay/tiktok/key/set"
    async with relay_beside_home_assistant(
        tmp_path, broker, config, entities, DASHBOARD_CONFIG + RECORDER_CONFIG
    ) as session:
        col, ha = session.col, session.ha
        await col.publish("hatest/call", turn("on", "switch.studio_tiktok"))
        await wait_ha(col, {"sensor.studio_tiktok_status": "live"}, 60, "tiktok live")
        await wait_ha(col, {"text.studio_tiktok_new_key": ""}, 30, "an empty key box")

        async def publishing(name: str) -> bool:
            found = await stat_streams(platforms)
            return name in found and found[name].publishing

        await eventually(lambda: publishing(old_key), 30, "the old key at the platform")

        # the streamer types the new key into the box
        body = {"entity_id": "text.studio_tiktok_new_key", "value": NEW_KEY}
        await col.publish("hatest/perform", json.dumps({"action": "text.set_value", "data": body}))
        await eventually(lambda: publishing(NEW_KEY), 90, "the new key at the platform", step_s=1)

        async def old_gone() -> bool:
            return old_key not in await stat_streams(platforms)

        await eventually(old_gone, 30, "the old key's stream to end at the platform")
        await wait_ha(
            col,
            {"sensor.studio_tiktok_status": "live", "switch.studio_tiktok": "on",
             "text.studio_tiktok_new_key": ""},
            60, "tiktok live again, the box still empty",
        )  # fmt: skip
        # the key went out on its command topic only, never retained
        assert carriers(col.seen, NEW_KEY) == {("hatest/perform", False), (key_topic, False)}
        async with collector(broker.port) as fresh:  # what the broker keeps
            await eventually(lambda: has_retained(fresh), 10, "the retained topics")
            assert carriers(fresh.seen, CANARY_KEY) == set()

        # the dashboard: its "Stop everything" as the button performs it
        await col.publish("hatest/call", turn("on", "switch.studio_youtube"))
        await wait_ha(col, {"switch.studio_youtube": "on"}, 60, "youtube on")
        stop = next(c for c in cards(dashboard) if c.get("name") == "Stop everything")
        action = stop["tap_action"]
        performed = {"action": action["perform_action"], "data": action["data"]}
        await col.publish("hatest/perform", json.dumps(performed))
        await wait_ha(
            col, {f"switch.studio_{s}": "off" for s in streams}, 60, "every destination off"
        )
        session.complaints += dashboard_complaints(ha)
        states = ha_states(col)
        assert not [e for e in shown if states.get(e, "unavailable") == "unavailable"]

    database = [p.read_bytes() for p in (tmp_path / "ha").glob("home-assistant_v2.db*")]
    assert database and b"studio_tiktok_new_key" in b"".join(database)  # it did record
    assert CANARY_KEY.encode() not in b"".join(database)
    relay_log = (tmp_path / "relay" / "service.log").read_text()
    assert "tiktok: destination changed (key)" in relay_log
    assert CANARY_KEY not in relay_log


async def has_retained(col: Collector) -> bool:
    return any(s.topic.endswith("/attributes") for s in col.seen)


def dashboard_complaints(ha: HomeAssistant) -> list[str]:
    text = ha.log.read_text(errors="replace") if ha.log.exists() else ""
    return [
        line
        for line in text.splitlines()
        if ("WARNING" in line or "ERROR" in line) and "lovelace" in line.lower()
    ]
