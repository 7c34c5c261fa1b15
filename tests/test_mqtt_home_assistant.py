"""Home Assistant's `online` is answered without amplifying it (issue 26): a
burst costs one republish, two republishes keep a minimum interval, and an
echoed discovery config is compared with what was published, not rebuilt."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiomqtt
import pytest

from mqttrelay.app import Service
from mqttrelay.config import Config
from mqttrelay.config.model import MAX_STREAMS
from mqttrelay.transports.mqtt.home_assistant import HA_REPUBLISH_DELAY_S

from .kit import B, offline_config, running_bridge, wait_connected
from .support import Mosquitto, eventually

pytestmark = pytest.mark.integration
HA_STATUS = "homeassistant/status"


def switch_config(stream_id: str) -> str:
    return f"homeassistant/switch/studio/{stream_id}/config"


@contextlib.asynccontextmanager
async def arrivals(port: int, topic: str) -> AsyncIterator[list[float]]:
    """When each message on topic arrived (monotonic), retained copies left out."""
    times: list[float] = []
    ready = asyncio.Event()

    async def listen() -> None:
        async with aiomqtt.Client("127.0.0.1", port, identifier=f"test-{random.random()}") as c:
            await c.subscribe(topic, qos=1)
            ready.set()
            async for message in c.messages:
                if not message.retain:
                    times.append(time.monotonic())

    task = asyncio.create_task(listen())
    await asyncio.wait_for(ready.wait(), 10)
    try:
        yield times
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
            await task


async def say_online(port: int, count: int) -> float:
    """Home Assistant's `online`, count times as fast as possible; how long it took."""
    async with aiomqtt.Client("127.0.0.1", port, identifier=f"ha-{random.random()}") as c:
        start = time.monotonic()
        for _ in range(count):
            await c.publish(HA_STATUS, b"online", qos=0)
        return time.monotonic() - start


async def more_than(times: list[float], count: int, deadline_s: float, what: str) -> None:
    async def check() -> bool:
        return len(times) > count

    await eventually(check, deadline_s, what)


@pytest.mark.slow
async def test_a_burst_of_online_costs_one_republish_and_republishes_keep_apart(
    tmp_path: Path,
    broker: Mosquitto,
    services: Callable[[Config], Service],
) -> None:
    interval = 6.0  # shorter than the product's, to keep the test short
    settle = HA_REPUBLISH_DELAY_S[1] + 3.0
    config = offline_config(tmp_path, broker, ["tiktok", "youtube"])
    service = services(config)
    async with (
        arrivals(broker.port, switch_config("tiktok")) as seen,
        running_bridge(service, config) as bridge,
    ):
        bridge.home_assistant.min_interval_s = interval
        await wait_connected(bridge)
        await more_than(seen, 0, 20, "discovery at connect")
        await asyncio.sleep(1.0)
        before = len(seen)
        took = await say_online(broker.port, 1000)
        await more_than(seen, before, 20, "discovery again after Home Assistant's online")
        first = seen[before]
        await asyncio.sleep(settle)
        republishes = len(seen) - before
        assert republishes <= 2, f"1,000 online in {took:.2f} s: {republishes} republishes"

        # Home Assistant restarts again at once: answered, after the minimum interval
        before = len(seen)
        await say_online(broker.port, 1000)
        await more_than(seen, before, interval + settle + 20, "the next republish")
        assert seen[before] - first >= interval - 0.1
        await asyncio.sleep(settle)
        assert len(seen) - before <= 2
        # the states went out again too, and commands still work
        async with aiomqtt.Client("127.0.0.1", broker.port) as c:
            await c.publish(f"{B}/tiktok/set", b"ON", qos=1)

        async def on() -> bool:
            return service.router.stream_state("tiktok").enabled

        await eventually(on, 20, "the command after the bursts")


@pytest.mark.slow
async def test_the_most_destinations_cost_little_cpu_at_connect_and_on_online(
    tmp_path: Path, broker: Mosquitto, services: Callable[[Config], Service]
) -> None:
    """Each config comes back to the bridge (it watches its own configs to remove
    stale ones); none of them may rebuild every payload. At the cap of 100
    destinations (issue 26 measured 300 before the cap: 17-19 s per republish)."""
    names = [f"d{i:03}" for i in range(MAX_STREAMS)]
    config = offline_config(tmp_path, broker, names)
    service = services(config)
    last = switch_config(names[-1])
    async with aiomqtt.Client("127.0.0.1", broker.port) as c, arrivals(broker.port, last) as seen:
        cpu = time.process_time()
        async with running_bridge(service, config) as bridge:
            await wait_connected(bridge)
            await more_than(seen, 0, 60, "the last discovery config at connect")
            # after every echo of its configs, the bridge reads this command
            await c.publish(f"{B}/{names[0]}/set", b"ON", qos=1)

            async def on() -> bool:
                return service.router.stream_state(names[0]).enabled

            await eventually(on, 120, "the command after the configs")
            connect_cpu = time.process_time() - cpu

            cpu = time.process_time()
            await say_online(broker.port, 1000)
            await more_than(seen, 1, 30, "the republish")
            await asyncio.sleep(HA_REPUBLISH_DELAY_S[1] + 3.0)  # any second republish
            await c.publish(f"{B}/{names[0]}/set", b"OFF", qos=1)

            async def off() -> bool:
                return not service.router.stream_state(names[0]).enabled

            await eventually(off, 120, "the command after the republish")
            online_cpu = time.process_time() - cpu
        print(f"CPU: connect {connect_cpu:.2f} s, 1,000 online {online_cpu:.2f} s")
        assert len(seen) <= 3  # the connect's configs, one republish, perhaps a second
        assert bridge.home_assistant.republishes <= 2
        # this process's CPU (bridge, broker client, test): the rebuild on each echo cost
        # about 6 s per republish at 100 destinations (a third of 300's 17-19 s)
        assert connect_cpu < 3.0 and online_cpu < 3.0, (connect_cpu, online_cpu)
