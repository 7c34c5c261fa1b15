"""What the relays and the router need of the ingest, whichever reads it: the
hub (cached mode) or ingest.nginx.direct.DirectIngest (direct mode). Both fit
these structurally, so relays and control never import the ingest readers. One
interface per consumer: a relay's `LiveSignal`, the router's report of a source
(`IngestReport`), and all the router and app.py drive (`IngestSource`)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol

from mqttrelay.hub.subscription import Subscription
from mqttrelay.ingest.session_info import SessionInfo


class Feed(Protocol):
    """What feeds a cached-mode relay's stdin: the hub, or a profile's encoder."""

    def subscribe(
        self, pipe: asyncio.StreamWriter, on_wake: Callable[[], None], max_delay_ms: int
    ) -> Subscription:
        """max_delay_ms: how far behind the relay may fall before whole keyframe
        groups are dropped (subscription.py)."""

    def unsubscribe(self, sub: Subscription) -> None: ...


class LiveSignal(Protocol):
    """What a relay needs of its source: is OBS there, and a call when that changes."""

    live: bool

    def add_listener(self, listener: Callable[[], None]) -> None: ...

    def remove_listener(self, listener: Callable[[], None]) -> None: ...


class IngestReport(LiveSignal, Protocol):
    """What the router reports of a source (control/views.py)."""

    @property
    def bitrate_kbps(self) -> float: ...

    @property
    def last_error(self) -> str | None: ...

    @property
    def video_problem(self) -> str | None:
        """Why a publisher's video cannot be read, while a publisher is there and
        none of its video arrives (lib.video_check); else None."""

    @property
    def standby(self) -> bool:
        """Is the standby picture standing in for OBS now (cached mode only)?"""

    @property
    def has_standby(self) -> bool:
        """Is there a standby picture to play (a `standby` section, cached mode)?"""

    @property
    def standby_held(self) -> bool:
        """Is the standby held by hand ("be right back")?"""

    def session_info(self) -> SessionInfo | None:
        """What OBS announced (resolution, codecs); None when this source cannot tell."""


class IngestSource(IngestReport, Protocol):
    """A source as the router commands it and app.py runs it."""

    def hold_standby(self, on: bool) -> str | None:
        """Hold the standby by hand, or release it; None, or why it cannot."""

    def start(self) -> None: ...

    async def stop(self) -> None: ...

    def publisher_started(self) -> None:
        """An on_publish hook: the ingest has (probably) a publisher now."""

    def publisher_stopped(self) -> None:
        """An on_publish_done hook: the publisher left."""

    async def snapshot(self) -> bytes | None:
        """A JPEG of OBS's picture; None when this source cannot make one."""
