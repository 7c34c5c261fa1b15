"""Wires config -> manager (and, later, MQTT, HTTP, scheduler); ordered shutdown."""

from __future__ import annotations

import asyncio
import logging
import signal

from .config import Config
from .manager import Manager

log = logging.getLogger(__name__)


async def run(config: Config) -> None:
    """Run until SIGTERM or SIGINT, then stop every relay and return."""
    manager = Manager(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await manager.start()
    log.info(
        "mqttrelay running: %d stream(s), ingest %s (%s mode)",
        len(config.streams),
        config.ingest.url,
        config.ingest.mode,
    )
    try:
        await stop.wait()
        log.info("stopping")
    finally:
        await manager.stop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
    log.info("stopped")
