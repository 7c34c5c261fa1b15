"""Home Assistant MQTT discovery payloads (pure; the topic names are topics.py's).

One device per mqttrelay instance (identified by mqtt.node_id); per stream a
switch, a bitrate sensor, a status sensor, a running binary sensor, a
next-change timestamp sensor and a "new key" password box; the ingest's binary
sensor, resolution and problem sensors (and its picture, standby and "be right
back"). Entity names never repeat the device name (Home Assistant prefixes it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mqttrelay import __version__
from mqttrelay.relays.status import Status
from mqttrelay.transports.mqtt.topics import Topics

SUPPORT_URL = "https://github.com/mqttrelay/mqttrelay"
STATUS_OPTIONS = [s.value for s in Status]


@dataclass(frozen=True)
class DiscoveryContext:
    topics: Topics  # the node id is the topics'
    prefix: str
    configuration_url: str | None
    standby: bool = False  # the config has a standby section: one more entity
    picture: bool = False  # cached mode: the ingest picture as an image entity
    sources: tuple[str, ...] = ()  # ingest sources besides main: entities of their own

    @property
    def node_id(self) -> str:
        return self.topics.node_id


def configuration_url(api_host: str, api_port: int) -> str:
    """The page's address for Home Assistant's device card ("Visit")."""
    host = "127.0.0.1" if api_host in ("0.0.0.0", "::") else api_host
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{api_port}/"


def config_topic(prefix: str, component: str, node_id: str, object_id: str) -> str:
    return f"{prefix}/{component}/{node_id}/{object_id}/config"


def config_wildcard(prefix: str, node_id: str) -> str:
    return f"{prefix}/+/{node_id}/+/config"


def _device(ctx: DiscoveryContext) -> dict[str, Any]:
    device: dict[str, Any] = {
        "identifiers": [f"mqttrelay_{ctx.node_id}"],
        "name": f"mqttrelay {ctx.node_id}",
        "manufacturer": "mqttrelay",
        "model": "Stream relay",
        "sw_version": __version__,
    }
    if ctx.configuration_url:
        device["configuration_url"] = ctx.configuration_url
    return device


def _common(ctx: DiscoveryContext, component: str, object_id: str, name: str) -> dict[str, Any]:
    return {
        "name": name,
        "unique_id": f"{ctx.node_id}_{object_id}",
        # Home Assistant 2025.10 and later; the entity ids of the first release
        # (object_id, deprecated then, dropped in 2026.4)
        "default_entity_id": f"{component}.{ctx.node_id}_{object_id}",
        "availability_topic": ctx.topics.availability,
        "payload_available": "online",
        "payload_not_available": "offline",
        "device": _device(ctx),
        "origin": {"name": "mqttrelay", "sw_version": __version__, "support_url": SUPPORT_URL},
    }


_ON_OFF = {"payload_on": "ON", "payload_off": "OFF"}

Entities = dict[str, dict[str, Any]]  # config topic -> payload


def _entity(
    ctx: DiscoveryContext, component: str, object_id: str, name: str, fields: dict[str, Any]
) -> Entities:
    """One entity: its config topic and its payload (the common keys, then `fields`)."""
    topic = config_topic(ctx.prefix, component, ctx.node_id, object_id)
    return {topic: _common(ctx, component, object_id, name) | fields}


def stream_discovery(ctx: DiscoveryContext, stream_id: str, stream_name: str) -> Entities:
    """Config topic -> payload for one stream's entities."""
    t = ctx.topics
    next_change = {
        "state_topic": t.attributes(stream_id),
        # "None" is Home Assistant's MQTT word for "no value": nothing is scheduled
        "value_template": "{{ value_json.next_change_at or 'None' }}",
        "device_class": "timestamp",
        "icon": "mdi:calendar-clock",
    }
    switch = {
        "command_topic": t.set(stream_id),
        "state_topic": t.state(stream_id),
        **_ON_OFF,
        "state_on": "ON",
        "state_off": "OFF",
        "optimistic": False,
        "json_attributes_topic": t.attributes(stream_id),
        "icon": "mdi:broadcast",
    }
    bitrate = {
        "state_topic": t.bitrate(stream_id),
        "device_class": "data_rate",
        "unit_of_measurement": "kbit/s",
        "state_class": "measurement",
    }
    status = {
        "state_topic": t.status(stream_id),
        "device_class": "enum",
        "options": STATUS_OPTIONS,
        "json_attributes_topic": t.attributes(stream_id),
    }
    running = {
        "state_topic": t.status(stream_id),
        "value_template": "{{ 'ON' if value in ('live', 'congested') else 'OFF' }}",
        **_ON_OFF,
        "device_class": "running",
    }
    return (
        link_discovery(ctx, stream_id, stream_name)
        | new_key_discovery(ctx, stream_id, stream_name)
        | _entity(
            ctx, "sensor", f"{stream_id}_next_change", f"{stream_name} next change", next_change
        )
        | _entity(ctx, "switch", stream_id, stream_name, switch)
        | _entity(ctx, "sensor", f"{stream_id}_bitrate", f"{stream_name} bitrate", bitrate)
        | _entity(ctx, "sensor", f"{stream_id}_status", f"{stream_name} status", status)
        | _entity(ctx, "binary_sensor", f"{stream_id}_running", f"{stream_name} running", running)
    )


def link_discovery(ctx: DiscoveryContext, stream_id: str, stream_name: str) -> Entities:
    """How the link to the platform keeps up: a problem flag (a long outage, or a
    link too slow for the stream), the delay behind OBS and the dropped share."""
    attributes = ctx.topics.attributes(stream_id)
    problem = {
        "state_topic": attributes,
        "value_template": "{{ 'ON' if value_json.problem or value_json.congested else 'OFF' }}",
        **_ON_OFF,
        "device_class": "problem",
        "json_attributes_topic": attributes,
    }
    delay = {
        "state_topic": attributes,
        "value_template": "{{ (value_json.delay_ms / 1000) | round(1) "
        "if value_json.delay_ms is not none else 'None' }}",
        "device_class": "duration",
        "unit_of_measurement": "s",
        "state_class": "measurement",
        "icon": "mdi:timer-sand",
    }
    dropped = {
        "state_topic": attributes,
        "value_template": "{{ ((value_json.dropped_share or 0) * 100) | round(1) }}",
        "unit_of_measurement": "%",
        "state_class": "measurement",
        "icon": "mdi:package-variant-remove",
    }
    return (
        _entity(ctx, "binary_sensor", f"{stream_id}_problem", f"{stream_name} problem", problem)
        | _entity(ctx, "sensor", f"{stream_id}_delay", f"{stream_name} delay", delay)
        | _entity(ctx, "sensor", f"{stream_id}_dropped", f"{stream_name} dropped", dropped)
    )


def new_key_discovery(ctx: DiscoveryContext, stream_id: str, stream_name: str) -> Entities:
    """A password box that re-keys the destination (platforms that issue a key per
    broadcast). Never optimistic: Home Assistant would keep the key as the state.
    Its state is always empty, from a topic that never carries the key."""
    new_key = {
        "command_topic": ctx.topics.key_set(stream_id),
        "retain": False,
        "qos": 1,
        "mode": "password",
        "min": 0,  # the empty state must be valid
        "max": 255,
        "state_topic": ctx.topics.attributes(stream_id),
        "value_template": "{{ '' }}",
        "entity_category": "config",
        "icon": "mdi:key-change",
    }
    return _entity(ctx, "text", f"{stream_id}_new_key", f"{stream_name} new key", new_key)


def _feed(
    ctx: DiscoveryContext, obj: str, name: str, status_topic: str, info_topic: str
) -> Entities:
    """A feed's live flag and resolution (the ingest's main feed, or one more source)."""
    live = {
        "state_topic": status_topic,
        "payload_on": "live",
        "payload_off": "idle",
        "device_class": "running",
    }
    resolution = {
        "state_topic": info_topic,
        "value_template": "{{ value_json.resolution or 'None' }}",
        "json_attributes_topic": info_topic,
        "icon": "mdi:monitor-screenshot",
    }
    return _entity(ctx, "binary_sensor", f"{obj}_live", f"{name} live", live) | _entity(
        ctx, "sensor", f"{obj}_resolution", f"{name} resolution", resolution
    )


def _picture(ctx: DiscoveryContext, obj: str, name: str, image_topic: str) -> Entities:
    """A feed's picture (cached mode only: the hub takes it)."""
    if not ctx.picture:
        return {}
    fields = {"image_topic": image_topic, "content_type": "image/jpeg"}
    return _entity(ctx, "image", f"{obj}_picture", f"{name} picture", fields)


def ingest_discovery(ctx: DiscoveryContext) -> Entities:
    t = ctx.topics
    # the same JSON as the resolution's: a publisher whose video cannot be read
    problem = {
        "state_topic": t.ingest_info,
        "value_template": "{{ value_json.problem or 'none' }}",
        "entity_category": "diagnostic",
        "icon": "mdi:alert-circle-outline",
    }
    out = (
        _feed(ctx, "ingest", "Ingest", t.ingest_status, t.ingest_info)
        | _entity(ctx, "sensor", "ingest_problem", "Ingest problem", problem)
        | _picture(ctx, "ingest", "Ingest", t.ingest_picture)
    )
    for source_id in ctx.sources:
        out |= source_discovery(ctx, source_id)
    if ctx.standby:
        standby = {"state_topic": t.standby, **_ON_OFF, "icon": "mdi:television-pause"}
        brb = {
            "command_topic": t.brb_set,
            "state_topic": t.brb,
            **_ON_OFF,
            "icon": "mdi:coffee",
        }
        out |= _entity(ctx, "binary_sensor", "standby", "Standby picture", standby)
        out |= _entity(ctx, "switch", "brb", "Be right back", brb)
    return out


def source_discovery(ctx: DiscoveryContext, source_id: str) -> Entities:
    """One more ingest source's live, resolution and (cached mode) picture entities."""
    t, name, obj = ctx.topics, f"Source {source_id}", f"source_{source_id}"
    return _feed(ctx, obj, name, t.source_status(source_id), t.source_info(source_id)) | _picture(
        ctx, obj, name, t.source_picture(source_id)
    )


def all_discovery(ctx: DiscoveryContext, streams: list[tuple[str, str]]) -> Entities:
    """Every discovery config for these (id, name) streams and the ingest."""
    out = ingest_discovery(ctx)
    for stream_id, name in streams:
        out |= stream_discovery(ctx, stream_id, name)
    return out
