"""Connections to the broker: the bridge's own, and the one that keeps the
first release's shared `B/status` topic right for a single host.

A client has one last will. The bridge's is this host's `B/host/<node_id>/status`
(one host dying leaves the others' entities available); a second, idle
connection carries the will of `B/status`, which a single-host setup of the
first release may still watch. It follows the bridge's connection: `online`
only once the bridge has subscribed to the commands."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from types import TracebackType

import aiomqtt

from mqttrelay.config import MqttConfig
from mqttrelay.lib.aio import cancel_and_wait
from mqttrelay.lib.backoff import Backoff

RECONNECT_FIRST_S = 1.0
RECONNECT_MAX_S = 30.0


def reconnect_backoff() -> Backoff:
    """The pauses between tries to reach the broker (lib/backoff.py); reset() once connected."""
    return Backoff(RECONNECT_FIRST_S, RECONNECT_MAX_S)


class Client(aiomqtt.Client):
    """aiomqtt's client, but a connection the broker dropped leaves no unread
    reason behind: aiomqtt 2.5 keeps it in a future its `__aexit__` does not read,
    and asyncio then logs "Future exception was never retrieved" with no context
    (after every broker restart). What went wrong reaches the bridge anyway, as
    the MqttError its next call raises."""

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            await super().__aexit__(exc_type, exc, tb)
        finally:
            lost = self._disconnected
            if lost.done() and not lost.cancelled():
                lost.exception()  # read: it is the reason the connection ended


def make_client(cfg: MqttConfig, identifier: str, will_topic: str) -> aiomqtt.Client:
    tls_context = None
    if cfg.tls:
        tls_context = ssl.create_default_context(cafile=str(cfg.ca_certs) if cfg.ca_certs else None)
    return Client(
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
    """`B/status`: online while the bridge is connected and subscribed (a command
    sent on that `online` is obeyed), offline otherwise, at the stop and as the will."""

    def __init__(self, cfg: MqttConfig, topic: str) -> None:
        self._cfg = cfg
        self._topic = topic
        self._client: aiomqtt.Client | None = None
        self._task: asyncio.Task[None] | None = None
        self._ready = False
        self._changed = asyncio.Event()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="mqtt-shared-status")

    def set_ready(self, ready: bool) -> None:
        """The bridge has subscribed (True) or lost its connection (False)."""
        if ready != self._ready:
            self._ready = ready
            self._changed.set()

    async def _run(self) -> None:
        backoff = reconnect_backoff()
        while True:
            # failures are the bridge's to report: this connection stays quiet
            with contextlib.suppress(aiomqtt.MqttError):
                client = make_client(
                    self._cfg, f"mqttrelay-{self._cfg.node_id}-status", self._topic
                )
                async with client:
                    self._client = client
                    backoff.reset()
                    announcer = asyncio.create_task(self._announce(client))
                    try:
                        async for _ in client.messages:
                            pass  # subscribed to nothing: this waits until the connection ends
                    finally:
                        await cancel_and_wait(announcer)
            self._client = None
            await asyncio.sleep(backoff.failed())

    async def _announce(self, client: aiomqtt.Client) -> None:
        """Say what the bridge is now, at connect and at every change. After a broker
        restart this connection may be back first: it says `offline` until the bridge is."""
        said: bool | None = None
        with contextlib.suppress(aiomqtt.MqttError):
            while True:
                self._changed.clear()
                if self._ready != said:
                    said = self._ready
                    payload = "online" if said else "offline"
                    await client.publish(self._topic, payload, qos=1, retain=True)
                else:
                    await self._changed.wait()

    async def stop(self) -> None:
        self._ready = False
        client = self._client
        if client is not None:
            with contextlib.suppress(aiomqtt.MqttError, TimeoutError):
                await asyncio.wait_for(
                    client.publish(self._topic, "offline", qos=1, retain=True), 5
                )
        if self._task is not None:
            await cancel_and_wait(self._task)
            self._task = None
