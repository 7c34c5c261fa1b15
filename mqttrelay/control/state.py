"""What survives a restart: desired on/off states, pending timers, and when the
service last ran. Written atomically, read defensively."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from mqttrelay.lib.files import write_atomic

log = logging.getLogger(__name__)
STATE_VERSION = 2


class StateFileError(Exception):
    pass


@dataclass(frozen=True)
class SavedTimer:
    id: str
    stream_id: str
    enabled: bool
    due: datetime
    switch_back: bool = False


@dataclass(frozen=True)
class SavedState:
    streams: dict[str, bool] = field(default_factory=dict)
    timers: list[SavedTimer] = field(default_factory=list)
    last_seen: datetime | None = None  # for the catch-up of missed schedules


def _timer(raw: Any) -> SavedTimer:
    if not isinstance(raw, dict):
        raise ValueError("a timer is not an object")
    due = datetime.fromisoformat(str(raw["due"]))
    if due.tzinfo is None:
        raise ValueError("a timer's time has no offset")
    return SavedTimer(
        id=str(raw["id"]),
        stream_id=str(raw["stream"]),
        enabled=bool(raw["enabled"]),
        due=due,
        switch_back=bool(raw.get("switch_back", False)),
    )


def load_state(path: Path) -> SavedState:
    """The saved state; empty when there is no file yet.

    Raises StateFileError when the file exists but cannot be used.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return SavedState()
    except (OSError, UnicodeDecodeError) as exc:
        raise StateFileError(f"cannot read state file {path}: {exc}") from None
    try:
        raw: Any = json.loads(text)
    except json.JSONDecodeError as exc:
        raise StateFileError(f"state file {path} is not valid JSON ({exc.msg})") from None
    streams = raw.get("streams") if isinstance(raw, dict) else None
    if not isinstance(streams, dict) or not all(
        isinstance(k, str) and isinstance(v, bool) for k, v in streams.items()
    ):
        raise StateFileError(f"state file {path} has no valid 'streams' mapping")
    try:
        timers = [_timer(t) for t in raw.get("timers", [])]
        seen = raw.get("last_seen")
        last_seen = datetime.fromisoformat(seen) if isinstance(seen, str) else None
    except (KeyError, TypeError, ValueError) as exc:
        raise StateFileError(f"state file {path} has a bad timer or time ({exc})") from None
    return SavedState(dict(streams), timers, last_seen)


def encode_state(state: SavedState) -> str:
    payload = {
        "version": STATE_VERSION,
        "streams": state.streams,
        "timers": [
            {
                "id": t.id,
                "stream": t.stream_id,
                "enabled": t.enabled,
                "due": t.due.isoformat(),
                "switch_back": t.switch_back,
            }
            for t in state.timers
        ],
        "last_seen": state.last_seen.isoformat() if state.last_seen else None,
    }
    return json.dumps(payload, indent=2, sort_keys=True) + "\n"


def save_state(path: Path, state: SavedState) -> None:
    """Written atomically: the old file stays intact until the new one is
    complete. Raises OSError on failure."""
    write_atomic(path, encode_state(state))
