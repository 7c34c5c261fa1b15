"""Every part of one config as build() (compose.py) made and wired them, and the
core's start and stop: the router with its ingest readers, relays, clock and
state file. run() (serve.py) starts the rest around it: the managed nginx, MQTT
and the page."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

from fastapi import FastAPI

from mqttrelay.app.engine import Engines
from mqttrelay.app.runtime import Runtime
from mqttrelay.config import ScheduleConfig, StreamConfig
from mqttrelay.control.clock import Clock
from mqttrelay.control.config_editor import ConfigEditor
from mqttrelay.control.persistence import Persistence
from mqttrelay.control.router import Router
from mqttrelay.ffmpeg.check import ffmpeg_enhanced_rtmp_problem
from mqttrelay.hub.hub import Hub
from mqttrelay.hub.source import IngestSource
from mqttrelay.ingest.nginx.managed import ManagedNginx
from mqttrelay.ingest.rtmp.server import RtmpServer
from mqttrelay.lib import process
from mqttrelay.lib.redact import Redactor
from mqttrelay.relays.encoder import ProfileEncoder
from mqttrelay.relays.factory import RelayFactory
from mqttrelay.transports.mqtt.bridge import MqttBridge

log = logging.getLogger(__name__)


class StartupError(Exception):
    """The service cannot start as configured; the message says why."""


@dataclass(frozen=True)
class BuiltInIngest:
    """The built-in RTMP ingest (ingest.listen) with the address it was given."""

    server: RtmpServer
    listen: str


@dataclass(eq=False, kw_only=True)
class Service:
    """Start: the state file is read; the clock sets its saved timers again and
    says which change a downtime missed (applied before any relay starts);
    then the ingest readers, the relays and the clock start. Stop: the clock,
    a last write of the state file, the relays, the ingest readers."""

    owner: str  # marks every process the service starts (the state file's path)
    redactor: Redactor  # whatever logs or reads a child's output masks with it
    engines: Engines  # the ingest readers, encoders and relays' factory that run
    rtmp: BuiltInIngest | None
    clock: Clock
    router: Router
    persistence: Persistence
    runtime: Runtime  # reloads and the page's settings
    streams: list[StreamConfig]  # what start() makes relays for
    schedules: list[ScheduleConfig]  # what start() has the clock follow
    # what run() starts around the core
    editor: ConfigEditor | None  # config.yaml's, when started from a file
    bridge: MqttBridge | None  # when mqtt.enabled
    api: FastAPI  # the page and the API
    nginx: ManagedNginx | None  # when ingest.manage

    @property
    def hub(self) -> Hub | None:
        """`main`'s hub (cached mode)."""
        return self.engines.current.main.hub

    @property
    def hubs(self) -> dict[str, Hub]:
        return self.engines.current.hubs

    @property
    def source(self) -> IngestSource:
        return self.engines.current.main.reader

    @property
    def readers(self) -> Mapping[str, IngestSource]:
        return self.engines.current.sources.readers

    @property
    def encoders(self) -> dict[str, ProfileEncoder]:
        return self.engines.current.encoders

    @property
    def relays(self) -> RelayFactory:
        return self.engines.current.relays

    @property
    def rtmp_server(self) -> RtmpServer | None:
        return self.rtmp.server if self.rtmp is not None else None

    async def start(self) -> None:
        process.reap_orphans(self.owner)
        saved = self.persistence.file.load()
        desired = {s.id: saved.streams.get(s.id, s.enabled) for s in self.streams}
        missed = self.clock.catch_up(saved, self.schedules, list(desired))
        desired.update({stream_id: change.enabled for stream_id, change in missed.items()})
        await self._start_rtmp()
        self.clock.start(self.schedules)
        self.engines.current.start()
        self.router.start(self.streams, desired)
        self.persistence.save()

    async def stop(self) -> None:
        self.clock.stop()
        self.persistence.save()  # pending timers and the time we stopped, for the next start
        await self.router.stop()
        engine = self.engines.current
        await engine.close_encoders()
        if self.rtmp is not None:
            await self.rtmp.server.stop()  # first: its publishers' end reaches the hubs
        await engine.stop_readers()

    async def _start_rtmp(self) -> None:
        if self.rtmp is None:
            return
        try:
            await self.rtmp.server.start()
        except OSError as exc:
            raise StartupError(
                f"cannot listen on {self.rtmp.listen} for the built-in ingest: "
                f"{exc.strerror or exc}"
            ) from None
        problem = await ffmpeg_enhanced_rtmp_problem(self.engines.ffmpeg.path, self.owner)
        if problem is not None:
            log.warning("built-in ingest: %s", problem)
