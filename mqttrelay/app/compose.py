"""The composition root: config.yaml's sections handed to the parts that read
them, and the parts wired together; nothing is started here.

Below this module no part holds the whole Config but the runtime, which plans
each reload against it: each gets its section."""

from __future__ import annotations

from pathlib import Path

from mqttrelay.app.engine import Engines
from mqttrelay.app.runtime import Runtime
from mqttrelay.app.service import BuiltInIngest, Service
from mqttrelay.config import (
    Config,
    ingest_app_and_stream,
    split_listen,
)
from mqttrelay.control.clock import Clock
from mqttrelay.control.config_editor import ConfigEditor
from mqttrelay.control.persistence import Persistence, StateFile
from mqttrelay.control.router import ChangeEvent, Router
from mqttrelay.ffmpeg.check import ffmpeg_problem
from mqttrelay.ingest.nginx.hook_secret import hook_secret_for_run
from mqttrelay.ingest.nginx.managed import ManagedNginx
from mqttrelay.ingest.rtmp.feed import RtmpFeed
from mqttrelay.ingest.rtmp.server import RtmpServer
from mqttrelay.ingest.rtmp.tracks import stream_sinks
from mqttrelay.lib.redact import Redactor
from mqttrelay.transports.http.api import ApiHandles, ApiSettings, create_app
from mqttrelay.transports.mqtt.bridge import MqttBridge
from mqttrelay.transports.mqtt.discovery import configuration_url


def build(
    config: Config,
    config_path: Path | None = None,
    *,
    redactor: Redactor | None = None,
    relay_overrides: dict[str, float] | None = None,
) -> Service:
    """Every part `config` asks for, made and wired; run() starts them in order,
    tests and benchmarks start what they need. Call it in the running loop (the
    clock's scheduler is on it).

    `config_path`: the file `config` came from (a reload reads it again, the page
    edits it); `redactor`: the log formatter's (cli.py), else one of its own;
    `relay_overrides`: RelaySettings' timings (tests and benchmarks)."""
    ingest = config.ingest
    hook_secret = hook_secret_for_run(ingest.hook_secret, config.state_file)
    redactor = redactor if redactor is not None else Redactor()
    redactor.add(config.secrets)
    owner = str(config.state_file.resolve())  # marks every process we start
    # the built-in ingest (ingest.listen) feeds each source's hub in-process, for good
    feeds = {i: RtmpFeed() for i in ingest.source_urls} if ingest.listen else {}
    engines = Engines(
        ingest,
        config.ffmpeg,
        config.standby,
        config.profiles,
        config.streams,
        owner=owner,
        redactor=redactor,
        feeds=feeds,
        relay_overrides=relay_overrides,
    )
    engine = engines.current
    rtmp = None
    if ingest.listen is not None and feeds:
        # the built-in ingest: each source's /<app>/<stream name> (ingest.url's for
        # main, each ingest.sources[].url's for the others) and its tracks of that
        # publish (sources on one name share it)
        tracks = ingest.source_tracks
        sinks = stream_sinks(
            ("/".join(ingest_app_and_stream(url)), source_id, *tracks[source_id], feeds[source_id])
            for source_id, url in ingest.source_urls.items()
        )
        host, port = split_listen(ingest.listen)
        server = RtmpServer(host, port, sinks, ingest.publish_key)
        rtmp = BuiltInIngest(server, ingest.listen)
    nginx = (
        ManagedNginx.from_config(ingest, config.api, config.state_file, owner, hook_secret)
        if ingest.manage
        else None
    )
    clock = Clock(
        config.timezone,
        lambda: router.stream_ids,
        lambda stream_id, on, source: router.switch(stream_id, on, source),
        lambda: persistence.save(),
    )
    router = Router(
        engine.relays,
        engine.main.reader,
        ingest.mode,
        clock,
        lambda: [encoder.state() for encoder in engines.current.encoders.values()],
        engine.sources,
        redactor=redactor,
    )
    persistence = Persistence(StateFile(config.state_file), router.desired, clock.pending)

    def changed(event: ChangeEvent) -> None:
        if event.kind in ("state", "config"):
            persistence.changed()

    router.add_listener(changed)
    runtime = Runtime(config, config_path, engines, router, clock.schedules, redactor)
    # one editor for the page and Home Assistant: their edits take turns
    editor = (
        ConfigEditor(config_path, runtime.apply, lambda ffmpeg: ffmpeg_problem(ffmpeg, owner))
        if config_path is not None
        else None
    )
    bridge = (
        MqttBridge(router, config.mqtt, configuration_url(config.api.host, config.api.port), editor)
        if config.mqtt.enabled
        else None
    )
    return Service(
        owner=owner,
        redactor=redactor,
        engines=engines,
        rtmp=rtmp,
        clock=clock,
        router=router,
        persistence=persistence,
        runtime=runtime,
        streams=config.streams,
        schedules=config.schedules,
        editor=editor,
        bridge=bridge,
        api=create_app(
            ApiSettings(
                token=config.api.token,
                timezone=config.timezone,
                mqtt_enabled=config.mqtt.enabled,
                api_host=config.api.host,
                allowed_hosts=tuple(config.api.allowed_hosts),
                frame_ancestors=tuple(config.api.frame_ancestors),
                ingress_proxy=config.api.ingress_proxy,
                hook_secret=hook_secret,
                hook_secret_required=ingest.manage,
                publish_key=ingest.publish_key,
            ),
            ApiHandles(
                router=router,
                reload=runtime.reload if config_path is not None else None,
                editor=editor,
                mqtt_connected=(lambda: bridge.connected) if bridge else (lambda: False),
                problems=(lambda: bridge.problems) if bridge else (lambda: []),
                state_error=lambda: persistence.error,
            ),
        ),
        nginx=nginx,
    )
