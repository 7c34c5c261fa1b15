"""What the bridge publishes of the running state: each stream's switch, status,
bitrate and attributes, and the host's ingest topics. A retained topic goes out
only when its payload differs from what the broker holds from us."""

from __future__ import annotations

import json

import aiomqtt

from mqttrelay.control.views import IngestState, StreamState
from mqttrelay.transports.mqtt.picture import ingest_info
from mqttrelay.transports.mqtt.topics import Topics


class StatePublisher:
    def __init__(self, topics: Topics) -> None:
        self.topics = topics
        self._retained: dict[str, str] = {}  # what the broker holds from us

    def forget(self) -> None:
        """A new connection, or Home Assistant restarted: everything goes out again."""
        self._retained.clear()

    async def retained(self, client: aiomqtt.Client, topic: str, payload: str) -> None:
        if self._retained.get(topic) != payload:
            await client.publish(topic, payload, qos=1, retain=True)
            self._retained[topic] = payload

    async def stream(self, client: aiomqtt.Client, state: StreamState) -> None:
        t = self.topics
        await self.retained(client, t.state(state.id), "ON" if state.enabled else "OFF")
        await self.retained(client, t.status(state.id), state.status)
        await self.bitrate(client, state)

    async def bitrate(self, client: aiomqtt.Client, state: StreamState) -> None:
        """The bitrate (not retained: a number of now) and the attributes with it."""
        await client.publish(self.topics.bitrate(state.id), kbps(state))
        attributes = {
            "pid": state.pid,
            "uptime_s": state.uptime_s,
            "restarts": state.restarts,
            "cpu_percent": state.cpu_percent,
            "rss_mb": state.rss_mb,
            "last_error": state.last_error,  # masked by the router
            "error_kind": state.error_kind,
            "error_detail": state.error_detail,
            "url": state.url,
            "next_change_at": state.next_change_at,
            "next_change_to": state.next_change_to,
            "retry_at": state.retry_at,
            "delay_ms": state.delay_ms,
            "backlog_bytes": state.backlog_bytes,
            "dropped_share": state.dropped_share,
            "down_since": state.down_since,
            "problem": state.problem,
            "congested": state.status == "congested",
        }
        await self.retained(client, self.topics.attributes(state.id), json.dumps(attributes))

    async def ingest(self, client: aiomqtt.Client, ingest: IngestState, standby: bool) -> None:
        """The host's ingest topics; with `standby`, its standby and "be right back"."""
        t = self.topics
        state = "live" if ingest.live else "idle"
        await self.retained(client, t.ingest_status, state)
        await self.retained(client, t.shared_ingest_status, state)
        await self.retained(client, t.ingest_info, ingest_info(ingest))
        # empty (the retained message gone) while there is no problem
        await self.retained(client, t.ingest_problem, ingest.problem or "")
        if standby:
            await self.retained(client, t.standby, "ON" if ingest.standby else "OFF")
            await self.retained(client, t.brb, "ON" if ingest.standby_held else "OFF")

    async def source(self, client: aiomqtt.Client, source_id: str, ingest: IngestState) -> None:
        """One more ingest source's topics (main's are the ingest topics above)."""
        t = self.topics
        await self.retained(client, t.source_status(source_id), "live" if ingest.live else "idle")
        await self.retained(client, t.source_info(source_id), ingest_info(ingest))


def kbps(state: StreamState) -> str:
    return f"{state.bitrate_kbps:g}" if state.status == "live" else "0"
