"""Relays made to one pattern: built once from the `ffmpeg` and `ingest`
sections, then asked for a relay per destination, at start or at run time."""

from __future__ import annotations

import dataclasses
import logging
import weakref
from collections.abc import Callable, Iterable, Mapping

from mqttrelay.config import MAIN_SOURCE, FfmpegConfig, IngestConfig, StreamConfig
from mqttrelay.hub.hub import Hub
from mqttrelay.hub.source import IngestSource
from mqttrelay.lib.redact import Redactor
from mqttrelay.relays.encoder import ProfileEncoder
from mqttrelay.relays.relay import Relay, RelaySettings
from mqttrelay.relays.tls_tunnel import find_stunnel

log = logging.getLogger(__name__)


def encoder_key(profile: str, source: str) -> str:
    """An output profile's encoder on a source: `main`'s keep the profile's name."""
    return profile if source == MAIN_SOURCE else f"{profile}@{source}"


@dataclasses.dataclass(frozen=True)
class SourceReader:
    """One ingest source as the relays see it: its reader, its hub (cached mode)
    and its URL (what a direct-mode relay pulls)."""

    reader: IngestSource
    hub: Hub | None
    url: str


class RelayFactory:
    def __init__(
        self,
        ffmpeg: FfmpegConfig,
        ingest: IngestConfig,
        owner: str,
        source: IngestSource,
        hub: Hub | None,
        streams: Iterable[StreamConfig] = (),
        overrides: dict[str, float] | None = None,
        encoders: Mapping[str, ProfileEncoder] | None = None,
        sources: Mapping[str, SourceReader] | None = None,
        *,
        redactor: Redactor,
    ) -> None:
        """`streams` only tells whether a missing stunnel is worth a warning;
        `overrides` change RelaySettings' timings (tests and benchmarks);
        `sources`: every ingest source by id (`source` and `hub` are `main`'s);
        every relay masks what it reads with `redactor`."""
        self.source = source
        self._hub = hub
        self._sources = dict(sources or {}) | {MAIN_SOURCE: SourceReader(source, hub, ingest.url)}
        self._encoders = encoders if encoders is not None else {}  # shared: reloads add to it
        self._settings = dataclasses.replace(
            RelaySettings(
                ffmpeg=ffmpeg.path,
                owner=owner,
                redactor=redactor,
                ingest_url=ingest.url,
                hold_s=ingest.hold_s,
                connect_timeout_s=ffmpeg.connect_timeout_s,
                stunnel=find_stunnel(ffmpeg.stunnel, streams),
            ),
            **(overrides or {}),  # type: ignore[arg-type]
        )
        self._made: weakref.WeakSet[Relay] = weakref.WeakSet()

    def set_ffmpeg(self, ffmpeg: str) -> None:
        """Every relay's next start uses this ffmpeg; running processes go on."""
        self._settings = dataclasses.replace(self._settings, ffmpeg=ffmpeg)
        for relay in self._made:
            relay.settings = dataclasses.replace(relay.settings, ffmpeg=ffmpeg)
        for encoder in self._encoders.values():
            encoder.ffmpeg = ffmpeg

    def __call__(self, stream: StreamConfig, on_change: Callable[[Relay, bool], None]) -> Relay:
        source = self._sources.get(stream.source)
        if source is None:  # a source added by a reload: it runs after a restart
            log.warning(
                "%s: source %s needs a restart to run; relaying main meanwhile",
                stream.id,
                stream.source,
            )
            source = self._sources[MAIN_SOURCE]
        key = encoder_key(stream.profile, stream.source) if stream.profile else None
        feed = self._encoders.get(key) if key else None
        if stream.profile and feed is None:  # direct mode until a restart applies the config
            log.warning(
                "%s: profile %s needs a restart to run; sent as it is", stream.id, stream.profile
            )
        settings = dataclasses.replace(self._settings, ingest_url=source.url)
        relay = Relay(stream, settings, source.reader, source.hub, on_change, feed)
        self._made.add(relay)
        return relay
