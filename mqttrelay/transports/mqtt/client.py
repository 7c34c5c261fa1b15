"""Connections to the broker: the bridge's own, and the one that keeps the
first release's shared `B/status` topic right for a single host.

A client has one last will. The bridge's is this host's `B/host/<node_id>/status`
(one host dying leaves the others' entities available); a second, idle
connection carries the will of `B/status`, which a single-host setup of the
first release may still watch."""

from __future__ import annotations

import asyncio
import contextlib
import random
import ssl

import aiomqtt

from mqttrelay.config import MqttConfig
from mqttrelay.lib.aio import cancel_and_wait

RECONNECT_FIRST_S = 1.0
RECONNECT_MAX_S = 30.0


async def reconnect_pause(delay: float) -> float:
    """Sleep delay (with jitter) before a reconnect; returns the next delay."""
    await asyncio.sleep(delay * random.uniform(0.5, 1.0))
    return min(delay * 2, RECONNECT_MAX_S)


def make_client(cfg: MqttConfig, identifier: str, will_topic: str) -> aiomqtt.Client:
    tls_context = None
    if cfg.tls:
        tls_context = ssl.create_default_context(cafile=str(cfg.ca_certs) if cfg.ca_certs else None)
    return aiomqtt.Client(
        cfg.host,
        cfg.port,
        username=cfg.username,
        password=cfg.password,
        identifier=identifier,
        will=aiomqtt.Will(will_topic, "offline", qos=1, retain=True),
        keepalive=30,
        timeout=10,
        tls_context=tls_context,
    )


class SharedStatus:
    """`B/status`: online while this host runs, offline at its stop or as its will."""

    def __init__(self, cfg: MqttConfig, topic: str) -> None:
        self._cfg = cfg
        self._topic = topic
        self._client: aiomqtt.Client | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="mqtt-shared-status")

    async def _run(self) -> None:
        delay = RECONNECT_FIRST_S
        while True:
            # failures are the bridge's to report: this connection stays quiet
            with contextlib.suppress(aiomqtt.MqttError):
                client = make_client(
                    self._cfg, f"mqttrelay-{self._cfg.node_id}-status", self._topic
                )
                async with client:
                    self._client = client
                    await client.publish(self._topic, "online", qos=1, retain=True)
                    delay = RECONNECT_FIRST_S
                    async for _ in client.messages:
                        pass  # subscribed to nothing: this waits until the connection ends
            self._client = None
            delay = await reconnect_pause(delay)

    async def stop(self) -> None:
        client = self._client
        if client is not None:
            with contextlib.suppress(aiomqtt.MqttError, TimeoutError):
                await asyncio.wait_for(
                    client.publish(self._topic, "offline", qos=1, retain=True), 5
                )
        if self._task is not None:
            await cancel_and_wait(self._task)
            self._task = None
