"""Home Assistant MQTT discovery payloads and topic names (pure).

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

SUPPORT_URL = "https://github.com/mqttrelay/mqttrelay"
STATUS_OPTIONS = [s.value for s in Status]


@dataclass(frozen=True)
class Topics:
    """Every topic of the contract, from mqtt.base_topic and mqtt.node_id."""

    base: str
    node_id: str = "studio"

    @property
    def availability(self) -> str:
        """This host's availability (the last will): one host dying leaves the others'."""
        return f"{self.host_prefix}{self.node_id}/status"

    @property
    def ingest_status(self) -> str:
        return f"{self.host_prefix}{self.node_id}/ingest/status"

    @property
    def ingest_info(self) -> str:
        """JSON: what OBS announces (resolution, fps, codecs), retained."""
        return f"{self.host_prefix}{self.node_id}/ingest/info"

    @property
    def ingest_problem(self) -> str:
        """Why a publisher's video cannot be read, retained; empty while there is none."""
        return f"{self.host_prefix}{self.node_id}/ingest/problem"

    @property
    def ingest_picture(self) -> str:
        """A JPEG of OBS's picture every few seconds while live (not retained)."""
        return f"{self.host_prefix}{self.node_id}/ingest/picture"

    def source_status(self, source_id: str) -> str:
        """`live` or `idle`, retained: one more ingest source (`main` keeps ingest/...)."""
        return f"{self.host_prefix}{self.node_id}/source/{source_id}/status"

    def source_info(self, source_id: str) -> str:
        """JSON as ingest/info, for one more ingest source, retained."""
        return f"{self.host_prefix}{self.node_id}/source/{source_id}/info"

    def source_picture(self, source_id: str) -> str:
        """A JPEG of that source's picture every few seconds while live (not retained)."""
        return f"{self.host_prefix}{self.node_id}/source/{source_id}/picture"

    @property
    def standby(self) -> str:
        """ON while this host feeds the standby picture (with a `standby` section)."""
        return f"{self.host_prefix}{self.node_id}/standby"

    @property
    def brb(self) -> str:
        """ON while the standby is held by hand ("be right back")."""
        return f"{self.host_prefix}{self.node_id}/brb"

    @property
    def brb_set(self) -> str:
        return f"{self.brb}/set"

    @property
    def host_info(self) -> str:
        return f"{self.host_prefix}{self.node_id}/info"

    @property
    def host_prefix(self) -> str:
        return f"{self.base}/host/"

    @property
    def shared_availability(self) -> str:
        """B/status of the first release: right for a single host only."""
        return f"{self.base}/status"

    @property
    def shared_ingest_status(self) -> str:
        return f"{self.base}/ingest/status"

    @property
    def set_wildcard(self) -> str:
        return f"{self.base}/+/set"

    def set(self, stream_id: str) -> str:
        return f"{self.base}/{stream_id}/set"

    def state(self, stream_id: str) -> str:
        return f"{self.base}/{stream_id}/state"

    def status(self, stream_id: str) -> str:
        return f"{self.base}/{stream_id}/status"

    def bitrate(self, stream_id: str) -> str:
        return f"{self.base}/{stream_id}/bitrate"

    def attributes(self, stream_id: str) -> str:
        return f"{self.base}/{stream_id}/attributes"

    def key_set(self, stream_id: str) -> str:
        """A new stream key (write-only: no topic ever carries it back)."""
        return f"{self.base}/{stream_id}/key/set"

    @property
    def key_wildcard(self) -> str:
        return f"{self.base}/+/key/set"

    def stream_of_key_topic(self, topic: str) -> str | None:
        """'B/<id>/key/set' -> '<id>'; None for anything else."""
        prefix, suffix = f"{self.base}/", "/key/set"
        if not topic.startswith(prefix) or not topic.endswith(suffix):
            return None
        middle = topic[len(prefix) : -len(suffix)]
        return middle if middle and "/" not in middle else None

    def stream_of_set_topic(self, topic: str) -> str | None:
        """'B/<id>/set' -> '<id>'; None for anything else."""
        prefix = f"{self.base}/"
        if not topic.startswith(prefix) or not topic.endswith("/set"):
            return None
        middle = topic[len(prefix) : -len("/set")]
        return middle if middle and "/" not in middle else None


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


def stream_discovery(
    ctx: DiscoveryContext, stream_id: str, stream_name: str
) -> dict[str, dict[str, Any]]:
    """Config topic -> payload for one stream's entities."""
    t = ctx.topics
    switch = _common(ctx, "switch", f"{stream_id}", stream_name) | {
        "command_topic": t.set(stream_id),
        "state_topic": t.state(stream_id),
        "payload_on": "ON",
        "payload_off": "OFF",
        "state_on": "ON",
        "state_off": "OFF",
        "optimistic": False,
        "json_attributes_topic": t.attributes(stream_id),
        "icon": "mdi:broadcast",
    }
    bitrate = _common(ctx, "sensor", f"{stream_id}_bitrate", f"{stream_name} bitrate") | {
        "state_topic": t.bitrate(stream_id),
        "device_class": "data_rate",
        "unit_of_measurement": "kbit/s",
        "state_class": "measurement",
    }
    status = _common(ctx, "sensor", f"{stream_id}_status", f"{stream_name} status") | {
        "state_topic": t.status(stream_id),
        "device_class": "enum",
        "options": STATUS_OPTIONS,
        "json_attributes_topic": t.attributes(stream_id),
    }
    running = _common(ctx, "binary_sensor", f"{stream_id}_running", f"{stream_name} running") | {
        "state_topic": t.status(stream_id),
        "value_template": "{{ 'ON' if value in ('live', 'congested') else 'OFF' }}",
        "payload_on": "ON",
        "payload_off": "OFF",
        "device_class": "running",
    }
    next_change = _common(
        ctx, "sensor", f"{stream_id}_next_change", f"{stream_name} next change"
    ) | {
        "state_topic": t.attributes(stream_id),
        # "None" is Home Assistant's MQTT word for "no value": nothing is scheduled
        "value_template": "{{ value_json.next_change_at or 'None' }}",
        "device_class": "timestamp",
        "icon": "mdi:calendar-clock",
    }
    return (
        link_discovery(ctx, stream_id, stream_name)
        | new_key_discovery(ctx, stream_id, stream_name)
        | {
            config_topic(
                ctx.prefix, "sensor", ctx.node_id, f"{stream_id}_next_change"
            ): next_change,
            config_topic(ctx.prefix, "switch", ctx.node_id, stream_id): switch,
            config_topic(ctx.prefix, "sensor", ctx.node_id, f"{stream_id}_bitrate"): bitrate,
            config_topic(ctx.prefix, "sensor", ctx.node_id, f"{stream_id}_status"): status,
            config_topic(ctx.prefix, "binary_sensor", ctx.node_id, f"{stream_id}_running"): running,
        }
    )


def link_discovery(
    ctx: DiscoveryContext, stream_id: str, stream_name: str
) -> dict[str, dict[str, Any]]:
    """How the link to the platform keeps up: a problem flag (a long outage, or a
    link too slow for the stream), the delay behind OBS and the dropped share."""
    attributes = ctx.topics.attributes(stream_id)
    problem = _common(ctx, "binary_sensor", f"{stream_id}_problem", f"{stream_name} problem") | {
        "state_topic": attributes,
        "value_template": "{{ 'ON' if value_json.problem or value_json.congested else 'OFF' }}",
        "payload_on": "ON",
        "payload_off": "OFF",
        "device_class": "problem",
        "json_attributes_topic": attributes,
    }
    delay = _common(ctx, "sensor", f"{stream_id}_delay", f"{stream_name} delay") | {
        "state_topic": attributes,
        "value_template": "{{ (value_json.delay_ms / 1000) | round(1) "
        "if value_json.delay_ms is not none else 'None' }}",
        "device_class": "duration",
        "unit_of_measurement": "s",
        "state_class": "measurement",
        "icon": "mdi:timer-sand",
    }
    dropped = _common(ctx, "sensor", f"{stream_id}_dropped", f"{stream_name} dropped") | {
        "state_topic": attributes,
        "value_template": "{{ ((value_json.dropped_share or 0) * 100) | round(1) }}",
        "unit_of_measurement": "%",
        "state_class": "measurement",
        "icon": "mdi:package-variant-remove",
    }
    return {
        config_topic(ctx.prefix, "binary_sensor", ctx.node_id, f"{stream_id}_problem"): problem,
        config_topic(ctx.prefix, "sensor", ctx.node_id, f"{stream_id}_delay"): delay,
        config_topic(ctx.prefix, "sensor", ctx.node_id, f"{stream_id}_dropped"): dropped,
    }


def new_key_discovery(
    ctx: DiscoveryContext, stream_id: str, stream_name: str
) -> dict[str, dict[str, Any]]:
    """A password box that re-keys the destination (platforms that issue a key per
    broadcast). Never optimistic: Home Assistant would keep the key as the state.
    Its state is always empty, from a topic that never carries the key."""
    new_key = _common(ctx, "text", f"{stream_id}_new_key", f"{stream_name} new key") | {
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
    return {config_topic(ctx.prefix, "text", ctx.node_id, f"{stream_id}_new_key"): new_key}


def ingest_discovery(ctx: DiscoveryContext) -> dict[str, dict[str, Any]]:
    ingest = _common(ctx, "binary_sensor", "ingest_live", "Ingest live") | {
        "state_topic": ctx.topics.ingest_status,
        "payload_on": "live",
        "payload_off": "idle",
        "device_class": "running",
    }
    resolution = _common(ctx, "sensor", "ingest_resolution", "Ingest resolution") | {
        "state_topic": ctx.topics.ingest_info,
        "value_template": "{{ value_json.resolution or 'None' }}",
        "json_attributes_topic": ctx.topics.ingest_info,
        "icon": "mdi:monitor-screenshot",
    }
    # the same JSON as the resolution's: a publisher whose video cannot be read
    problem = _common(ctx, "sensor", "ingest_problem", "Ingest problem") | {
        "state_topic": ctx.topics.ingest_info,
        "value_template": "{{ value_json.problem or 'none' }}",
        "entity_category": "diagnostic",
        "icon": "mdi:alert-circle-outline",
    }
    out = {
        config_topic(ctx.prefix, "binary_sensor", ctx.node_id, "ingest_live"): ingest,
        config_topic(ctx.prefix, "sensor", ctx.node_id, "ingest_resolution"): resolution,
        config_topic(ctx.prefix, "sensor", ctx.node_id, "ingest_problem"): problem,
    }
    if ctx.picture:
        picture = _common(ctx, "image", "ingest_picture", "Ingest picture") | {
            "image_topic": ctx.topics.ingest_picture,
            "content_type": "image/jpeg",
        }
        out[config_topic(ctx.prefix, "image", ctx.node_id, "ingest_picture")] = picture
    for source_id in ctx.sources:
        out |= source_discovery(ctx, source_id)
    if ctx.standby:
        standby = _common(ctx, "binary_sensor", "standby", "Standby picture") | {
            "state_topic": ctx.topics.standby,
            "payload_on": "ON",
            "payload_off": "OFF",
            "icon": "mdi:television-pause",
        }
        out[config_topic(ctx.prefix, "binary_sensor", ctx.node_id, "standby")] = standby
        brb = _common(ctx, "switch", "brb", "Be right back") | {
            "command_topic": ctx.topics.brb_set,
            "state_topic": ctx.topics.brb,
            "payload_on": "ON",
            "payload_off": "OFF",
            "icon": "mdi:coffee",
        }
        out[config_topic(ctx.prefix, "switch", ctx.node_id, "brb")] = brb
    return out


def source_discovery(ctx: DiscoveryContext, source_id: str) -> dict[str, dict[str, Any]]:
    """One more ingest source's live, resolution and (cached mode) picture entities."""
    t, name, obj = ctx.topics, f"Source {source_id}", f"source_{source_id}"
    live = _common(ctx, "binary_sensor", f"{obj}_live", f"{name} live") | {
        "state_topic": t.source_status(source_id),
        "payload_on": "live",
        "payload_off": "idle",
        "device_class": "running",
    }
    resolution = _common(ctx, "sensor", f"{obj}_resolution", f"{name} resolution") | {
        "state_topic": t.source_info(source_id),
        "value_template": "{{ value_json.resolution or 'None' }}",
        "json_attributes_topic": t.source_info(source_id),
        "icon": "mdi:monitor-screenshot",
    }
    out = {
        config_topic(ctx.prefix, "binary_sensor", ctx.node_id, f"{obj}_live"): live,
        config_topic(ctx.prefix, "sensor", ctx.node_id, f"{obj}_resolution"): resolution,
    }
    if ctx.picture:
        picture = _common(ctx, "image", f"{obj}_picture", f"{name} picture") | {
            "image_topic": t.source_picture(source_id),
            "content_type": "image/jpeg",
        }
        out[config_topic(ctx.prefix, "image", ctx.node_id, f"{obj}_picture")] = picture
    return out


def all_discovery(
    ctx: DiscoveryContext, streams: list[tuple[str, str]]
) -> dict[str, dict[str, Any]]:
    """Every discovery config for these (id, name) streams and the ingest."""
    out = ingest_discovery(ctx)
    for stream_id, name in streams:
        out |= stream_discovery(ctx, stream_id, name)
    return out
