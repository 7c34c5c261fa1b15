"""Wires config -> manager -> MQTT, HTTP; ordered start and shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import signal
import socket
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any

import uvicorn

from . import process
from .aio import cancel_and_wait
from .api import ApiContext, create_app
from .config import Config, ConfigError, is_loopback, load_config, policy_problems
from .hook_secret import hook_secret_path, load_hook_secret
from .managed_nginx import ManagedNginx, NginxError
from .manager import Manager
from .mqtt import MqttBridge

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


def bind_api_socket(host: str, port: int) -> socket.socket:
    """Bind before anything starts, so a busy port is a clear error, not a crash."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise StartupError(
            f"cannot listen on {host}:{port} for the web page and API: {exc.strerror or exc}"
        ) from None
    sock.set_inheritable(False)
    return sock


class _Server(uvicorn.Server):
    """uvicorn in our loop; our own SIGTERM/SIGINT handling stays in charge."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def uvicorn_config(app: Any) -> uvicorn.Config:
    """uvicorn without its own log handlers (log_config=None): its lines go to the
    root handler, whose formatter masks secrets like every other line."""
    return uvicorn.Config(
        app,
        log_config=None,
        log_level="warning",
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=3,
    )


async def run(config: Config, config_path: Path | None = None) -> None:
    """Run until SIGTERM or SIGINT, then stop every relay and return.

    Each part registers its own stop as it starts, so a failure half-way
    through start-up still stops what did start, in reverse order.
    """
    check_api_exposure(config)
    for problem in policy_problems(config):
        log.warning("%s", problem)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    async with contextlib.AsyncExitStack() as stack:
        sock = bind_api_socket(config.api.host, config.api.port)
        stack.callback(sock.close)
        manager = Manager(config)
        hook_secret = _hook_secret(config)
        if config.ingest.manage:
            nginx = ManagedNginx.from_config(config, manager.owner, hook_secret)
            process.reap_orphans(manager.owner)  # an old run's nginx would hold the port
            stack.push_async_callback(nginx.stop)
            try:
                await nginx.start()
            except NginxError as exc:
                raise StartupError(f"managed ingest: {exc}") from None
        reloads: set[asyncio.Task[None]] = set()
        stack.callback(_install_signals(loop, stop, manager, config_path, reloads))
        bridge = MqttBridge(manager, config) if config.mqtt.enabled else None
        if bridge is not None:
            stack.push_async_callback(bridge.stop)  # after the relays: their 'off' goes out
        stack.push_async_callback(manager.stop)
        await manager.start()
        if bridge is not None:
            bridge.start()
        app = create_app(
            ApiContext(
                manager=manager,
                config_path=config_path,
                token=config.api.token,
                timezone=config.timezone,
                mqtt_enabled=bridge is not None,
                mqtt_connected=(lambda: bridge.connected) if bridge else (lambda: False),
                problems=(lambda: bridge.problems) if bridge else (lambda: []),
                api_host=config.api.host,
                allowed_hosts=tuple(config.api.allowed_hosts),
                frame_ancestors=tuple(config.api.frame_ancestors),
                hook_secret=hook_secret,
                hook_secret_required=config.ingest.manage,
            )
        )
        server = _Server(uvicorn_config(app))
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


def _hook_secret(config: Config) -> str:
    try:
        return load_hook_secret(config)
    except OSError as exc:
        # a managed nginx gets this run's secret; a hand-run one needs the kept one
        log.error(
            "cannot keep the ingest hook secret in %s: %s; using one for this run only "
            "(or set ingest.hook_secret)",
            hook_secret_path(config),
            exc.strerror or exc,
        )
        return secrets.token_urlsafe(24)


def _install_signals(
    loop: asyncio.AbstractEventLoop,
    stop: asyncio.Event,
    manager: Manager,
    config_path: Path | None,
    reloads: set[asyncio.Task[None]],
) -> Callable[[], None]:
    """SIGTERM/SIGINT stop, SIGHUP reloads; returns what removes them again."""
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if config_path is not None:
        path = config_path

        def on_hup() -> None:
            task = asyncio.create_task(_reload(manager, path))
            reloads.add(task)
            task.add_done_callback(reloads.discard)

        loop.add_signal_handler(signal.SIGHUP, on_hup)

    def remove() -> None:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.remove_signal_handler(sig)

    return remove


async def _reload(manager: Manager, path: Path) -> None:
    try:
        new = load_config(path)
    except ConfigError as exc:
        log.error("reload refused, config has problems: %s", "; ".join(exc.problems))
        return
    await manager.apply_config(new)
