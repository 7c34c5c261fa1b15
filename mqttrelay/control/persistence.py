"""The state file as the service keeps it: read once at start (a bad file is
reported, not fatal), written when the router's desired states or the clock's
timers change and at every heartbeat, and a write that fails is kept as an
error for /api/health while relaying goes on. It listens; it never commands."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path

from mqttrelay.control.one_shot_timers import Timer
from mqttrelay.control.state import SavedState, SavedTimer, StateFileError, load_state, save_state

log = logging.getLogger(__name__)


def _utc_now() -> datetime:
    return datetime.now(UTC)


class StateFile:
    def __init__(self, path: Path, now: Callable[[], datetime] = _utc_now) -> None:
        self.path = path
        self.error: str | None = None  # why the last write failed, if it did
        self._now = now

    def load(self) -> SavedState:
        try:
            return load_state(self.path)
        except StateFileError as exc:
            log.error("%s; using each stream's 'enabled' from the config", exc)
            return SavedState()

    def save(self, desired: Mapping[str, bool], timers: Iterable[Timer]) -> bool:
        """Write; True when it worked."""
        state = SavedState(
            streams=dict(desired),
            timers=[SavedTimer(t.id, t.stream_id, t.enabled, t.due, t.switch_back) for t in timers],
            last_seen=self._now(),
        )
        try:
            save_state(self.path, state)
        except OSError as exc:
            # Keep relaying: the running state is right, only the file is stale.
            message = f"cannot write state file {self.path}: {exc.strerror or exc}"
            if message != self.error:
                log.error("%s", message)
            self.error = message
            return False
        if self.error is not None:
            log.info("state file written again")
        self.error = None
        return True


class Persistence:
    """Pulls what to save from the callables it watches: the router's desired
    states and the clock's pending timers."""

    def __init__(
        self,
        file: StateFile,
        desired: Callable[[], Mapping[str, bool]],
        timers: Callable[[], Iterable[Timer]],
    ) -> None:
        self.file = file
        self._desired = desired
        self._timers = timers
        self._written: tuple[dict[str, bool], list[Timer]] | None = None

    @property
    def error(self) -> str | None:
        return self.file.error

    def changed(self) -> None:
        """Something may have changed: write only if what is saved did."""
        if self._written != self._current():
            self.save()

    def save(self) -> None:
        """Write now, also to note the time (the heartbeat, the last write at stop)."""
        current = self._current()
        if self.file.save(*current):
            self._written = current

    def _current(self) -> tuple[dict[str, bool], list[Timer]]:
        return dict(self._desired()), list(self._timers())
