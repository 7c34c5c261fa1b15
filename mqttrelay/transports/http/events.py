"""Server-sent events: every state change, fanned out to each connected page."""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict
from typing import Any

from mqttrelay.control.router import ChangeEvent, Router
from mqttrelay.control.views import StreamState

STATS_MIN_INTERVAL_S = 1.0  # bitrate updates per stream and client, at most
INGEST_PERIOD_S = 2.0  # the ingest's bitrate, and a keepalive for proxies
QUEUE_SIZE = 256
TICKET_TTL_S = 30.0
MAX_TICKETS = 64


class EventTickets:
    """Single-use tickets for the event stream: EventSource cannot send the token
    in a header, and a token in a URL ends up in proxies' logs."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._expiry: dict[str, float] = {}

    def issue(self) -> str:
        now = self._clock()
        self._expiry = {t: end for t, end in self._expiry.items() if end > now}
        while len(self._expiry) >= MAX_TICKETS:
            self._expiry.pop(next(iter(self._expiry)))
        ticket = secrets.token_urlsafe(24)
        self._expiry[ticket] = now + TICKET_TTL_S
        return ticket

    def redeem(self, ticket: str) -> bool:
        end = self._expiry.pop(ticket, None) if ticket else None
        return end is not None and end > self._clock()


def stream_payload(state: StreamState) -> dict[str, Any]:
    return asdict(state)


def format_sse(event: str, data: Any) -> str:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


class EventBroker:
    """Turns router change events into SSE messages for every subscriber."""

    def __init__(self, router: Router) -> None:
        self._router = router
        self._queues: set[asyncio.Queue[str | None]] = set()
        self._last_stats: dict[str, float] = {}
        router.add_listener(self._on_change)

    def snapshot_message(self) -> str:
        ingest = asdict(self._router.ingest_state())
        streams = [stream_payload(s) for s in self._router.snapshot()]
        return format_sse("snapshot", {"streams": streams, "ingest": ingest})

    def _on_change(self, event: ChangeEvent) -> None:
        if not self._queues:
            return
        if event.kind == "stats" and event.stream_id is not None:
            now = time.monotonic()
            if now - self._last_stats.get(event.stream_id, 0.0) < STATS_MIN_INTERVAL_S:
                return
            self._last_stats[event.stream_id] = now
        if event.kind in ("config", "ingest") or event.stream_id is None:
            message = self.snapshot_message()
        else:
            state = self._router.stream_state(event.stream_id)
            message = format_sse("stream", stream_payload(state))
        for queue in list(self._queues):
            try:
                queue.put_nowait(message)
            except asyncio.QueueFull:
                # A slow page gets a full snapshot instead of a backlog.
                while not queue.empty():
                    queue.get_nowait()
                queue.put_nowait(self.snapshot_message())

    async def stream(self) -> AsyncIterator[str]:
        queue: asyncio.Queue[str | None] = asyncio.Queue(QUEUE_SIZE)
        self._queues.add(queue)
        try:
            yield "retry: 2000\n\n"
            yield self.snapshot_message()
            next_ingest = time.monotonic() + INGEST_PERIOD_S
            while True:
                try:
                    timeout = max(0.0, next_ingest - time.monotonic())
                    message = await asyncio.wait_for(queue.get(), timeout)
                except TimeoutError:
                    message = ""
                if message is None:
                    return
                if message:
                    yield message
                if time.monotonic() >= next_ingest:
                    next_ingest = time.monotonic() + INGEST_PERIOD_S
                    yield format_sse("ingest", asdict(self._router.ingest_state()))
        finally:
            self._queues.discard(queue)

    def close(self) -> None:
        """End every event stream (the service is stopping)."""
        for queue in list(self._queues):
            while not queue.empty():
                queue.get_nowait()
            queue.put_nowait(None)
