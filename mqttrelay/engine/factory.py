"""Relays made to one pattern: built once from the `ffmpeg` and `ingest`
sections, then asked for a relay per destination, at start or at run time."""

from __future__ import annotations

import dataclasses
import logging
import weakref
from collections.abc import Callable, Iterable, Mapping

from mqttrelay.config import FfmpegConfig, IngestConfig, StreamConfig
from mqttrelay.engine.encoder import ProfileEncoder
from mqttrelay.engine.hub import Hub
from mqttrelay.engine.relay import Relay, RelaySettings
from mqttrelay.engine.source import IngestSource
from mqttrelay.engine.tls_tunnel import find_stunnel
from mqttrelay.lib.redact import Redactor

log = logging.getLogger(__name__)


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
        *,
        redactor: Redactor,
    ) -> None:
        """`streams` only tells whether a missing stunnel is worth a warning;
        `overrides` change RelaySettings' timings (tests and benchmarks); every
        relay masks what it reads with `redactor`."""
        self.source = source
        self._hub = hub
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
        feed = self._encoders.get(stream.profile) if stream.profile else None
        if stream.profile and feed is None:  # direct mode until a restart applies the config
            log.warning(
                "%s: profile %s needs a restart to run; sent as it is", stream.id, stream.profile
            )
        relay = Relay(stream, self._settings, self.source, self._hub, on_change, feed)
        self._made.add(relay)
        return relay
