"""A new stream key over MQTT (B/<id>/key/set), as Home Assistant's "new key"
password box sends it: the same checks and the same path as the page's "Use
this key" (config.yaml edited, the live relay re-keyed), and the key in no
state topic and no log line."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
import yaml

from mqttrelay.app import Service
from mqttrelay.config import Config, load_config
from mqttrelay.transports.mqtt.bridge import MqttBridge
from mqttrelay.transports.mqtt.commands import CommandError, parse_key
from mqttrelay.transports.mqtt.discovery import DiscoveryContext, all_discovery
from mqttrelay.transports.mqtt.topics import Topics

from .kit import (
    CANARY_KEY,
    B,
    Collector,
    Ingest,
    both_ingests,
    collector,
    ingest_section,
    offline_config,
    running_bridge,
    wait_connected,
)
from .support import Mosquitto, NginxRtmp, Publisher, eventually, free_port, stat_streams

OLD_KEY = f"old-{CANARY_KEY}"
NEW_KEY = f"new-{CANARY_KEY}"


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"", "key is empty"),
        (b"   ", "key is empty"),
        (f"{CANARY_KEY} x".encode(), "spaces"),
        (f"-{CANARY_KEY}".encode(), "start with '-'"),
        (f"${{{CANARY_KEY}}}".encode(), "'${'"),
        (f"rtmp://live.example/app/{CANARY_KEY}".encode(), "looks like a server address"),
        (b"\xff" + CANARY_KEY.encode(), "UTF-8"),
        (CANARY_KEY.encode() * 20, "over 255"),
    ],
)
def test_a_bad_key_is_refused_without_repeating_it(payload: bytes, reason: str) -> None:
    with pytest.raises(CommandError) as caught:
        parse_key(payload)
    assert reason in str(caught.value)
    assert "canary" not in str(caught.value).lower()


def test_a_key_is_trimmed_as_the_page_trims_it() -> None:
    assert parse_key(f"  {NEW_KEY}\n".encode()) == NEW_KEY
    with pytest.raises(CommandError, match="8 or more"):  # as the API refuses it
        parse_key(b"k")


def test_key_topics_and_the_new_key_entity() -> None:
    topics = Topics("streamrelay", "studio")
    assert topics.key_set("tiktok") == "streamrelay/tiktok/key/set"
    assert topics.stream_of_key_topic("streamrelay/tiktok/key/set") == "tiktok"
    assert topics.stream_of_set_topic("streamrelay/tiktok/key/set") is None
    for other in ("streamrelay/tiktok/set", "streamrelay/a/b/key/set", "x/tiktok/key/set"):
        assert topics.stream_of_key_topic(other) is None
    ctx = DiscoveryContext(topics, "homeassistant", None)
    text = all_discovery(ctx, [("tiktok", "TikTok")])[
        "homeassistant/text/studio/tiktok_new_key/config"
    ]
    assert text["default_entity_id"] == "text.studio_tiktok_new_key"
    assert text["name"] == "TikTok new key" and text["mode"] == "password"
    assert text["command_topic"] == "streamrelay/tiktok/key/set" and text["retain"] is False
    # A state topic, or Home Assistant keeps what was typed as the state; the
    # state is always empty, whatever that topic holds.
    assert text["state_topic"] == "streamrelay/tiktok/attributes"
    assert text["value_template"] == "{{ '' }}" and text["min"] == 0


def file_config(folder: Path, broker: Mosquitto, ingest: Ingest, platforms: NginxRtmp) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "config.yaml"
    stream = {"id": "tiktok", "name": "TikTok", "key": OLD_KEY,
              "url": f"rtmp://127.0.0.1:{platforms.rtmp_port}/dest"}  # fmt: skip
    path.write_text(
        yaml.safe_dump(
            {
                "state_file": str(folder / "state.json"),
                "ingest": ingest_section(ingest),
                "mqtt": {"port": broker.port, "node_id": "studio"},
                "api": {"port": free_port()},
                "streams": [stream],
            }
        )
    )
    return path


@contextlib.asynccontextmanager
async def bridge_with_editor(
    path: Path, services: Callable[..., Service]
) -> AsyncIterator[tuple[Service, MqttBridge]]:
    service = services(load_config(path), path)
    await service.start()
    bridge = service.bridge
    assert bridge is not None
    bridge.start()
    try:
        yield service, bridge
    finally:
        await bridge.stop()


@both_ingests()
async def test_a_key_set_over_mqtt_rekeys_the_live_relay_and_is_never_published(
    tmp_path: Path,
    ingest: Ingest,
    platforms: NginxRtmp,
    publisher: Publisher,
    broker: Mosquitto,
    services: Callable[[Config], Service],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    path = file_config(tmp_path / "relay", broker, ingest, platforms)
    key_topic = f"{B}/tiktok/key/set"

    def warned(text: str) -> Callable[[], Awaitable[bool]]:
        async def check() -> bool:
            return any(text in r.getMessage() for r in caplog.records)

        return check

    async with collector(broker.port) as col:
        # a key left retained on the broker is never acted on: it would re-key at every start
        await col.publish(key_topic, NEW_KEY, retain=True)
        await asyncio.sleep(0.3)
        async with bridge_with_editor(path, services) as (service, bridge):
            await wait_connected(bridge)
            await eventually(warned("retained command ignored"), 20, "the retained key")
            await col.publish(key_topic, b"", retain=True)  # clean the broker
            await rekey_the_live_relay(col, service, platforms, path, warned)

    # the key travelled only on its own command topic
    carriers = {s.topic for s in col.seen if CANARY_KEY.encode() in s.payload}
    assert carriers <= {key_topic, f"{B}/nope/key/set"}
    async with collector(broker.port) as fresh:  # what the broker keeps
        await asyncio.sleep(1.0)
        assert fresh.seen and not [s for s in fresh.seen if CANARY_KEY.encode() in s.payload]
    messages = [r.getMessage() for r in caplog.records]
    assert any("tiktok: destination changed (key)" in m for m in messages)
    assert not [m for m in messages if "canary" in m.lower()]
    # the file written on the new key keeps the ingest as it was (the publish key too)
    assert (
        load_config(path).ingest.model_dump()
        == Config.model_validate({"ingest": ingest_section(ingest)}).ingest.model_dump()
    )


async def rekey_the_live_relay(
    col: Collector,
    service: Service,
    platforms: NginxRtmp,
    path: Path,
    warned: Callable[[str], Callable[[], Awaitable[bool]]],
) -> None:
    """Bad keys refused, one line each; then the new key at the platform."""
    key_topic = f"{B}/tiktok/key/set"
    await col.publish(f"{B}/tiktok/set", b"ON")
    await col.wait(f"{B}/tiktok/status", b"live", 60)

    async def publishing(name: str) -> bool:
        streams = await stat_streams(platforms)
        return name in streams and streams[name].publishing

    await eventually(lambda: publishing(OLD_KEY), 30, "the old key at the platform")

    # bad keys: one line each naming what is wrong, and nothing changes
    for bad, reason in [
        (f"rtmp://live.example/app/{CANARY_KEY}", "key looks like a server address"),
        (f"{CANARY_KEY} x", "key must not contain spaces"),
    ]:
        await col.publish(key_topic, bad)
        await eventually(warned(f"{key_topic}: {reason}"), 20, reason)
    await col.publish(f"{B}/nope/key/set", NEW_KEY)
    await eventually(warned("unknown stream 'nope'"), 20, "the unknown stream")
    await asyncio.sleep(1.0)
    assert load_config(path).stream("tiktok").key == OLD_KEY  # type: ignore[union-attr]
    assert await publishing(OLD_KEY)

    # as Home Assistant sends it: not retained
    await col.publish(key_topic, NEW_KEY)
    await eventually(lambda: publishing(NEW_KEY), 60, "the new key at the platform")

    async def old_gone() -> bool:
        return OLD_KEY not in await stat_streams(platforms)

    await eventually(old_gone, 30, "the old key's stream to end at the platform")
    assert load_config(path).stream("tiktok").key == NEW_KEY  # type: ignore[union-attr]
    state = service.router.stream_state("tiktok")
    assert state.enabled and state.key_set
    await col.wait(f"{B}/tiktok/status", b"live", 60)


async def test_without_a_config_file_a_key_is_refused_with_the_reason(
    tmp_path: Path,
    broker: Mosquitto,
    services: Callable[[Config], Service],
    caplog: pytest.LogCaptureFixture,
) -> None:
    config = offline_config(tmp_path, broker, ["tiktok"])
    service = services(config)
    async with collector(broker.port) as col, running_bridge(service, config) as bridge:
        await wait_connected(bridge)
        await col.publish(f"{B}/tiktok/key/set", NEW_KEY)

        async def refused() -> bool:
            return any("keys are kept in config.yaml" in r.getMessage() for r in caplog.records)

        await eventually(refused, 20, "the refusal")
        assert service.router._relays["tiktok"].stream.key == CANARY_KEY  # unchanged
    assert not [r for r in caplog.records if "canary" in r.getMessage().lower()]
