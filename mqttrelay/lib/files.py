"""Files only the service's user may read: atomic writes and private folders."""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from pathlib import Path


class UnsafeFolderError(OSError):
    """A folder mqttrelay would write code-bearing files into is not its own."""


def write_atomic(path: Path, text: str) -> None:
    """Temp file (0600, created exclusively) in the same folder, fsync, os.replace:
    the old file stays intact until the new one is complete, and a link planted at
    `path` is replaced, never followed. Raises OSError on failure."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
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


def private_dir(path: Path) -> Path:
    """Create path 0700, or check that the existing one is a real folder owned by
    this user, and make it 0700. Another user's folder (or a link) is refused:
    they could swap files in it between a check and their use."""
    with contextlib.suppress(FileExistsError):
        path.mkdir(mode=0o700, parents=True)
    info = path.lstat()
    if not stat.S_ISDIR(info.st_mode):
        raise UnsafeFolderError(f"{path} is not a folder (a link or a file is in its place)")
    if info.st_uid != os.geteuid():
        raise UnsafeFolderError(
            f"{path} belongs to user id {info.st_uid}, not to this user ({os.geteuid()}): "
            "remove it or run mqttrelay as its owner"
        )
    if stat.S_IMODE(info.st_mode) != 0o700:
        os.chmod(path, 0o700)
    return path


def read_private(path: Path) -> str | None:
    """A file's text, not following a link; None when there is none."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        return None
    with os.fdopen(fd, encoding="utf-8") as handle:
        return handle.read()
