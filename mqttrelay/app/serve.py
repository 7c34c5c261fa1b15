"""`mqttrelay run`: the checks that come first, then what build() made started in
order (the managed nginx, the core, MQTT, the page) and stopped in reverse."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable
from pathlib import Path

from mqttrelay.app.compose import build
from mqttrelay.app.runtime import Runtime
from mqttrelay.app.service import StartupError
from mqttrelay.config import Config, ConfigError, is_loopback, policy_problems
from mqttrelay.ffmpeg.check import encoder_problems
from mqttrelay.ingest.nginx.managed import NginxError
from mqttrelay.lib import process
from mqttrelay.lib.aio import cancel_and_wait
from mqttrelay.lib.limits import RESERVE_FILES, QuietLoopErrors, raise_open_file_limit
from mqttrelay.lib.redact import Redactor
from mqttrelay.transports.http.server import (
    ApiServer,
    bind_api_socket,
    guard_for,
    uvicorn_config,
)

log = logging.getLogger(__name__)


def check_api_exposure(config: Config) -> None:
    if not is_loopback(config.api.host) and not config.api.token:
        raise StartupError(
            f"api.host is {config.api.host}, reachable from other machines, but api.token is "
            "not set: set a token (clients send 'Authorization: Bearer <token>') or bind "
            "api.host to 127.0.0.1"
        )


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
    service = build(config, config_path, redactor=redactor)  # made, nothing started yet
    api = config.api
    async with contextlib.AsyncExitStack() as stack:
        stack.callback(loop.set_exception_handler, loop.get_exception_handler())
        loop.set_exception_handler(QuietLoopErrors())
        try:
            sock = bind_api_socket(api.host, api.port)
        except OSError as exc:
            raise StartupError(
                f"cannot listen on {api.host}:{api.port} for the web page and "
                f"API: {exc.strerror or exc}"
            ) from None
        stack.callback(sock.close)
        if service.nginx is not None:
            process.reap_orphans(service.owner)  # an old run's nginx would hold the port
            stack.push_async_callback(service.nginx.stop)
            try:
                await service.nginx.start()
            except NginxError as exc:
                raise StartupError(f"managed ingest: {exc}") from None
        reloads: set[asyncio.Task[None]] = set()
        stack.callback(_install_signals(loop, stop, service.runtime, config_path, reloads))
        bridge = service.bridge
        if bridge is not None:
            stack.push_async_callback(bridge.stop)  # after the relays: their 'off' goes out
        stack.push_async_callback(service.stop)
        await service.start()
        if bridge is not None:
            bridge.start()
        app = service.api
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
            api.host,
            api.port,
        )
        await asyncio.wait([server_task, stop_task], return_when=asyncio.FIRST_COMPLETED)
        if not stop.is_set():
            log.error("the web server stopped unexpectedly")
        log.info("stopping")
    log.info("stopped")


def _install_signals(
    loop: asyncio.AbstractEventLoop,
    stop: asyncio.Event,
    runtime: Runtime,
    config_path: Path | None,
    reloads: set[asyncio.Task[None]],
) -> Callable[[], None]:
    """SIGTERM/SIGINT stop, SIGHUP reloads the config file; returns what removes
    them again."""
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if config_path is not None:

        def on_hup() -> None:
            task = asyncio.create_task(_reload(runtime))
            reloads.add(task)
            task.add_done_callback(reloads.discard)

        loop.add_signal_handler(signal.SIGHUP, on_hup)

    def remove() -> None:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.remove_signal_handler(sig)

    return remove


async def _reload(runtime: Runtime) -> None:
    try:
        await runtime.reload()
    except ConfigError as exc:
        log.error("reload refused, config has problems: %s", "; ".join(exc.problems))
