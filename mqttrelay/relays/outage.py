"""A destination's outage (pure): failed tries in a row, when the next one is, and
when it has lasted long enough to be told as a problem. Trying never ends while
the destination is switched on, as in every comparable tool (DESIGN.md)."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from mqttrelay.lib.backoff import backoff_delay


class Outage:
    def __init__(
        self,
        first_s: float,
        max_s: float,
        problem_after_tries: int,
        problem_after_s: float,
        rng: random.Random | None = None,
    ) -> None:
        self._first_s = first_s
        self._max_s = max_s
        self._problem_after_tries = problem_after_tries
        self._problem_after_s = problem_after_s
        self._rng = rng or random.Random()
        self.failures = 0  # failed tries in a row
        self.since: datetime | None = None  # the first failed try

    def failed(self, now: datetime) -> tuple[datetime, bool]:
        """One more failed try: (when to try next, has it just become a problem?)."""
        self.failures += 1
        if self.since is None:
            self.since = now
        delay = backoff_delay(self.failures, self._first_s, self._max_s, self._rng)
        return now + timedelta(seconds=delay), self.failures == self._problem_after_tries

    def over(self) -> None:
        """Live again, or switched off: the next failure starts a new outage."""
        self.failures, self.since = 0, None

    def problem(self, now: datetime) -> str | None:
        """The outage in words once it is long (tries or time), else None."""
        if self.since is None:
            return None
        down_s = (now - self.since).total_seconds()
        if self.failures < self._problem_after_tries and down_s < self._problem_after_s:
            return None
        return (
            f"down for {down_s / 60:.0f} min ({self.failures} tries); "
            f"still trying every {self._max_s:.0f} s at most"
        )
