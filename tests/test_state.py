from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from mqttrelay.control.state import SavedState, SavedTimer, StateFileError, load_state, save_state

NOW = datetime(2026, 11, 24, 19, 0, tzinfo=UTC)


def test_roundtrip_and_missing(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    assert load_state(path) == SavedState()
    state = SavedState(
        streams={"a": True, "b": False},
        timers=[SavedTimer("t1", "a", False, NOW + timedelta(minutes=30), switch_back=True)],
        last_seen=NOW,
    )
    save_state(path, state)
    assert load_state(path) == state
    assert json.loads(path.read_text())["version"] == 2
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]  # no temp file left


def test_version_1_file_still_loads(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    path.write_text('{"version": 1, "streams": {"a": true}}')
    assert load_state(path) == SavedState(streams={"a": True})


@pytest.mark.parametrize(
    "text",
    [
        "{",
        "[]",
        '{"streams": {"a": "yes"}}',
        '{"streams": 3}',
        '{"streams": {}, "timers": [{"id": "x"}]}',
        '{"streams": {}, "timers": [{"id": "x", "stream": "a", "enabled": true, "due": "soon"}]}',
        '{"streams": {}, "last_seen": "yesterday"}',
    ],
)
def test_corrupt_state_file(tmp_path: Path, text: str) -> None:
    path = tmp_path / "state.json"
    path.write_text(text)
    with pytest.raises(StateFileError, match=str(path)):
        load_state(path)


def test_failed_write_keeps_old_file(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    save_state(path, SavedState(streams={"a": True}))
    # a directory where the new file should go makes os.replace fail
    blocker = tmp_path / "blocked.json"
    blocker.mkdir()
    with pytest.raises(OSError):
        save_state(blocker, SavedState(streams={"a": False}))
    assert load_state(path).streams == {"a": True}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blocked.json", "state.json"]
