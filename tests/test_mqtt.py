"""The MQTT bridge against a real mosquitto broker."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Callable
from pathlib import Path

import pytest

from mqttrelay.app import Service
from mqttrelay.config import Config
from mqttrelay.transports.mqtt.discovery import (
    DiscoveryContext,
    all_discovery,
)
from mqttrelay.transports.mqtt.topics import Topics

from .kit import CANARY_KEY, Ingest, both_ingests, make_config, wait_gone, wait_publishing
from .kit import B as B
from .kit import Collector as Collector
from .kit import collector as collector
from .kit import offline_config as offline_config
from .kit import running_bridge as running_bridge
from .kit import wait_connected as wait_connected
from .support import Mosquitto, NginxRtmp, Publisher, eventually

pytestmark = pytest.mark.integration


def test_discovery_payloads() -> None:
    ctx = DiscoveryContext(Topics("streamrelay", "studio"), "homeassistant", "http://h:8088/")
    configs = all_discovery(ctx, [("facebook", "Facebook"), ("tiktok", "TikTok")])
    assert len(configs) == 3 + 2 * 9  # the ingest's three, each stream's nine
    resolution = configs["homeassistant/sensor/studio/ingest_resolution/config"]
    assert resolution["state_topic"] == "streamrelay/host/studio/ingest/info"
    problem = configs["homeassistant/sensor/studio/ingest_problem/config"]
    assert problem["state_topic"] == "streamrelay/host/studio/ingest/info"
    assert problem["value_template"] == "{{ value_json.problem or 'none' }}"
    assert problem["entity_category"] == "diagnostic"
    assert "homeassistant/image/studio/ingest_picture/config" not in configs
    with_picture = DiscoveryContext(ctx.topics, ctx.prefix, None, picture=True)
    image = all_discovery(with_picture, [])["homeassistant/image/studio/ingest_picture/config"]
    assert image["image_topic"] == "streamrelay/host/studio/ingest/picture"
    assert image["content_type"] == "image/jpeg"
    next_change = configs["homeassistant/sensor/studio/tiktok_next_change/config"]
    assert next_change["device_class"] == "timestamp"
    assert next_change["state_topic"] == "streamrelay/tiktok/attributes"
    switch = configs["homeassistant/switch/studio/facebook/config"]
    assert switch["command_topic"] == "streamrelay/facebook/set"
    assert switch["state_topic"] == "streamrelay/facebook/state"
    assert switch["optimistic"] is False
    assert switch["availability_topic"] == "streamrelay/host/studio/status"
    assert switch["default_entity_id"] == "switch.studio_facebook" and "object_id" not in switch
    assert switch["device"]["configuration_url"] == "http://h:8088/"
    bitrate = configs["homeassistant/sensor/studio/tiktok_bitrate/config"]
    assert (bitrate["device_class"], bitrate["unit_of_measurement"]) == ("data_rate", "kbit/s")
    assert bitrate["state_class"] == "measurement"
    status = configs["homeassistant/sensor/studio/tiktok_status/config"]
    assert "holding" in status["options"] and status["device_class"] == "enum"
    assert configs["homeassistant/binary_sensor/studio/ingest_live/config"]["payload_on"] == "live"
    ids = [c["unique_id"] for c in configs.values()]
    assert len(set(ids)) == len(ids) and all(i.startswith("studio_") for i in ids)
    for payload in configs.values():
        assert payload["device"]["name"] not in payload["name"]
        assert payload["origin"]["name"] == "mqttrelay"


async def test_every_payload_form_over_mqtt(
    tmp_path: Path, broker: Mosquitto, services: Callable[[Config], Service]
) -> None:
    config = offline_config(tmp_path, broker, ["tiktok", "youtube"])
    service = services(config)
    router = service.router
    async with collector(broker.port) as col, running_bridge(service, config) as bridge:
        await wait_connected(bridge)
        await col.wait(f"{B}/status", b"online")
        await col.wait(f"{B}/tiktok/state", b"OFF")
        steps: list[tuple[bytes, bool]] = [
            (b"ON", True),
            (b"off", False),
            (b"TOGGLE", True),
            (b"toggle", False),
            (b"1", True),
            (b"0", False),
            (b"true", True),
            (b"False", False),
            (b'{"state": "ON"}', True),
            (b'{"state": "off"}', False),
        ]
        for payload, expected in steps:
            await col.publish(f"{B}/tiktok/set", payload)
            await col.wait(f"{B}/tiktok/state", b"ON" if expected else b"OFF")
            assert router.stream_state("tiktok").enabled is expected
        await col.wait(f"{B}/tiktok/status", b"off")

        await col.publish(f"{B}/all/set", b"ON")
        await col.wait(f"{B}/tiktok/state", b"ON")
        await col.wait(f"{B}/youtube/state", b"ON")
        await col.wait(f"{B}/youtube/status", b"waiting")
        await col.publish(f"{B}/all/set", b"OFF")
        await col.wait(f"{B}/youtube/state", b"OFF")

        await col.publish(f"{B}/tiktok/set", b'{"state": "ON", "duration_s": 1.5}')
        await col.wait(f"{B}/tiktok/state", b"ON")
        await col.wait(f"{B}/tiktok/state", b"OFF", deadline_s=15)
        assert not router.stream_state("tiktok").enabled

        attributes = json.loads(col.last(f"{B}/tiktok/attributes") or b"{}")
        assert {"pid", "uptime_s", "restarts", "cpu_percent", "rss_mb", "last_error"} <= set(
            attributes
        )
        assert all(CANARY_KEY.encode() not in item.payload for item in col.seen)


async def test_garbage_never_crashes_and_next_command_works(
    tmp_path: Path,
    broker: Mosquitto,
    services: Callable[[Config], Service],
    caplog: pytest.LogCaptureFixture,
) -> None:
    config = offline_config(tmp_path, broker, ["tiktok"])
    service = services(config)
    rng = random.Random(4711)
    garbage = [
        b"",
        b"maybe",
        b"\xff\xfe\x00",
        b"{not json",
        b'{"state": "ON", "duration_s": -5}',
        b'{"state": ["ON"]}',
        b"O" * 10_000,
        b"[" * 5000,
        *(bytes(rng.randrange(256) for _ in range(rng.randrange(1, 300))) for _ in range(60)),
    ]
    async with collector(broker.port) as col, running_bridge(service, config) as bridge:
        await wait_connected(bridge)
        await col.wait(f"{B}/tiktok/state", b"OFF")
        for payload in garbage:
            await col.publish(f"{B}/tiktok/set", payload)
        for topic in (f"{B}/nope/set", f"{B}/all/set", f"{B}/a/b/set", f"{B}//set"):
            await col.publish(topic, b"TOGGLE")
        await col.publish(f"{B}/tiktok/set", b"ON")
        await col.wait(f"{B}/tiktok/state", b"ON")
        assert bridge.connected and bridge.connects == 1
    assert "unknown stream 'nope'" in caplog.text
    assert "TOGGLE is for one stream" in caplog.text
    assert "Traceback" not in caplog.text


async def test_retained_command_is_never_acted_on(
    tmp_path: Path, broker: Mosquitto, services: Callable[[Config], Service]
) -> None:
    config = offline_config(tmp_path, broker, ["tiktok"])
    async with collector(broker.port) as col:
        await col.publish(f"{B}/tiktok/set", b"ON", retain=True)
        await asyncio.sleep(0.3)
        service = services(config)
        router = service.router
        async with running_bridge(service, config) as bridge:
            await wait_connected(bridge)
            await col.wait(f"{B}/tiktok/state", b"OFF")
            await asyncio.sleep(1.0)
            assert not router.stream_state("tiktok").enabled
            assert router.stream_state("tiktok").status == "off"
            await col.publish(f"{B}/tiktok/set", b"", retain=True)  # clean the broker


async def test_broker_restart_reconnects_and_republishes(
    tmp_path: Path, broker: Mosquitto, services: Callable[[Config], Service]
) -> None:
    config = offline_config(tmp_path, broker, ["tiktok"])
    service = services(config)
    router = service.router
    async with running_bridge(service, config) as bridge:
        await wait_connected(bridge)
        await router.set_enabled("tiktok", True)
        broker.kill()

        async def disconnected() -> bool:
            return not bridge.connected

        await eventually(disconnected, 30, "the bridge to notice the broker is gone")
        broker.start()  # same port, empty: nothing retained survives
        async with collector(broker.port) as col:
            await wait_connected(bridge, connects=2)
            await col.wait(f"{B}/status", b"online")
            await col.wait(f"{B}/tiktok/state", b"ON")
            await col.wait(f"{B}/tiktok/status", b"waiting")
            assert col.last("homeassistant/switch/studio/tiktok/config")
            await col.publish(f"{B}/tiktok/set", b"OFF")
            await col.wait(f"{B}/tiktok/state", b"OFF")
            assert not router.stream_state("tiktok").enabled


async def test_home_assistant_online_republishes_and_stale_discovery_is_removed(
    tmp_path: Path, broker: Mosquitto, services: Callable[[Config], Service]
) -> None:
    config = offline_config(tmp_path, broker, ["tiktok"])
    stale = "homeassistant/switch/studio/oldstream/config"
    async with collector(broker.port) as col:
        await col.publish(stale, json.dumps({"name": "Old"}), retain=True)
        service = services(config)
        async with running_bridge(service, config) as bridge:
            await wait_connected(bridge)
            await col.wait(stale, b"")  # removed with an empty retained payload
            topic = "homeassistant/switch/studio/tiktok/config"
            await col.wait(topic, col.last(topic) or b"?")
            before = sum(1 for s in col.seen if s.topic == topic)
            await col.publish("homeassistant/status", b"online")

            async def republished() -> bool:
                return sum(1 for s in col.seen if s.topic == topic) > before

            await eventually(republished, 15, "discovery to be published again")
            await col.wait(f"{B}/tiktok/state", b"OFF")


@both_ingests(slow_builtin=True)
async def test_real_relay_status_and_bitrate_over_mqtt(
    tmp_path: Path,
    broker: Mosquitto,
    ingest: Ingest,
    platforms: NginxRtmp,
    publisher: Publisher,
    services: Callable[[Config], Service],
) -> None:
    config = make_config(tmp_path, ingest, platforms, ["tiktok"])
    config = config.model_copy(
        update={"mqtt": config.mqtt.model_copy(update={"port": broker.port, "node_id": "studio"})}
    )
    service = services(config)
    async with collector(broker.port) as col, running_bridge(service, config) as bridge:
        await wait_connected(bridge)
        await col.wait(f"{B}/ingest/status", b"live", deadline_s=30)
        await col.wait(f"{B}/host/studio/ingest/status", b"live")

        async def info() -> dict[str, object]:
            payload = json.loads(col.last(f"{B}/host/studio/ingest/info") or b"{}")
            return payload if payload.get("resolution") else {}

        seen = await eventually(info, 20, "the ingest's info")
        assert (seen["resolution"], seen["video_codec"], seen["audio_codec"]) == (
            "320x240",
            "H.264",
            "AAC",
        )
        await col.publish(f"{B}/tiktok/set", b"ON")
        await col.wait(f"{B}/tiktok/state", b"ON")
        await col.wait(f"{B}/tiktok/status", b"live", deadline_s=30)
        key = config.streams[0].target.rsplit("/", 1)[1]
        await wait_publishing(platforms, key)  # the platform really receives audio and video

        async def bitrate() -> float:
            value = col.last(f"{B}/tiktok/bitrate")
            return float(value) if value else 0.0

        assert await eventually(bitrate, 20, "a bitrate above 0") > 0
        await col.publish(f"{B}/tiktok/set", b"OFF")
        await col.wait(f"{B}/tiktok/state", b"OFF")
        await col.wait(f"{B}/tiktok/status", b"off")
        await col.wait(f"{B}/tiktok/bitrate", b"0")
        await wait_gone(platforms, key)
        assert all(CANARY_KEY.encode() not in item.payload for item in col.seen)
