from __future__ import annotations

import json
from pathlib import Path

import pytest

from mqttrelay.state import StateFileError, load_state, save_state


def test_roundtrip_and_missing(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    assert load_state(path) == {}
    save_state(path, {"a": True, "b": False})
    assert load_state(path) == {"a": True, "b": False}
    assert json.loads(path.read_text())["version"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]  # no temp file left


@pytest.mark.parametrize("text", ["{", "[]", '{"streams": {"a": "yes"}}', '{"streams": 3}'])
def test_corrupt_state_file(tmp_path: Path, text: str) -> None:
    path = tmp_path / "state.json"
    path.write_text(text)
    with pytest.raises(StateFileError, match=str(path)):
        load_state(path)


def test_failed_write_keeps_old_file(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    save_state(path, {"a": True})
    # a directory where the temp file's target should go makes os.replace fail
    blocker = tmp_path / "blocked.json"
    blocker.mkdir()
    with pytest.raises(OSError):
        save_state(blocker, {"a": False})
    assert load_state(path) == {"a": True}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blocked.json", "state.json"]
