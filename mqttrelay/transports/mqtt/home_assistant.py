"""Home Assistant's `online` (on `<discovery_prefix>/status`), answered without
amplifying it: every `online` that arrives while a republish is pending joins
it, and two republishes keep a minimum interval. A burst of 1,000 costs one."""

from __future__ import annotations

import asyncio
import logging
import math
import random
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)

HA_REPUBLISH_DELAY_S = (0.5, 3.0)  # spread many devices' answers to Home Assistant
HA_REPUBLISH_MIN_INTERVAL_S = 30.0


class HomeAssistantAnswer:
    def __init__(self, min_interval_s: float = HA_REPUBLISH_MIN_INTERVAL_S) -> None:
        self.min_interval_s = min_interval_s
        self.republishes = 0
        self._pending = asyncio.Event()
        self._last = -math.inf  # loop time of the last republish

    def online(self) -> None:
        """Home Assistant said `online`: one republish is (or stays) pending."""
        self._pending.set()

    def answered(self) -> None:
        """Everything went out (a new connection): nothing is pending any more."""
        self._pending.clear()

    async def serve(self, republish: Callable[[], Awaitable[None]]) -> None:
        """Until cancelled: republish once for all the `online` pending, at most
        once every min_interval_s."""
        loop = asyncio.get_running_loop()
        while True:
            await self._pending.wait()
            wait = max(self._last + self.min_interval_s - loop.time(), 0.0)
            await asyncio.sleep(wait + random.uniform(*HA_REPUBLISH_DELAY_S))
            if not self._pending.is_set():
                continue  # a new connection published everything meanwhile
            self._pending.clear()  # an `online` from now on gets a republish of its own
            self._last = loop.time()
            self.republishes += 1
            log.info("Home Assistant came online: publishing discovery and states again")
            await republish()
