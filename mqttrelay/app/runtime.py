"""What changes while the service runs: a reload (streams, schedules, a new
profile) and the two settings the page changes, ffmpeg.path and ingest.mode.

A reload has one way in, `Runtime.reload`: SIGHUP and POST /api/reload read
config.yaml again, the page's and Home Assistant's edits (control/config_editor.py)
come through `apply`, which changes those two settings first."""

from __future__ import annotations

import logging
from pathlib import Path

from mqttrelay.app.engine import Engines
from mqttrelay.config import Config, ConfigError, IngestMode, load_config
from mqttrelay.control.config_schedules import ConfigSchedules
from mqttrelay.control.reload import ReloadResult, plan_reload
from mqttrelay.control.router import Router
from mqttrelay.lib.redact import Redactor

log = logging.getLogger(__name__)


class Runtime:
    def __init__(
        self,
        config: Config,
        path: Path | None,
        engines: Engines,
        router: Router,
        schedules: ConfigSchedules,
        redactor: Redactor,
    ) -> None:
        """`config`: the one the service started with; `path`: its file, if any."""
        # every reload is planned against it: what started, with what reloads and
        # the page changed since (a section that needs a restart stays as it was)
        self.config = config
        self._path = path
        self._engines = engines
        self._router = router
        self._schedules = schedules
        self._redactor = redactor

    async def reload(self, new: Config | None = None) -> ReloadResult:
        """Reconcile streams and schedules with `new`, or with the config file read
        again; untouched relays keep running. Settings outside `streams` and
        `schedules` need a restart. Raises ConfigError, naming each problem, and
        then changes nothing."""
        if new is None:
            if self._path is None:
                raise ConfigError(["no config file to read again"])
            new = load_config(self._path)
        plan = plan_reload(self.config, new)
        self._redactor.add(new.secrets)
        self._engines.add_profiles(new.profiles)
        self._running(streams=new.streams, schedules=new.schedules, profiles=self._engines.profiles)
        await self._router.reconcile(plan, [s.id for s in new.streams])
        self._schedules.install(new.schedules)
        result = plan.result()
        log.info("config reloaded: %s", result.summary())
        return result

    async def apply(self, new: Config) -> ReloadResult:
        """A config changed from the page: the two settings the page changes,
        ffmpeg.path and ingest.mode, then its streams and schedules as a reload."""
        if new.ffmpeg.path != self.config.ffmpeg.path:
            self._engines.set_ffmpeg(new.ffmpeg.path)
            self._running(ffmpeg=self._engines.ffmpeg)
        if new.ingest.mode != self.config.ingest.mode:
            await self._switch_mode(new.ingest.mode)
        return await self.reload(new)

    async def _switch_mode(self, mode: IngestMode) -> None:
        """Relays that are on restart on the new readers; those off stay off."""
        self._running(ingest=self.config.ingest.model_copy(update={"mode": mode}))
        old = self._engines.current
        engine = self._engines.switch(mode, self.config.streams)
        await self._router.replace_engine(engine.relays, engine.main.reader, mode, engine.sources)
        await old.close_encoders()
        await old.stop_readers()
        engine.start()
        log.info("ingest mode is now %s", mode)

    def _running(self, **sections: object) -> None:
        self.config = self.config.model_copy(update=sections)
