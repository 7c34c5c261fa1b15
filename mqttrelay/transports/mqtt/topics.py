"""The MQTT topic names of the contract (pure): one place builds and parses them."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Topics:
    """Every topic of the contract, from mqtt.base_topic and mqtt.node_id."""

    base: str
    node_id: str = "studio"

    @property
    def availability(self) -> str:
        """This host's availability (the last will): one host dying leaves the others'."""
        return self._host("status")

    @property
    def ingest_status(self) -> str:
        return self._host("ingest/status")

    @property
    def ingest_info(self) -> str:
        """JSON: what OBS announces (resolution, fps, codecs), retained."""
        return self._host("ingest/info")

    @property
    def ingest_problem(self) -> str:
        """Why a publisher's video cannot be read, retained; empty while there is none."""
        return self._host("ingest/problem")

    @property
    def ingest_picture(self) -> str:
        """A JPEG of OBS's picture every few seconds while live (not retained)."""
        return self._host("ingest/picture")

    def source_status(self, source_id: str) -> str:
        """`live` or `idle`, retained: one more ingest source (`main` keeps ingest/...)."""
        return self._host(f"source/{source_id}/status")

    def source_info(self, source_id: str) -> str:
        """JSON as ingest/info, for one more ingest source, retained."""
        return self._host(f"source/{source_id}/info")

    def source_picture(self, source_id: str) -> str:
        """A JPEG of that source's picture every few seconds while live (not retained)."""
        return self._host(f"source/{source_id}/picture")

    @property
    def standby(self) -> str:
        """ON while this host feeds the standby picture (with a `standby` section)."""
        return self._host("standby")

    @property
    def brb(self) -> str:
        """ON while the standby is held by hand ("be right back")."""
        return self._host("brb")

    @property
    def brb_set(self) -> str:
        return f"{self.brb}/set"

    @property
    def host_info(self) -> str:
        return self._host("info")

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
        return self._stream(stream_id, "set")

    def state(self, stream_id: str) -> str:
        return self._stream(stream_id, "state")

    def status(self, stream_id: str) -> str:
        return self._stream(stream_id, "status")

    def bitrate(self, stream_id: str) -> str:
        return self._stream(stream_id, "bitrate")

    def attributes(self, stream_id: str) -> str:
        return self._stream(stream_id, "attributes")

    def key_set(self, stream_id: str) -> str:
        """A new stream key (write-only: no topic ever carries it back)."""
        return self._stream(stream_id, "key/set")

    @property
    def key_wildcard(self) -> str:
        return f"{self.base}/+/key/set"

    def stream_of_key_topic(self, topic: str) -> str | None:
        """'B/<id>/key/set' -> '<id>'; None for anything else."""
        return self._stream_of(topic, "/key/set")

    def stream_of_set_topic(self, topic: str) -> str | None:
        """'B/<id>/set' -> '<id>'; None for anything else."""
        return self._stream_of(topic, "/set")

    def _stream_of(self, topic: str, suffix: str) -> str | None:
        prefix = f"{self.base}/"
        if not topic.startswith(prefix) or not topic.endswith(suffix):
            return None
        middle = topic[len(prefix) : -len(suffix)]
        return middle if middle and "/" not in middle else None

    def _host(self, tail: str) -> str:
        """This host's own topics: one host dying or leaving leaves the others'."""
        return f"{self.host_prefix}{self.node_id}/{tail}"

    def _stream(self, stream_id: str, tail: str) -> str:
        return f"{self.base}/{stream_id}/{tail}"
