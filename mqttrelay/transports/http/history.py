"""The last minutes of bitrate, per destination and for the ingest, kept in memory
so a page opened mid-show draws a graph at once (the browser only sees what
happens while it is open)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping

from mqttrelay.control.router import Router
from mqttrelay.control.views import IngestState, StreamState

log = logging.getLogger(__name__)

PERIOD_S = 2.0  # one sample per destination this often
SPAN_S = 600.0  # and this much: 301 pairs a series, about 6 kB of JSON (30 kB in memory)
# a relay sends in these; any other status draws as 0 (its last figure may linger)
SENDING = frozenset({"live", "holding", "standby", "congested"})

Sample = tuple[float, float]  # (unix time s, kbit/s)


class BitrateHistory:
    """A ring buffer of samples per destination and for the ingest."""

    def __init__(self, period_s: float = PERIOD_S, span_s: float = SPAN_S) -> None:
        self.period_s = period_s
        self.span_s = span_s
        self._size = int(span_s / period_s) + 1
        self._streams: dict[str, deque[Sample]] = {}
        self.ingest: deque[Sample] = deque(maxlen=self._size)

    def record(self, now: float, streams: Mapping[str, float], ingest_kbps: float) -> None:
        """One sample of each destination now; destinations gone lose their history."""
        for gone in self._streams.keys() - streams.keys():
            del self._streams[gone]
        for stream_id, kbps in streams.items():
            series = self._streams.setdefault(stream_id, deque(maxlen=self._size))
            series.append((round(now, 1), round(kbps, 1)))
        self.ingest.append((round(now, 1), round(ingest_kbps, 1)))

    def record_states(
        self, now: float, streams: Iterable[StreamState], ingest: IngestState
    ) -> None:
        rates = {s.id: s.bitrate_kbps if s.status in SENDING else 0.0 for s in streams}
        self.record(now, rates, ingest.bitrate_kbps if ingest.live or ingest.standby else 0.0)

    def series(self, stream_id: str) -> list[Sample]:
        return list(self._streams.get(stream_id, ()))

    def as_json(self, now: float) -> dict[str, object]:
        return {
            "now": round(now, 1),  # rounded as the samples are: never before the last
            "period_s": self.period_s,
            "span_s": self.span_s,
            "ingest": [list(s) for s in self.ingest],
            "streams": {sid: [list(s) for s in series] for sid, series in self._streams.items()},
        }


class HistorySampler:
    """Samples what the router already exposes, every period, in the service's loop."""

    def __init__(
        self,
        router: Router,
        history: BitrateHistory,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._router = router
        self.history = history
        self._clock = clock
        self._task: asyncio.Task[None] | None = None

    def sample(self) -> None:
        self.history.record_states(
            self._clock(), self._router.snapshot(), self._router.ingest_state()
        )

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="bitrate-history")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        while True:
            try:
                self.sample()
            except Exception:  # a graph is not worth stopping the samples for
                log.exception("bitrate history: sampling failed")
            await asyncio.sleep(self.history.period_s)
