"""Wires config -> manager -> MQTT (and later HTTP, scheduler); ordered shutdown."""

from __future__ import annotations

import asyncio
import logging
import signal

from .config import Config
from .manager import Manager
from .mqtt import MqttBridge

log = logging.getLogger(__name__)


async def run(config: Config) -> None:
    """Run until SIGTERM or SIGINT, then stop every relay and return."""
    manager = Manager(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await manager.start()
    bridge = MqttBridge(manager, config) if config.mqtt.enabled else None
    if bridge is not None:
        bridge.start()
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
        # Relays first, so their final 'off' status still goes out; then 'offline'.
        await manager.stop()
        if bridge is not None:
            await bridge.stop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
    log.info("stopped")
