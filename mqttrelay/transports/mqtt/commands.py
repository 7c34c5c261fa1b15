"""Commands as they arrive over MQTT (pure parsing, clear errors)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Literal

from mqttrelay.config import check_entered_key

MAX_PAYLOAD_BYTES = 256
MAX_KEY_BYTES = 255  # Home Assistant's text entities hold at most 255 characters
MAX_DURATION_S = 7 * 24 * 3600
Action = Literal["ON", "OFF", "TOGGLE"]
_WORDS: dict[str, Action] = {
    "on": "ON",
    "off": "OFF",
    "toggle": "TOGGLE",
    "1": "ON",
    "0": "OFF",
    "true": "ON",
    "false": "OFF",
}
EXPECTED = 'ON, OFF, TOGGLE, 1/0, true/false or JSON {"state": "ON", "duration_s": 60}'


class CommandError(ValueError):
    """A payload that is not a command; the message says why."""


@dataclass(frozen=True)
class Command:
    action: Action
    duration_s: float | None = None  # switch back after this long


def _word(value: object) -> Action:
    if isinstance(value, bool):
        return "ON" if value else "OFF"
    if isinstance(value, str) and value.strip().lower() in _WORDS:
        return _WORDS[value.strip().lower()]
    raise CommandError(f"unknown state {str(value)[:40]!r}; expected {EXPECTED}")


def _text(payload: bytes, what: str, limit: int) -> str:
    """The payload as trimmed text, or why it is not (its size, its encoding)."""
    if len(payload) > limit:
        raise CommandError(f"{what} of {len(payload)} bytes is over {limit}")
    try:
        return payload.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise CommandError(f"{what} is not UTF-8 text") from None


def parse_command(payload: bytes) -> Command:
    text = _text(payload, "payload", MAX_PAYLOAD_BYTES)
    if not text:
        raise CommandError(f"empty payload; expected {EXPECTED}")
    if not text.startswith("{"):
        return Command(_word(text))
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        raise CommandError("payload starts with '{' but is not valid JSON") from None
    if not isinstance(data, dict):
        raise CommandError("JSON payload must be an object")
    unknown = set(data) - {"state", "duration_s"}
    if unknown:
        raise CommandError(f"unknown JSON key(s): {', '.join(sorted(map(str, unknown)))[:80]}")
    if "state" not in data:
        raise CommandError('JSON payload needs "state"')
    action = _word(data["state"])
    duration = data.get("duration_s")
    if duration is None:
        return Command(action)
    if isinstance(duration, bool) or not isinstance(duration, int | float):
        raise CommandError("duration_s must be a number of seconds")
    if not math.isfinite(duration) or not 0 < duration <= MAX_DURATION_S:
        raise CommandError(f"duration_s must be more than 0 and at most {MAX_DURATION_S}")
    return Command(action, float(duration))


def parse_key(payload: bytes) -> str:
    """A new stream key (B/<id>/key/set): the API's checks, on the text trimmed as
    the page trims it. The errors never repeat the key."""
    text = _text(payload, "key", MAX_KEY_BYTES)
    try:
        return check_entered_key(text)
    except ValueError as exc:
        raise CommandError(str(exc)) from None
