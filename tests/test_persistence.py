"""The router's state file, with temporary folders: bad files, failed writes."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mqttrelay.control.one_shot_timers import Timer
from mqttrelay.control.persistence import Persistence, StateFile


def test_saves_desired_states_and_timers_and_reads_them_back(tmp_path: Path) -> None:
    state = StateFile(tmp_path / "state.json")
    due = datetime(2026, 12, 24, 18, 0, tzinfo=UTC)
    state.save({"tiktok": True}, [Timer("t1", "tiktok", False, due, switch_back=True)])
    assert state.error is None
    saved = state.load()
    assert saved.streams == {"tiktok": True}
    assert [(t.id, t.enabled, t.due) for t in saved.timers] == [("t1", False, due)]


def test_a_corrupt_file_is_reported_and_nothing_is_restored(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "state.json").write_text("{not json")
    assert StateFile(tmp_path / "state.json").load().streams == {}
    assert "using each stream's 'enabled' from the config" in caplog.text


def test_a_failed_write_is_kept_as_the_error_until_a_write_succeeds(tmp_path: Path) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    state = StateFile(folder / "state.json")
    state.save({"a": True}, [])
    if os.geteuid() == 0:  # root writes anywhere: take the folder away instead
        (folder / "state.json").unlink()
        folder.rmdir()
        folder.write_text("a file where the folder was")
    else:
        folder.chmod(0o500)
    state.save({"a": False}, [])
    assert state.error is not None and "cannot write state file" in state.error
    if os.geteuid() == 0:
        folder.unlink()
    else:
        folder.chmod(0o700)
    state.save({"a": False}, [])
    assert state.error is None
    assert json.loads((folder / "state.json").read_text())["streams"] == {"a": False}


def test_persistence_writes_when_what_it_keeps_changed_and_at_each_heartbeat(
    tmp_path: Path,
) -> None:
    moments = iter(datetime(2026, 12, 24, 18, minute, tzinfo=UTC) for minute in range(10))
    path = tmp_path / "state.json"
    desired = {"tiktok": False}
    timers: list[Timer] = []
    kept = Persistence(StateFile(path, now=lambda: next(moments)), lambda: desired, lambda: timers)

    def last_seen() -> str:
        return str(json.loads(path.read_text())["last_seen"])

    kept.save()  # at start
    assert last_seen() == "2026-12-24T18:00:00+00:00"
    kept.changed()  # a status change, say: nothing it keeps changed, nothing written
    assert last_seen() == "2026-12-24T18:00:00+00:00"
    desired["tiktok"] = True
    kept.changed()
    assert json.loads(path.read_text())["streams"] == {"tiktok": True}
    assert last_seen() == "2026-12-24T18:01:00+00:00"
    timers.append(Timer("t1", "tiktok", False, datetime(2026, 12, 24, 19, 0, tzinfo=UTC)))
    kept.changed()
    assert [t["id"] for t in json.loads(path.read_text())["timers"]] == ["t1"]
    kept.save()  # the heartbeat: the same content, a new time
    assert last_seen() == "2026-12-24T18:03:00+00:00" and kept.error is None
