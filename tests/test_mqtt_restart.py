"""After a broker restart, "online" on either availability topic means commands
are obeyed (issue 25): the bridge subscribes before it says so, and the legacy
`B/status` follows the bridge's connection."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import random
from collections.abc import Callable, Iterator
from pathlib import Path

import aiomqtt
import pytest

from mqttrelay.app import Service
from mqttrelay.config import Config
from mqttrelay.control.router import Router
from mqttrelay.transports.mqtt.bridge import MqttBridge

from .kit import B, collector, offline_config, running_bridge, wait_connected
from .support import Mosquitto, eventually

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def no_unread_disconnect_reason(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """A client whose connection the broker dropped leaves no reason unread, which
    asyncio would log as "Future exception was never retrieved" (client.py's Client)."""
    yield
    gc.collect()
    unread = [r.getMessage() for r in caplog.records if "never retrieved" in r.getMessage()]
    assert unread == [], unread


TRIES = 10
HOST_STATUS = f"{B}/host/studio/status"
# one stream per availability topic: each is commanded the moment its topic says online
COMMANDED_ON = {f"{B}/status": "tiktok", HOST_STATUS: "youtube"}


async def command_on_online(port: int, enabled: bool, deadline_s: float = 60) -> list[str]:
    """Connect as soon as the broker is back, subscribe to both availability
    topics and send the command the instant each says `online`; the topics in
    the order they said it."""
    payload = b"ON" if enabled else b"OFF"
    said: list[str] = []
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline_s
    while True:
        try:
            async with aiomqtt.Client(
                "127.0.0.1", port, identifier=f"test-{random.random()}", timeout=10
            ) as client:
                await client.subscribe([(t, 1) for t in COMMANDED_ON])
                async with asyncio.timeout(max(end - loop.time(), 1)):
                    async for message in client.messages:
                        topic = str(message.topic)
                        if message.payload != b"online" or topic in said:
                            continue
                        stream = COMMANDED_ON[topic]
                        await client.publish(f"{B}/{stream}/set", payload, qos=1)
                        said.append(topic)
                        if len(said) == len(COMMANDED_ON):
                            return said
        except aiomqtt.MqttError:
            if loop.time() > end:
                raise
            await asyncio.sleep(0.05)


async def restart_and_command(
    broker: Mosquitto, bridge: MqttBridge, router: Router, enabled: bool
) -> str | None:
    """Restart the broker, send the command on each topic's `online`; what was ignored."""
    broker.kill()

    async def disconnected() -> bool:
        return not bridge.connected

    await eventually(disconnected, 30, "the bridge to notice the broker is gone")
    broker.start()  # same port, empty: nothing retained survives
    said = await command_on_online(broker.port, enabled)

    def ignored() -> list[str]:
        return [t for t, s in COMMANDED_ON.items() if router.stream_state(s).enabled != enabled]

    async def obeyed() -> bool:
        return not ignored()

    try:
        await eventually(obeyed, 20, "the commands sent on 'online' to apply")
    except AssertionError:
        return f"a command sent on 'online' of {ignored()} was ignored (said online: {said})"
    return None


@pytest.mark.slow
async def test_online_after_a_broker_restart_means_commands_are_obeyed(
    tmp_path: Path, broker: Mosquitto, services: Callable[[Config], Service]
) -> None:
    config = offline_config(tmp_path, broker, sorted(COMMANDED_ON.values()))
    service = services(config)
    async with running_bridge(service, config) as bridge:
        for attempt in range(TRIES):
            await wait_connected(bridge, connects=attempt + 1)
            enabled = attempt % 2 == 0  # ON, OFF, ON...: each try changes the state
            failure = await restart_and_command(broker, bridge, service.router, enabled)
            assert failure is None, f"try {attempt + 1}: {failure}"


async def test_shared_status_follows_the_bridges_connection(
    tmp_path: Path, broker: Mosquitto, services: Callable[[Config], Service]
) -> None:
    """Only the bridge's connection drops (another client takes its client id):
    `B/status` says offline, then online again once the bridge has subscribed."""
    config = offline_config(tmp_path, broker, ["tiktok"])
    service = services(config)
    async with collector(broker.port) as col, running_bridge(service, config) as bridge:
        await wait_connected(bridge)
        await col.wait(f"{B}/status", b"online")
        await col.wait(HOST_STATUS, b"online")
        mark = len(col.seen)
        with contextlib.suppress(aiomqtt.MqttError):
            async with aiomqtt.Client("127.0.0.1", broker.port, identifier="mqttrelay-studio"):
                await col.wait(f"{B}/status", b"offline")
                await col.wait(HOST_STATUS, b"offline")  # the bridge's will
        await wait_connected(bridge, connects=2)
        await col.wait(f"{B}/status", b"online")
        await col.publish(f"{B}/tiktok/set", b"ON")
        await col.wait(f"{B}/tiktok/state", b"ON")
        said = [s.payload for s in col.seen[mark:] if s.topic == f"{B}/status"]
        assert said[-2:] == [b"offline", b"online"], said
