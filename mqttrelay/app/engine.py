"""The data path of one ingest mode: a reader per ingest source (in cached mode a
hub), the output profiles' encoders on each hub, and the relays' factory on them.

`Engines` is made once from the sections it reads (ingest, ffmpeg, standby,
profiles) and keeps the engine that runs; a mode switch (runtime.py) has it make
another."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from mqttrelay.config import (
    MAIN_SOURCE,
    FfmpegConfig,
    IngestConfig,
    IngestMode,
    ProfileConfig,
    StandbyConfig,
    StreamConfig,
    ingest_app_and_stream,
)
from mqttrelay.control.router import Sources
from mqttrelay.hub.hub import Hub
from mqttrelay.hub.standby import LoopMaker, ffprobe_beside
from mqttrelay.ingest.nginx.direct import DirectIngest
from mqttrelay.ingest.rtmp.feed import RtmpFeed
from mqttrelay.lib.redact import Redactor
from mqttrelay.relays.encoder import ProfileEncoder
from mqttrelay.relays.factory import RelayFactory, SourceReader, encoder_key


@dataclass(eq=False)
class Engine:
    readers: dict[str, SourceReader]  # by source id
    encoders: dict[str, ProfileEncoder]  # by encoder_key; a reload adds to it
    relays: RelayFactory
    sources: Sources  # the readers as the router sees them

    @property
    def main(self) -> SourceReader:
        return self.readers[MAIN_SOURCE]

    @property
    def hubs(self) -> dict[str, Hub]:
        """The cached mode's hubs by source id (none in direct mode)."""
        return {i: r.hub for i, r in self.readers.items() if r.hub is not None}

    def start(self) -> None:
        for source in self.readers.values():
            source.reader.start()

    async def close_encoders(self) -> None:
        for encoder in self.encoders.values():
            await encoder.close()

    async def stop_readers(self) -> None:
        for source in self.readers.values():
            await source.reader.stop()


class Engines:
    def __init__(
        self,
        ingest: IngestConfig,
        ffmpeg: FfmpegConfig,
        standby: StandbyConfig | None,
        profiles: Mapping[str, ProfileConfig],
        streams: list[StreamConfig],
        *,
        owner: str,
        redactor: Redactor,
        feeds: Mapping[str, RtmpFeed],
        relay_overrides: dict[str, float] | None = None,
    ) -> None:
        """`feeds`: the built-in ingest's, by source id (none without ingest.listen);
        `relay_overrides`: RelaySettings' timings (tests and benchmarks)."""
        self._ingest = ingest
        self.ffmpeg = ffmpeg  # its path as the page last set it
        self._standby = standby if standby is not None and standby.enabled else None
        self.profiles = dict(profiles)  # a reload adds new ones; a changed one runs as it was
        self._owner = owner
        self._redactor = redactor
        self._feeds = feeds
        self._overrides = relay_overrides
        self.current = self.make(ingest.mode, streams)

    def make(self, mode: IngestMode, streams: list[StreamConfig]) -> Engine:
        """`streams` only tells whether a missing stunnel is worth a warning."""
        readers = {
            source_id: self._reader(mode, url, self._feeds.get(source_id))
            for source_id, url in self._ingest.source_urls.items()
        }
        hubs = {i: r.hub for i, r in readers.items() if r.hub is not None}
        for source_id, backup in self._ingest.backups.items():
            if source_id in hubs and backup in hubs:
                hubs[source_id].set_backup(hubs[backup], f"{source_id}'s backup {backup}")
        main = readers[MAIN_SOURCE]
        encoders: dict[str, ProfileEncoder] = {}
        self._add_encoders(hubs, encoders)
        relays = RelayFactory(
            self.ffmpeg,
            self._ingest,
            self._owner,
            main.reader,
            main.hub,
            streams,
            self._overrides,
            encoders,
            readers,
            redactor=self._redactor,
        )
        stream_names = {
            i: ingest_app_and_stream(url)[1] for i, url in self._ingest.source_urls.items()
        }
        # sources on the tracks of one stream name: a hook for that name is the first's
        names = {name: i for i, name in reversed(stream_names.items())}
        sources = Sources(
            {i: r.reader for i, r in readers.items()}, names, self._ingest.backups, stream_names
        )
        return Engine(readers, encoders, relays, sources)

    def switch(self, mode: IngestMode, streams: list[StreamConfig]) -> Engine:
        """Another mode's engine, from now on the current one; the caller stops the
        old one's encoders and readers and starts the new one's."""
        self.current = self.make(mode, streams)
        return self.current

    def _reader(self, mode: IngestMode, url: str, feed: RtmpFeed | None) -> SourceReader:
        """One source's reader: a hub (cached mode) or the direct mode's state."""
        standby, ffmpeg = self._standby, self.ffmpeg.path
        if mode == "cached":
            loops = (
                LoopMaker(
                    ffmpeg, ffprobe_beside(ffmpeg), standby.image, self._owner, self._redactor
                )
                if standby
                else None
            )
            hub = Hub(
                ffmpeg,
                url,
                self._owner,
                self._redactor,
                standby=loops,
                standby_max_s=standby.max_s if standby else 0.0,
                feed=feed,
            )
            return SourceReader(hub, hub, url)
        return SourceReader(DirectIngest(url, self._ingest.stat_url), None, url)

    def add_profiles(self, profiles: Mapping[str, ProfileConfig]) -> None:
        """A reload's profiles: a new one gets its encoders at once; a changed one
        runs as it was until a restart."""
        self.profiles = dict(profiles) | self.profiles
        self._add_encoders(self.current.hubs, self.current.encoders)

    def _add_encoders(self, hubs: Mapping[str, Hub], encoders: dict[str, ProfileEncoder]) -> None:
        """An encoder for each profile and source that has none yet (idle until a
        relay needs it)."""
        for source_id, hub in hubs.items():
            for name, profile in self.profiles.items():
                key = encoder_key(name, source_id)
                if key not in encoders:
                    encoders[key] = ProfileEncoder(
                        key, profile, self.ffmpeg.path, self._owner, hub, self._redactor
                    )

    def set_ffmpeg(self, path: str) -> None:
        """The running relays, encoders and hubs start this ffmpeg next; so does
        an engine made later."""
        self.ffmpeg = self.ffmpeg.model_copy(update={"path": path})
        self.current.relays.set_ffmpeg(path)
        for hub in self.current.hubs.values():
            hub.set_ffmpeg(path)
