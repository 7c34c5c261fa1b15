"""The desired on/off state on disk: written atomically, read defensively."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)
STATE_VERSION = 1


class StateFileError(Exception):
    pass


def load_state(path: Path) -> dict[str, bool]:
    """Desired states by stream id; {} when there is no file yet.

    Raises StateFileError when the file exists but cannot be used.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
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
    return dict(streams)


def save_state(path: Path, streams: dict[str, bool]) -> None:
    """Temp file in the same folder, fsync, os.replace: the old file stays
    intact until the new one is complete. Raises OSError on failure."""
    payload = json.dumps({"version": STATE_VERSION, "streams": streams}, indent=2, sort_keys=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(payload + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    try:
        dir_fd = os.open(path.parent, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)
