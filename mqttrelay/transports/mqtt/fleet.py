"""Several mqttrelay hosts on one broker (pure): what each announces, and the
conflicts that follow from it.

Each host publishes, retained, `B/host/<node_id>/info` (its run's instance id and
stream ids) and its availability on `B/host/<node_id>/status`. Every host reads
the others': a stream id that two online hosts both have, or a node_id that two
running hosts share, is reported instead of left to fight over retained topics.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field


@dataclass(frozen=True)
class HostInfo:
    instance: str
    streams: tuple[str, ...]


def encode_info(instance: str, streams: list[str]) -> str:
    return json.dumps({"instance": instance, "streams": sorted(streams)}, separators=(",", ":"))


def decode_info(payload: bytes) -> HostInfo | None:
    """None for an empty (removed) or malformed announcement."""
    try:
        raw = json.loads(payload) if payload else None
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(raw, dict) or not isinstance(raw.get("instance"), str):
        return None
    streams = raw.get("streams")
    if not isinstance(streams, list) or not all(isinstance(s, str) for s in streams):
        return None
    return HostInfo(raw["instance"], tuple(streams))


@dataclass
class Fleet:
    """What this host knows of the hosts on its broker."""

    node_id: str
    instance: str
    hosts: dict[str, HostInfo] = field(default_factory=dict)
    online: dict[str, bool] = field(default_factory=dict)

    def seen_info(self, node: str, payload: bytes) -> None:
        info = decode_info(payload)
        if info is None:
            self.hosts.pop(node, None)
        else:
            self.hosts[node] = info

    def seen_status(self, node: str, payload: bytes) -> None:
        self.online[node] = payload.strip() == b"online"

    def owner_of(self, stream_id: str) -> str | None:
        """Another online host that has this stream."""
        for node, info in sorted(self.hosts.items()):
            if node != self.node_id and self.online.get(node) and stream_id in info.streams:
                return node
        return None

    def problems(self, own_streams: list[str]) -> list[str]:
        out = []
        mine = self.hosts.get(self.node_id)
        if mine is not None and mine.instance != self.instance:
            out.append(
                f"another mqttrelay on this broker also uses node_id '{self.node_id}': "
                "give each host its own mqtt.node_id"
            )
        for stream_id in sorted(own_streams):
            other = self.owner_of(stream_id)
            if other is not None:
                out.append(
                    f"stream id '{stream_id}' is also on host '{other}': commands on "
                    f"its topics reach both; rename it on one of them"
                )
        return out


def node_of(topic: str, prefix: str, leaf: str) -> str | None:
    """'B/host/<node>/<leaf>' -> '<node>'."""
    if not topic.startswith(prefix) or not topic.endswith("/" + leaf):
        return None
    node = topic[len(prefix) : -len(leaf) - 1]
    return node if node and "/" not in node else None
