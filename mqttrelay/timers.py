"""One-shot timers that switch a stream on or off at a given time."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime


@dataclass(frozen=True)
class Timer:
    id: str
    stream_id: str
    enabled: bool  # what it switches the stream to
    due: datetime  # timezone-aware
    switch_back: bool = False  # made by duration_s: the next command for the stream cancels it


class Timers:
    """Timers on the event loop's clock; `fire` is called when one is due."""

    def __init__(self, fire: Callable[[Timer], None]) -> None:
        self._fire = fire
        self._entries: dict[str, tuple[Timer, asyncio.TimerHandle]] = {}

    def add(self, stream_id: str, enabled: bool, due: datetime, switch_back: bool = False) -> Timer:
        timer = Timer(uuid.uuid4().hex[:12], stream_id, enabled, due.astimezone(UTC), switch_back)
        delay = max(0.0, (timer.due - datetime.now(UTC)).total_seconds())
        handle = asyncio.get_running_loop().call_later(delay, self._due, timer.id)
        self._entries[timer.id] = (timer, handle)
        return timer

    def _due(self, timer_id: str) -> None:
        entry = self._entries.pop(timer_id, None)
        if entry is not None:
            self._fire(entry[0])

    def pending(self, stream_id: str | None = None) -> list[Timer]:
        timers = [t for t, _ in self._entries.values()]
        if stream_id is not None:
            timers = [t for t in timers if t.stream_id == stream_id]
        return sorted(timers, key=lambda t: t.due)

    def cancel(
        self, stream_id: str, timer_id: str | None = None, switch_back_only: bool = False
    ) -> list[Timer]:
        cancelled = []
        for timer, handle in list(self._entries.values()):
            if timer.stream_id != stream_id or (timer_id is not None and timer.id != timer_id):
                continue
            if switch_back_only and not timer.switch_back:
                continue
            handle.cancel()
            del self._entries[timer.id]
            cancelled.append(timer)
        return cancelled

    def cancel_all(self) -> None:
        for _, handle in self._entries.values():
            handle.cancel()
        self._entries.clear()
