"""The MQTT bridge: commands in, state out, Home Assistant discovery.

Talks only to the router. Every retained topic is published from the
runtime state (never from the config file), again after every reconnect.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from typing import Any

import aiomqtt

from mqttrelay.config import MqttConfig
from mqttrelay.control.config_editor import ConfigEditor
from mqttrelay.control.router import ChangeEvent, Router, UnknownStreamError
from mqttrelay.control.views import IngestState
from mqttrelay.lib.aio import cancel_and_wait
from mqttrelay.transports.mqtt.client import SharedStatus, make_client, reconnect_backoff
from mqttrelay.transports.mqtt.command_handler import CommandHandler, payload_bytes
from mqttrelay.transports.mqtt.discovery import (
    DiscoveryContext,
    all_discovery,
    config_wildcard,
)
from mqttrelay.transports.mqtt.fleet import Fleet, encode_info, node_of
from mqttrelay.transports.mqtt.home_assistant import HomeAssistantAnswer
from mqttrelay.transports.mqtt.picture import publish_pictures
from mqttrelay.transports.mqtt.states import StatePublisher
from mqttrelay.transports.mqtt.topics import Topics

log = logging.getLogger(__name__)

BITRATE_PERIOD_S = 5.0


class MqttBridge:
    def __init__(
        self,
        router: Router,
        mqtt: MqttConfig,
        configuration_url: str | None,
        editor: ConfigEditor | None = None,
    ) -> None:
        """`configuration_url`: the page, for Home Assistant's device card;
        `editor`: config.yaml's, which a new key goes through as on the page."""
        self._router = router
        self._editor = editor
        self._cfg = mqtt
        self.topics = Topics(self._cfg.base_topic, self._cfg.node_id)
        self.fleet = Fleet(self._cfg.node_id, uuid.uuid4().hex)
        self._reported: set[str] = set()
        self._shared_status = SharedStatus(self._cfg, self.topics.shared_availability)
        self._configuration_url = configuration_url
        self._ctx = self._context()
        self._ha_status = f"{self._cfg.discovery_prefix}/status"
        self._discovery_wildcard = config_wildcard(self._cfg.discovery_prefix, self._cfg.node_id)
        self._client: aiomqtt.Client | None = None
        self._dirty: set[str] = set()
        self._ingest_dirty = False
        self._config_dirty = False
        self._discovery_topics: set[str] = set()  # the configs the broker holds from us
        self.home_assistant = HomeAssistantAnswer()
        self._wake = asyncio.Event()
        self._commands = CommandHandler(router, editor, self.topics, self.fleet)
        self._task: asyncio.Task[None] | None = None
        self._states = StatePublisher(self.topics)
        self.connected = False
        self.connects = 0
        router.add_listener(self._on_change)

    # -- connection ---------------------------------------------------------
    def _make_client(self) -> aiomqtt.Client:
        return make_client(self._cfg, f"mqttrelay-{self._cfg.node_id}", self.topics.availability)

    async def run(self) -> None:
        """Stay connected forever, with backoff; cancel to stop."""
        backoff = reconnect_backoff()
        last_error = None
        while True:
            try:
                async with self._make_client() as client:
                    self._client = client
                    await self._on_connect(client)
                    backoff.reset()
                    last_error = None
                    await self._serve(client)
            except aiomqtt.MqttError as exc:
                if str(exc) != last_error:
                    log.warning(
                        "MQTT broker %s:%s: %s; retrying", self._cfg.host, self._cfg.port, exc
                    )
                last_error = str(exc)
            finally:
                self._client = None
                self._shared_status.set_ready(False)
                if self.connected:
                    log.info("MQTT disconnected")
                self.connected = False
            await asyncio.sleep(backoff.failed())

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self.run(), name="mqtt")
            self._shared_status.start()

    async def stop(self) -> None:
        """Publish what is pending and 'offline', then disconnect."""
        client = self._client
        if client is not None:
            with contextlib.suppress(aiomqtt.MqttError):
                await asyncio.wait_for(self._say_goodbye(client), 5)
        if self._task is not None:
            await cancel_and_wait(self._task)
            self._task = None
            await self._shared_status.stop()

    async def _say_goodbye(self, client: aiomqtt.Client) -> None:
        await self._flush(client)
        await client.publish(self.topics.availability, "offline", qos=1, retain=True)

    def _context(self, ingest: IngestState | None = None) -> DiscoveryContext:
        """The entities this host has now: the standby switches with a standby
        section, the ingest picture in cached mode (both follow a mode change)."""
        if ingest is None:
            ingest = self._router.ingest_state()
        return DiscoveryContext(
            self.topics,
            self._cfg.discovery_prefix,
            self._configuration_url,
            standby=ingest.standby_available,
            picture=ingest.mode == "cached",
            sources=tuple(self._more_sources()),
        )

    def _more_sources(self) -> list[str]:
        """The ingest sources besides main, which has the ingest topics."""
        return self._router.source_ids[1:]  # main first

    async def _on_connect(self, client: aiomqtt.Client) -> None:
        self._ctx = self._context()
        self._states.forget()
        self.connected = True
        self.connects += 1
        log.info("MQTT connected to %s:%s", self._cfg.host, self._cfg.port)
        # Subscribed (SUBACK) before either availability topic says online: a
        # command sent the moment one does is obeyed (queued until _serve reads it).
        await client.subscribe(self.topics.set_wildcard, qos=1)
        await client.subscribe(self.topics.key_wildcard, qos=1)
        if self._ctx.standby:
            await client.subscribe(self.topics.brb_set, qos=1)
        await client.subscribe(f"{self.topics.host_prefix}+/info", qos=1)
        await client.subscribe(f"{self.topics.host_prefix}+/status", qos=1)
        await client.subscribe(self._ha_status, qos=1)
        await client.subscribe(self._discovery_wildcard, qos=1)
        await client.publish(self.topics.availability, "online", qos=1, retain=True)
        self._shared_status.set_ready(True)
        await self._publish_host_info(client)
        await self._publish_discovery(client)
        await self._publish_everything(client)
        self.home_assistant.answered()

    async def _serve(self, client: aiomqtt.Client) -> None:
        helpers = [
            asyncio.create_task(self._publisher(client)),
            asyncio.create_task(self._periodic(client)),
            asyncio.create_task(publish_pictures(client, self._router, self.topics.ingest_picture)),
            *(
                asyncio.create_task(
                    publish_pictures(client, self._router, self.topics.source_picture(i), i)
                )
                for i in self._more_sources()
            ),
            asyncio.create_task(self._answer_home_assistant(client)),
        ]
        try:
            async for message in client.messages:
                try:
                    await self._handle(client, message)
                except aiomqtt.MqttError:
                    raise
                except Exception:
                    log.exception("error handling MQTT message on %s", message.topic)
        finally:
            await cancel_and_wait(*helpers)

    # -- incoming -----------------------------------------------------------
    async def _handle(self, client: aiomqtt.Client, message: aiomqtt.Message) -> None:
        topic = str(message.topic)
        payload = payload_bytes(message.payload)
        if topic == self._ha_status:
            if payload.strip().lower() == b"online":
                self.home_assistant.online()
            return
        if message.topic.matches(self._discovery_wildcard):
            await self._remove_stale_discovery(client, topic, payload)
            return
        if topic.startswith(self.topics.host_prefix) and topic != self.topics.brb_set:
            self._seen_host(topic, payload)  # be right back is a command under it
            return
        await self._commands.handle(topic, payload, message.retain)

    # -- several hosts ------------------------------------------------------
    def _seen_host(self, topic: str, payload: bytes) -> None:
        prefix = self.topics.host_prefix
        if (node := node_of(topic, prefix, "info")) is not None:
            self.fleet.seen_info(node, payload)
        elif (node := node_of(topic, prefix, "status")) is not None:
            self.fleet.seen_status(node, payload)
        else:
            return
        current = set(self.problems)
        for problem in sorted(current - self._reported):
            log.warning("%s", problem)
        self._reported = current

    @property
    def problems(self) -> list[str]:
        """Conflicts with other hosts on the broker, for the log and /api/health."""
        return self.fleet.problems(self._router.stream_ids)

    async def _publish_host_info(self, client: aiomqtt.Client) -> None:
        info = encode_info(self.fleet.instance, self._router.stream_ids)
        await client.publish(self.topics.host_info, info, qos=1, retain=True)

    async def _answer_home_assistant(self, client: aiomqtt.Client) -> None:
        async def republish() -> None:
            await self._publish_discovery(client)
            self._states.forget()
            await self._publish_everything(client)

        # A lost connection ends this task quietly; run() reconnects and republishes.
        with contextlib.suppress(aiomqtt.MqttError):
            await self.home_assistant.serve(republish)

    # -- discovery ----------------------------------------------------------
    def _discovery(self) -> dict[str, dict[str, Any]]:
        streams = [(s.id, s.name) for s in self._router.snapshot()]
        return all_discovery(self._ctx, streams)

    async def _publish_discovery(self, client: aiomqtt.Client) -> None:
        configs = self._discovery()
        for topic in sorted(self._discovery_topics - set(configs)):
            self._discovery_topics.discard(topic)
            await client.publish(topic, b"", qos=1, retain=True)  # a stream was removed
        for topic, payload in configs.items():
            self._discovery_topics.add(topic)  # before its echo can arrive
            await client.publish(topic, json.dumps(payload), qos=1, retain=True)

    async def _remove_stale_discovery(
        self, client: aiomqtt.Client, topic: str, payload: bytes
    ) -> None:
        """A retained config of ours for an entity that no longer exists: remove it.
        Compared with what was published: every echo of our own configs comes here."""
        if payload and topic not in self._discovery_topics:
            log.info("removing discovery of a stream no longer configured: %s", topic)
            await client.publish(topic, b"", qos=1, retain=True)

    # -- outgoing -----------------------------------------------------------
    def _on_change(self, event: ChangeEvent) -> None:
        if event.kind == "stats":
            return  # bitrates go out on their own period
        if event.kind == "config":
            self._config_dirty = True
        elif event.kind == "ingest":
            self._ingest_dirty = True
        elif event.stream_id is not None:
            self._dirty.add(event.stream_id)
        self._wake.set()

    async def _publisher(self, client: aiomqtt.Client) -> None:
        # A lost connection ends this task quietly; run() reconnects and republishes.
        with contextlib.suppress(aiomqtt.MqttError):
            while True:
                await self._wake.wait()
                self._wake.clear()
                await self._flush(client)

    async def _flush(self, client: aiomqtt.Client) -> None:
        if self._config_dirty:
            self._config_dirty = False
            await self._publish_host_info(client)
            await self._publish_discovery(client)
            self._dirty.update(self._router.stream_ids)
        dirty, self._dirty = self._dirty, set()
        for stream_id in sorted(dirty):
            with contextlib.suppress(UnknownStreamError):
                await self._states.stream(client, self._router.stream_state(stream_id))
        if self._ingest_dirty:
            self._ingest_dirty = False
            ingest = self._router.ingest_state()
            await self._follow_entities(client, ingest)
            await self._states.ingest(client, ingest, self._ctx.standby)
            await self._publish_sources(client)

    async def _publish_ingest(self, client: aiomqtt.Client) -> None:
        await self._states.ingest(client, self._router.ingest_state(), self._ctx.standby)
        await self._publish_sources(client)

    async def _publish_sources(self, client: aiomqtt.Client) -> None:
        for source_id in self._more_sources():
            await self._states.source(client, source_id, self._router.ingest_state(source_id))

    async def _follow_entities(self, client: aiomqtt.Client, ingest: IngestState) -> None:
        """After a mode change on the page: the standby and picture entities come or go."""
        ctx = self._context(ingest)
        if ctx == self._ctx:
            return
        if ctx.standby != self._ctx.standby:
            if ctx.standby:
                await client.subscribe(self.topics.brb_set, qos=1)
            else:
                await client.unsubscribe(self.topics.brb_set)
        self._ctx = ctx
        await self._publish_discovery(client)

    async def _periodic(self, client: aiomqtt.Client) -> None:
        with contextlib.suppress(aiomqtt.MqttError):
            while True:
                await asyncio.sleep(BITRATE_PERIOD_S)
                for state in self._router.snapshot():
                    if state.status == "live":
                        await self._states.bitrate(client, state)

    async def _publish_everything(self, client: aiomqtt.Client) -> None:
        for state in self._router.snapshot():
            await self._states.stream(client, state)
        await self._publish_ingest(client)
