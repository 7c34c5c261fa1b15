"""The composition root: config.yaml's sections handed to the parts that read
them, the parts wired together, and started and stopped in order.

Below this module no part holds the whole Config: each gets its section."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from mqttrelay.config import (
    MAIN_SOURCE,
    Config,
    ConfigError,
    ingest_app_and_stream,
    is_loopback,
    load_config,
    policy_problems,
    split_listen,
)
from mqttrelay.control.clock import Clock
from mqttrelay.control.config_editor import ConfigEditor
from mqttrelay.control.persistence import Persistence, StateFile
from mqttrelay.control.reload import ReloadResult, plan_reload
from mqttrelay.control.router import ChangeEvent, Router, Sources
from mqttrelay.ffmpeg.check import (
    encoder_problems,
    ffmpeg_enhanced_rtmp_problem,
    ffmpeg_problem,
)
from mqttrelay.hub.hub import Hub
from mqttrelay.hub.source import IngestSource
from mqttrelay.hub.standby import LoopMaker, ffprobe_beside
from mqttrelay.ingest.nginx.direct import DirectIngest
from mqttrelay.ingest.nginx.hook_secret import hook_secret_path, load_hook_secret
from mqttrelay.ingest.nginx.managed import ManagedNginx, NginxError
from mqttrelay.ingest.rtmp.feed import RtmpFeed
from mqttrelay.ingest.rtmp.server import RtmpServer
from mqttrelay.ingest.rtmp.tracks import stream_sinks
from mqttrelay.lib import process
from mqttrelay.lib.aio import cancel_and_wait
from mqttrelay.lib.limits import RESERVE_FILES, QuietLoopErrors, raise_open_file_limit
from mqttrelay.lib.redact import Redactor
from mqttrelay.relays.encoder import ProfileEncoder
from mqttrelay.relays.factory import RelayFactory, SourceReader, encoder_key
from mqttrelay.transports.http.api import ApiContext, create_app
from mqttrelay.transports.http.server import (
    ApiServer,
    bind_api_socket,
    guard_for,
    uvicorn_config,
)
from mqttrelay.transports.mqtt.bridge import MqttBridge
from mqttrelay.transports.mqtt.discovery import configuration_url

log = logging.getLogger(__name__)


class StartupError(Exception):
    """The service cannot start as configured; the message says why."""


def check_api_exposure(config: Config) -> None:
    if not is_loopback(config.api.host) and not config.api.token:
        raise StartupError(
            f"api.host is {config.api.host}, reachable from other machines, but api.token is "
            "not set: set a token (clients send 'Authorization: Bearer <token>') or bind "
            "api.host to 127.0.0.1"
        )


class Service:
    """The router with its ingest reader, relays, clock and state file.

    Start: the state file is read; the clock sets its saved timers again and
    says which change a downtime missed (applied before any relay starts);
    then the ingest reader, the relays and the clock start. Stop: the clock,
    a last write of the state file, the relays, the ingest reader."""

    def __init__(
        self,
        config: Config,
        relay_overrides: dict[str, float] | None = None,
        redactor: Redactor | None = None,
    ) -> None:
        """`redactor`: the log formatter's (cli.py), else one of its own; whatever
        logs or reads a child's output is handed this one."""
        self.config = config
        self.owner = str(config.state_file.resolve())  # marks every process we start
        self.redactor = redactor if redactor is not None else Redactor()
        self.redactor.add(config.secrets)
        self._relay_overrides = relay_overrides
        self.encoders: dict[str, ProfileEncoder] = {}
        # the built-in ingest (ingest.listen) feeds each source's hub in-process, for good
        self.rtmp_feeds = (
            {source_id: RtmpFeed() for source_id in config.ingest.source_urls}
            if config.ingest.listen
            else {}
        )
        self.rtmp_server = _rtmp_server(config, self.rtmp_feeds)
        self.hub, self.source, self.relays = self._engine(config)
        self.clock = Clock(
            config.timezone,
            lambda: self.router.stream_ids,
            lambda stream_id, on, source: self.router.switch(stream_id, on, source),
            lambda: self.persistence.save(),
        )
        self.router = Router(
            self.relays,
            self.source,
            config.ingest.mode,
            self.clock,
            lambda: [encoder.state() for encoder in self.encoders.values()],
            self._sources(config),
            redactor=self.redactor,
        )
        self.persistence = Persistence(
            StateFile(config.state_file), self.router.desired, self.clock.pending
        )
        self.router.add_listener(self._changed)

    def _engine(self, config: Config) -> tuple[Hub | None, IngestSource, RelayFactory]:
        """A reader per ingest source (config.ingest.mode's kind) and the relays'
        factory on them; self.hubs and self.encoders become the cached mode's hubs
        and the profiles' encoders on each."""
        readers = {
            source_id: self._reader(config, url, self.rtmp_feeds.get(source_id))
            for source_id, url in config.ingest.source_urls.items()
        }
        self.readers = {source_id: r.reader for source_id, r in readers.items()}
        self.hubs = {source_id: r.hub for source_id, r in readers.items() if r.hub is not None}
        for source_id, backup in config.ingest.backups.items():
            if source_id in self.hubs and backup in self.hubs:
                self.hubs[source_id].set_backup(self.hubs[backup], f"{source_id}'s backup {backup}")
        main = readers[MAIN_SOURCE]
        self.encoders = {}
        self._add_encoders(config)
        relays = RelayFactory(
            config.ffmpeg,
            config.ingest,
            self.owner,
            main.reader,
            main.hub,
            config.streams,
            self._relay_overrides,
            self.encoders,
            readers,
            redactor=self.redactor,
        )
        return main.hub, main.reader, relays

    def _reader(self, config: Config, url: str, feed: RtmpFeed | None) -> SourceReader:
        """One source's reader: a hub (cached mode) or the direct mode's state."""
        if config.ingest.mode != "cached":
            return SourceReader(DirectIngest(url, config.ingest.stat_url), None, url)
        standby = config.standby if config.standby and config.standby.enabled else None
        hub = Hub(
            config.ffmpeg.path,
            url,
            self.owner,
            self.redactor,
            standby=LoopMaker(
                config.ffmpeg.path,
                ffprobe_beside(config.ffmpeg.path),
                standby.image,
                self.owner,
                self.redactor,
            )
            if standby
            else None,
            standby_max_s=standby.max_s if standby else 0.0,
            feed=feed,
        )
        return SourceReader(hub, hub, url)

    def _add_encoders(self, config: Config) -> None:
        """An encoder for each profile and source that has none yet (idle until a
        relay needs it)."""
        for source_id, hub in self.hubs.items():
            for name, profile in config.profiles.items():
                key = encoder_key(name, source_id)
                if key not in self.encoders:
                    self.encoders[key] = ProfileEncoder(
                        key, profile, config.ffmpeg.path, self.owner, hub, self.redactor
                    )

    def _sources(self, config: Config) -> Sources:
        """The readers as the router sees them: by id, with their stream names."""
        return Sources(
            self.readers,
            # sources on the tracks of one stream name: the name is the first's
            {
                ingest_app_and_stream(url)[1]: i
                for i, url in reversed(config.ingest.source_urls.items())
            },
            config.ingest.backups,
        )

    def _changed(self, event: ChangeEvent) -> None:
        if event.kind in ("state", "config"):
            self.persistence.changed()

    async def start(self) -> None:
        process.reap_orphans(self.owner)
        saved = self.persistence.file.load()
        desired = {s.id: saved.streams.get(s.id, s.enabled) for s in self.config.streams}
        missed = self.clock.catch_up(saved, self.config.schedules, list(desired))
        desired.update({stream_id: change.enabled for stream_id, change in missed.items()})
        await self._start_rtmp()
        self.clock.start(self.config.schedules)
        for reader in self.readers.values():
            reader.start()
        self.router.start(self.config.streams, desired)
        self.persistence.save()

    async def stop(self) -> None:
        self.clock.stop()
        self.persistence.save()  # pending timers and the time we stopped, for the next start
        await self.router.stop()
        for encoder in self.encoders.values():
            await encoder.close()
        if self.rtmp_server is not None:
            await self.rtmp_server.stop()  # first: its publishers' end reaches the hubs
        for reader in self.readers.values():
            await reader.stop()

    async def _start_rtmp(self) -> None:
        if self.rtmp_server is None:
            return
        try:
            await self.rtmp_server.start()
        except OSError as exc:
            raise StartupError(
                f"cannot listen on {self.config.ingest.listen} for the built-in ingest: "
                f"{exc.strerror or exc}"
            ) from None
        problem = await ffmpeg_enhanced_rtmp_problem(self.config.ffmpeg.path, self.owner)
        if problem is not None:
            log.warning("built-in ingest: %s", problem)

    async def reload(self, new: Config) -> ReloadResult:
        """Reconcile streams and schedules with a new config; untouched relays keep
        running. Settings outside `streams` and `schedules` need a restart."""
        plan = plan_reload(self.config, new)
        self.redactor.add(new.secrets)
        self._add_encoders(new)  # a profile added by the reload
        profiles = new.profiles | self.config.profiles  # a changed one runs as it was
        self.config = self.config.model_copy(
            update={"streams": new.streams, "schedules": new.schedules, "profiles": profiles}
        )
        await self.router.reconcile(plan, [s.id for s in new.streams])
        self.clock.schedules.install(new.schedules)
        result = plan.result()
        log.info("config reloaded: %s", result.summary())
        return result

    async def apply(self, new: Config) -> ReloadResult:
        """A config changed from the page: its streams and schedules as a reload,
        and the two settings the page changes, ffmpeg.path and ingest.mode."""
        if new.ffmpeg.path != self.config.ffmpeg.path:
            self.relays.set_ffmpeg(new.ffmpeg.path)
            for hub in self.hubs.values():
                hub.set_ffmpeg(new.ffmpeg.path)
            ffmpeg = self.config.ffmpeg.model_copy(update={"path": new.ffmpeg.path})
            self.config = self.config.model_copy(update={"ffmpeg": ffmpeg})
        if new.ingest.mode != self.config.ingest.mode:
            await self._switch_mode(new.ingest.mode)
        return await self.reload(new)

    async def _switch_mode(self, mode: Literal["cached", "direct"]) -> None:
        """Relays that are on restart on the new reader; those off stay off."""
        ingest = self.config.ingest.model_copy(update={"mode": mode})
        self.config = self.config.model_copy(update={"ingest": ingest})
        old, old_encoders = self.readers, self.encoders
        self.hub, self.source, self.relays = self._engine(self.config)
        await self.router.replace_engine(self.relays, self.source, mode, self._sources(self.config))
        for encoder in old_encoders.values():
            await encoder.close()
        for reader in old.values():
            await reader.stop()
        for reader in self.readers.values():
            reader.start()
        log.info("ingest mode is now %s", mode)

    def editor(self, path: Path) -> ConfigEditor:
        """Destinations and settings changed from the page, kept in this config file."""
        return ConfigEditor(path, self.apply, lambda ffmpeg: ffmpeg_problem(ffmpeg, self.owner))

    async def reload_file(self, path: Path) -> ReloadResult:
        """Raises ConfigError, naming each problem, and then changes nothing."""
        return await self.reload(load_config(path))


async def run(
    config: Config, config_path: Path | None = None, redactor: Redactor | None = None
) -> None:
    """Run until SIGTERM or SIGINT, then stop every relay and return.

    Each part registers its own stop as it starts, so a failure half-way
    through start-up still stops what did start, in reverse order.
    """
    check_api_exposure(config)
    for problem in policy_problems(config):
        log.warning("%s", problem)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for problem in await encoder_problems(config.ffmpeg.path, config.profiles):
        raise StartupError(problem)
    open_files = raise_open_file_limit()
    async with contextlib.AsyncExitStack() as stack:
        stack.callback(loop.set_exception_handler, loop.get_exception_handler())
        loop.set_exception_handler(QuietLoopErrors())
        try:
            sock = bind_api_socket(config.api.host, config.api.port)
        except OSError as exc:
            raise StartupError(
                f"cannot listen on {config.api.host}:{config.api.port} for the web page and "
                f"API: {exc.strerror or exc}"
            ) from None
        stack.callback(sock.close)
        service = Service(config, redactor=redactor)
        hook_secret = _hook_secret(config)
        if config.ingest.manage:
            nginx = ManagedNginx.from_config(
                config.ingest, config.api, config.state_file, service.owner, hook_secret
            )
            process.reap_orphans(service.owner)  # an old run's nginx would hold the port
            stack.push_async_callback(nginx.stop)
            try:
                await nginx.start()
            except NginxError as exc:
                raise StartupError(f"managed ingest: {exc}") from None
        reloads: set[asyncio.Task[None]] = set()
        stack.callback(_install_signals(loop, stop, service, config_path, reloads))
        # one editor for the page and Home Assistant: their edits take turns
        editor = service.editor(config_path) if config_path is not None else None
        bridge = (
            MqttBridge(
                service.router,
                config.mqtt,
                configuration_url(config.api.host, config.api.port),
                editor,
            )
            if config.mqtt.enabled
            else None
        )
        if bridge is not None:
            stack.push_async_callback(bridge.stop)  # after the relays: their 'off' goes out
        stack.push_async_callback(service.stop)
        await service.start()
        if bridge is not None:
            bridge.start()
        path = config_path
        app = create_app(
            ApiContext(
                router=service.router,
                reload=(lambda: service.reload_file(path)) if path is not None else None,
                token=config.api.token,
                timezone=config.timezone,
                mqtt_enabled=bridge is not None,
                mqtt_connected=(lambda: bridge.connected) if bridge else (lambda: False),
                problems=(lambda: bridge.problems) if bridge else (lambda: []),
                api_host=config.api.host,
                allowed_hosts=tuple(config.api.allowed_hosts),
                frame_ancestors=tuple(config.api.frame_ancestors),
                ingress_proxy=config.api.ingress_proxy,
                hook_secret=hook_secret,
                hook_secret_required=config.ingest.manage,
                publish_key=config.ingest.publish_key,
                state_error=lambda: service.persistence.error,
                editor=editor,
            )
        )
        app.state.history.start()
        stack.push_async_callback(app.state.history.stop)
        server = ApiServer(uvicorn_config(app, guard_for(open_files, RESERVE_FILES)))
        server_task = asyncio.create_task(server.serve(sockets=[sock]), name="http")
        stop_task = asyncio.create_task(stop.wait())

        async def stop_http() -> None:
            app.state.broker.close()  # end the pages' event streams so uvicorn can finish
            server.should_exit = True
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(server_task), 5)
            await cancel_and_wait(server_task, stop_task, *reloads)

        stack.push_async_callback(stop_http)
        log.info(
            "mqttrelay running: %d stream(s), ingest %s (%s mode), web page http://%s:%d/",
            len(config.streams),
            config.ingest.url,
            config.ingest.mode,
            config.api.host,
            config.api.port,
        )
        await asyncio.wait([server_task, stop_task], return_when=asyncio.FIRST_COMPLETED)
        if not stop.is_set():
            log.error("the web server stopped unexpectedly")
        log.info("stopping")
    log.info("stopped")


def _rtmp_server(config: Config, feeds: dict[str, RtmpFeed]) -> RtmpServer | None:
    """The built-in ingest: ingest.listen, for each source's /<app>/<stream name>
    (ingest.url's for main, each ingest.sources[].url's for the others) and its
    tracks of that publish (sources on one name share it)."""
    if config.ingest.listen is None or not feeds:
        return None
    host, port = split_listen(config.ingest.listen)
    tracks = config.ingest.source_tracks
    sinks = stream_sinks(
        ("/".join(ingest_app_and_stream(url)), source_id, *tracks[source_id], feeds[source_id])
        for source_id, url in config.ingest.source_urls.items()
    )
    return RtmpServer(host, port, sinks, config.ingest.publish_key)


def _hook_secret(config: Config) -> str:
    try:
        return load_hook_secret(config.ingest.hook_secret, config.state_file)
    except OSError as exc:
        # a managed nginx gets this run's secret; a hand-run one needs the kept one
        log.error(
            "cannot keep the ingest hook secret in %s: %s; using one for this run only "
            "(or set ingest.hook_secret)",
            hook_secret_path(config.state_file),
            exc.strerror or exc,
        )
        return secrets.token_urlsafe(24)


def _install_signals(
    loop: asyncio.AbstractEventLoop,
    stop: asyncio.Event,
    service: Service,
    config_path: Path | None,
    reloads: set[asyncio.Task[None]],
) -> Callable[[], None]:
    """SIGTERM/SIGINT stop, SIGHUP reloads; returns what removes them again."""
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if config_path is not None:
        path = config_path

        def on_hup() -> None:
            task = asyncio.create_task(_reload(service, path))
            reloads.add(task)
            task.add_done_callback(reloads.discard)

        loop.add_signal_handler(signal.SIGHUP, on_hup)

    def remove() -> None:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.remove_signal_handler(sig)

    return remove


async def _reload(service: Service, path: Path) -> None:
    try:
        await service.reload_file(path)
    except ConfigError as exc:
        log.error("reload refused, config has problems: %s", "; ".join(exc.problems))
