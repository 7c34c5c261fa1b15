"""The one backoff policy (lib/backoff.py) as plain values."""

from __future__ import annotations

import random

from mqttrelay.lib.backoff import Backoff, backoff_delay


def test_backoff_grows_with_jitter_and_is_capped() -> None:
    rng = random.Random(7)
    first = [backoff_delay(1, 0.5, 30, rng) for _ in range(50)]
    assert all(0.25 <= d <= 0.5 for d in first)
    assert len(set(first)) > 40  # jittered, not in step
    assert all(2.0 <= backoff_delay(4, 0.5, 30, rng) <= 4.0 for _ in range(50))
    assert all(15 <= backoff_delay(20, 0.5, 30, rng) <= 30 for _ in range(50))


def test_failures_in_a_row_double_the_pause_and_a_long_run_forgets_them() -> None:
    backoff = Backoff(1.0, 30.0, stable_s=30.0, rng=random.Random(3))
    pauses = [backoff.failed(ran_s=1.0) for _ in range(7)]
    ceilings = [1, 2, 4, 8, 16, 30, 30]
    assert all(c / 2 <= p <= c for p, c in zip(pauses, ceilings, strict=True)), pauses
    assert backoff.failures == 7
    assert 0.5 <= backoff.failed(ran_s=30.0) <= 1.0  # a stable run: the first pause again
    assert backoff.failures == 1
    backoff.failed()
    backoff.reset()
    assert backoff.failures == 0 and 0.5 <= backoff.failed() <= 1.0


def test_without_a_stable_time_only_reset_forgets() -> None:
    backoff = Backoff(1.0, 30.0, rng=random.Random(5))
    for _ in range(3):
        backoff.failed(ran_s=3600.0)
    assert backoff.failures == 3
