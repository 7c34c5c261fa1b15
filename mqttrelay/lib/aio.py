"""Small asyncio helpers."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)


async def cancel_and_wait(*tasks: asyncio.Task[Any], retry_s: float = 1.0) -> None:
    """Cancel tasks and wait until they are done.

    Python 3.11's asyncio.wait_for can swallow a cancellation that arrives as
    its inner future completes (fixed in 3.12), which would leave a task
    running forever: cancel again until each one has ended.
    """
    pending = {t for t in tasks if not t.done()}
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=retry_s)


async def port_open(host: str, port: int) -> bool:
    """Does something accept TCP connections there now?"""
    try:
        _, writer = await asyncio.open_connection(host, port)
    except OSError:
        return False
    writer.close()
    return True


class Notifier:
    """Plain callbacks for 'something changed'; a failing listener is logged, not raised."""

    def __init__(self) -> None:
        self._listeners: list[Callable[[], None]] = []

    def add_listener(self, listener: Callable[[], None]) -> None:
        self._listeners.append(listener)

    def remove_listener(self, listener: Callable[[], None]) -> None:
        with contextlib.suppress(ValueError):
            self._listeners.remove(listener)

    def notify(self) -> None:
        for listener in list(self._listeners):
            try:
                listener()
            except Exception:
                log.exception("change listener failed")
