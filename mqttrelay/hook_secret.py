"""The secret in the hook URLs nginx-rtmp calls: made once per install, kept
beside the state file (0600), unless config.yaml sets `ingest.hook_secret`."""

from __future__ import annotations

import re
import secrets
from pathlib import Path

from .config import Config
from .files import read_private, write_atomic

HOOK_SECRET_FILE = ".mqttrelay-hook-secret"
_VALID = re.compile(r"[A-Za-z0-9_-]{16,}")


def hook_secret_path(config: Config) -> Path:
    return config.state_file.resolve().parent / HOOK_SECRET_FILE


def load_hook_secret(config: Config) -> str:
    """The configured secret, or the one kept on disk, made on first use.

    Raises OSError when the file can be neither read nor written."""
    if config.ingest.hook_secret:
        return config.ingest.hook_secret
    path = hook_secret_path(config)
    kept = (read_private(path) or "").strip()
    if _VALID.fullmatch(kept):
        return kept
    made = secrets.token_urlsafe(24)
    write_atomic(path, made + "\n")
    return made
