"""A destination's outage (relays/outage.py) as plain values: backoff, and when an
outage becomes a problem worth telling."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from mqttrelay.relays.outage import Outage

T0 = datetime(2026, 12, 6, 19, 0, tzinfo=UTC)


def test_tries_go_on_with_a_capped_backoff_and_the_problem_is_told_once() -> None:
    outage = Outage(0.5, 30.0, 8, 60.0, random.Random(1))
    news = []
    now = T0
    for _ in range(40):
        at, is_news = outage.failed(now)
        news.append(is_news)
        assert timedelta(0) < at - now <= timedelta(seconds=30)
        now = at
    assert news.count(True) == 1 and news.index(True) == 7  # the 8th try
    assert outage.failures == 40 and outage.since == T0
    problem = outage.problem(now)
    assert problem is not None and "still trying every 30 s" in problem


def test_a_short_outage_is_no_problem_and_a_long_one_is_by_time_alone() -> None:
    outage = Outage(0.5, 30.0, 8, 60.0)
    outage.failed(T0)
    assert outage.problem(T0 + timedelta(seconds=59)) is None
    assert "down for 1 min (1 tries)" in (outage.problem(T0 + timedelta(seconds=61)) or "")


def test_over_starts_afresh() -> None:
    outage = Outage(0.5, 30.0, 2, 60.0)
    outage.failed(T0)
    outage.failed(T0)
    outage.over()
    assert outage.failures == 0 and outage.since is None and outage.problem(T0) is None
    at, _ = outage.failed(T0 + timedelta(hours=1))
    assert at - (T0 + timedelta(hours=1)) <= timedelta(seconds=0.5)  # the first step again
