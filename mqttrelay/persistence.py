"""The state file as the router uses it: read once at start (a bad file is
reported, not fatal), written after every change, and a write that fails is
kept as an error for /api/health while relaying goes on."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path

from .state import SavedState, SavedTimer, StateFileError, load_state, save_state
from .timers import Timer

log = logging.getLogger(__name__)


class StateFile:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.error: str | None = None  # why the last write failed, if it did

    def load(self) -> SavedState:
        try:
            return load_state(self.path)
        except StateFileError as exc:
            log.error("%s; using each stream's 'enabled' from the config", exc)
            return SavedState()

    def save(self, desired: Mapping[str, bool], timers: Iterable[Timer]) -> None:
        state = SavedState(
            streams=dict(desired),
            timers=[SavedTimer(t.id, t.stream_id, t.enabled, t.due, t.switch_back) for t in timers],
            last_seen=datetime.now(UTC),
        )
        try:
            save_state(self.path, state)
        except OSError as exc:
            # Keep relaying: the running state is right, only the file is stale.
            message = f"cannot write state file {self.path}: {exc.strerror or exc}"
            if message != self.error:
                log.error("%s", message)
            self.error = message
        else:
            if self.error is not None:
                log.info("state file written again")
            self.error = None
