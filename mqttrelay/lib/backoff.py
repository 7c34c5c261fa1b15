"""The one backoff policy (pure): how long to wait before the next try after
failures in a row. Relays (relays/outage.py), profile encoders and the MQTT
connections all wait by it, so they all jitter the same way."""

from __future__ import annotations

import math
import random


def backoff_delay(failures: int, first_s: float, max_s: float, rng: random.Random) -> float:
    """Exponential backoff with jitter: in [d/2, d] for d = first * 2**(failures-1),
    d at most max_s. The jitter keeps many clients from retrying in step."""
    ceiling = min(max_s, first_s * 2 ** max(0, failures - 1))
    return rng.uniform(ceiling / 2, ceiling)


class Backoff:
    """Failures in a row and the pause after each; a run of stable_s or longer
    forgets the earlier ones."""

    def __init__(
        self,
        first_s: float,
        max_s: float,
        stable_s: float = math.inf,
        rng: random.Random | None = None,
    ) -> None:
        self._first_s = first_s
        self._max_s = max_s
        self._stable_s = stable_s
        self._rng = rng or random.Random()
        self.failures = 0

    def failed(self, ran_s: float = 0.0) -> float:
        """One more failure after a run of ran_s: the pause before the next try."""
        self.failures = 1 if ran_s >= self._stable_s else self.failures + 1
        return backoff_delay(self.failures, self._first_s, self._max_s, self._rng)

    def reset(self) -> None:
        """It works again: the next failure waits the shortest pause."""
        self.failures = 0
