"""mqttrelay against a real Home Assistant 2026.2: discovery without a single
warning from its MQTT integration, the entity ids the README promises, switches
that drive relays, and states that survive a Home Assistant restart."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import yaml

from ..kit import CANARY_KEY, Collector, Ingest, both_ingests, collector, ingest_section
from ..support import Mosquitto, NginxRtmp, Publisher, ServiceProcess, eventually, free_port
from .harness import HomeAssistant

pytestmark = pytest.mark.home_assistant


def expected_entities(node: str, streams: list[str]) -> set[str]:
    out = {f"binary_sensor.{node}_ingest_live"}
    for s in streams:
        out |= {
            f"switch.{node}_{s}",
            f"sensor.{node}_{s}_bitrate",
            f"sensor.{node}_{s}_status",
            f"sensor.{node}_{s}_next_change",
            f"binary_sensor.{node}_{s}_running",
            f"binary_sensor.{node}_{s}_problem",
            f"sensor.{node}_{s}_delay",
            f"sensor.{node}_{s}_dropped",
            f"text.{node}_{s}_new_key",
        }
    return out


def ha_states(col: Collector) -> dict[str, str]:
    raw = col.last("hatest/states")
    return json.loads(raw) if raw else {}


async def wait_ha(col: Collector, check: dict[str, str], deadline_s: float, what: str) -> None:
    async def holds() -> bool:
        states = ha_states(col)
        return all(states.get(k) == v for k, v in check.items())

    try:
        await eventually(holds, deadline_s, what, step_s=0.5)
    except AssertionError as exc:
        raise AssertionError(f"{exc}; Home Assistant shows {ha_states(col)}") from None


def relay_config(folder: Path, ingest_url: str, platform_port: int, mqtt: dict[str, object],
                 node: str, streams: list[str], **extra: object) -> Path:  # fmt: skip
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "config.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "state_file": "state.json",
                "ingest": {"url": ingest_url},
                "mqtt": {**mqtt, "node_id": node},
                "api": {"port": free_port()},
                "streams": [
                    {"id": s, "url": f"rtmp://127.0.0.1:{platform_port}/dest",
                     "key": f"{node}-{s}-{CANARY_KEY}"}
                    for s in streams
                ],
                **extra,
            }
        )
    )  # fmt: skip
    return path


@dataclass
class Session:
    relay: ServiceProcess
    ha: HomeAssistant
    col: Collector
    complaints: list[str] = field(default_factory=list)


@contextlib.asynccontextmanager
async def relay_beside_home_assistant(
    tmp_path: Path, broker: Mosquitto, config: Path, entities: set[str], ha_config: str = ""
) -> AsyncIterator[Session]:
    """mqttrelay and Home Assistant on one broker, until every entity is in Home
    Assistant; afterwards both stopped, with no complaint from Home Assistant's
    MQTT integration and no key in its log."""
    relay = ServiceProcess(config, tmp_path / "relay" / "service.log")
    ha = HomeAssistant(tmp_path / "ha", "127.0.0.1", broker.port, ha_config)
    relay.start()
    session: Session | None = None
    try:
        async with collector(broker.port) as col:
            ha.start()
            await eventually(
                lambda: all_available(col, entities),
                240,
                "every entity in Home Assistant",
                step_s=1,
            )
            session = Session(relay, ha, col)
            yield session
            session.complaints += ha.mqtt_complaints()
    finally:
        ha.stop()
        assert relay.stop() == 0
        relay.cleanup()
    assert session.complaints == [], "\n".join(session.complaints)
    assert CANARY_KEY not in ha.log.read_text()


@both_ingests()
async def test_home_assistant_discovers_drives_and_keeps_states(
    tmp_path: Path,
    ingest: Ingest,
    platforms: NginxRtmp,
    publisher: Publisher,
    broker: Mosquitto,
) -> None:
    streams = ["tiktok", "youtube"]
    config = relay_config(
        tmp_path / "relay", ingest.url("stream"), platforms.rtmp_port,
        {"port": broker.port}, "studio", streams, ingest=ingest_section(ingest),
    )  # fmt: skip
    entities = expected_entities("studio", streams)
    async with relay_beside_home_assistant(tmp_path, broker, config, entities) as session:
        relay, ha, col = session.relay, session.ha, session.col
        await wait_ha(
            col,
            {"switch.studio_tiktok": "off", "binary_sensor.studio_ingest_live": "on"},
            60,
            "the ingest live in Home Assistant",
        )

        await col.publish("hatest/call", turn("on", "switch.studio_tiktok"))
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{relay.port}") as api:

            async def tiktok_live() -> bool:
                state = (await api.get("/api/streams/tiktok")).json()
                return bool(state["enabled"] and state["status"] == "live")

            await eventually(tiktok_live, 60, "Home Assistant's switch to start the relay")
        await wait_ha(
            col,
            {"switch.studio_tiktok": "on", "sensor.studio_tiktok_status": "live",
             "binary_sensor.studio_tiktok_running": "on", "switch.studio_youtube": "off"},
            60, "tiktok live in Home Assistant",
        )  # fmt: skip
        session.complaints += ha.mqtt_complaints()  # before its log is rotated

        ha.stop()
        col.seen.clear()
        ha.start()
        await wait_ha(
            col,
            {"switch.studio_tiktok": "on", "sensor.studio_tiktok_status": "live",
             "switch.studio_youtube": "off", "binary_sensor.studio_ingest_live": "on"},
            240, "the states after Home Assistant restarted",
        )  # fmt: skip


def turn(on_off: str, entity_id: str) -> str:
    return json.dumps({"action": f"switch.turn_{on_off}", "entity_id": entity_id})


async def all_available(col: Collector, entities: set[str]) -> bool:
    """Every entity there and available: Home Assistant skips a service call to an
    entity whose availability has not come in yet (seen once, on a slow first start)."""
    states = ha_states(col)
    return all(states.get(e, "unavailable") != "unavailable" for e in entities)


@both_ingests()
async def test_home_assistant_shows_the_standby_and_holds_it_by_hand(
    tmp_path: Path,
    ingest: Ingest,
    platforms: NginxRtmp,
    publisher: Publisher,
    broker: Mosquitto,
) -> None:
    config = relay_config(
        tmp_path / "relay", ingest.url("stream"), platforms.rtmp_port,
        {"port": broker.port}, "studio", ["tiktok"], standby={}, ingest=ingest_section(ingest),
    )  # fmt: skip
    entities = expected_entities("studio", ["tiktok"])
    entities |= {"binary_sensor.studio_standby", "switch.studio_brb"}
    async with relay_beside_home_assistant(tmp_path, broker, config, entities) as session:
        col = session.col
        await col.publish("hatest/call", turn("on", "switch.studio_tiktok"))
        await wait_ha(col, {"sensor.studio_tiktok_status": "live"}, 60, "tiktok live")
        await wait_ha(
            col,
            {"binary_sensor.studio_standby": "off", "switch.studio_brb": "off"},
            60, "no standby yet",
        )  # fmt: skip

        async def held() -> bool:  # the loop is made from OBS's first seconds
            await col.publish("hatest/call", turn("on", "switch.studio_brb"))
            await asyncio.sleep(2)
            return ha_states(col).get("switch.studio_brb") == "on"

        await eventually(held, 60, "Home Assistant's be-right-back switch", step_s=1)
        await wait_ha(
            col,
            {"sensor.studio_tiktok_status": "standby", "binary_sensor.studio_standby": "on",
             "binary_sensor.studio_ingest_live": "on"},
            60, "the standby in Home Assistant",
        )  # fmt: skip
        await col.publish("hatest/call", turn("off", "switch.studio_brb"))
        await wait_ha(
            col,
            {"sensor.studio_tiktok_status": "live", "binary_sensor.studio_standby": "off",
             "switch.studio_brb": "off"},
            60, "back to OBS in Home Assistant",
        )  # fmt: skip


@both_ingests()
async def test_home_assistant_follows_added_and_deleted_destinations_and_shows_the_picture(
    tmp_path: Path,
    ingest: Ingest,
    platforms: NginxRtmp,
    publisher: Publisher,
    broker: Mosquitto,
) -> None:
    config = relay_config(
        tmp_path / "relay", ingest.url("stream"), platforms.rtmp_port,
        {"port": broker.port}, "studio", ["tiktok"], ingest=ingest_section(ingest),
    )  # fmt: skip
    entities = expected_entities("studio", ["tiktok"])
    entities |= {"image.studio_ingest_picture", "sensor.studio_ingest_resolution"}
    async with (
        relay_beside_home_assistant(tmp_path, broker, config, entities) as session,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{session.relay.port}") as api,
    ):
        col = session.col
        await wait_ha(
            col, {"sensor.studio_ingest_resolution": "320x240"}, 60, "the ingest's resolution"
        )

        async def picture_shown() -> bool:  # an image entity's state: when it last changed
            return ha_states(col).get("image.studio_ingest_picture", "unknown") not in (
                "unknown",
                "unavailable",
            )

        await eventually(picture_shown, 60, "the ingest picture in Home Assistant", step_s=1)

        body = {"id": "kick", "name": "Kick", "key": f"kick-{CANARY_KEY}",
                "url": f"rtmp://127.0.0.1:{platforms.rtmp_port}/dest"}  # fmt: skip
        assert (await api.post("/api/streams", json=body)).status_code == 201
        added = expected_entities("studio", ["kick"]) - {"binary_sensor.studio_ingest_live"}
        await eventually(
            lambda: all_available(col, added),
            60,
            "the added destination in Home Assistant",
            step_s=1,
        )
        await col.publish("hatest/call", turn("on", "switch.studio_kick"))
        await wait_ha(col, {"sensor.studio_kick_status": "live"}, 60, "kick live")

        assert (await api.delete("/api/streams/kick")).status_code == 204

        async def removed() -> bool:
            return not (added & set(ha_states(col)))

        await eventually(removed, 60, "the deleted destination gone from Home Assistant")
