"""Warnings about input from outside, at most once a period per kind: a flood of
bad messages or hook calls cannot flood the log."""

from __future__ import annotations

import logging
import time


class RateLimitedLog:
    def __init__(self, logger: logging.Logger, period_s: float = 60.0) -> None:
        self._logger = logger
        self._period_s = period_s
        self._last: dict[object, float] = {}

    def warning(self, msg: str, *args: object, key: object = None) -> None:
        """Log msg unless the same key (default: msg) was logged within the period."""
        key = msg if key is None else key
        now = time.monotonic()
        if now - self._last.get(key, -self._period_s) >= self._period_s:
            self._last[key] = now
            if len(self._last) > 1000:
                self._last.clear()
            self._logger.warning(msg, *args)
