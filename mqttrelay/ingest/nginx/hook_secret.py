"""The secret in the hook URLs nginx-rtmp calls: made once per install, kept
beside the state file (0600), unless config.yaml sets `ingest.hook_secret`."""

from __future__ import annotations

import logging
import re
import secrets
from pathlib import Path

from mqttrelay.lib.files import read_private, write_atomic

log = logging.getLogger(__name__)
HOOK_SECRET_FILE = ".mqttrelay-hook-secret"
_VALID = re.compile(r"[A-Za-z0-9_-]{16,}")


def hook_secret_path(state_file: Path) -> Path:
    return state_file.resolve().parent / HOOK_SECRET_FILE


def load_hook_secret(configured: str | None, state_file: Path) -> str:
    """`ingest.hook_secret` if set, else the one kept beside the state file,
    made on first use.

    Raises OSError when the file can be neither read nor written."""
    if configured:
        return configured
    path = hook_secret_path(state_file)
    kept = (read_private(path) or "").strip()
    if _VALID.fullmatch(kept):
        return kept
    made = secrets.token_urlsafe(24)
    write_atomic(path, made + "\n")
    return made


def hook_secret_for_run(configured: str | None, state_file: Path) -> str:
    """load_hook_secret's, else (it cannot be kept) one for this run only, logged."""
    try:
        return load_hook_secret(configured, state_file)
    except OSError as exc:
        # a managed nginx gets this run's secret; a hand-run one needs the kept one
        log.error(
            "cannot keep the ingest hook secret in %s: %s; using one for this run only "
            "(or set ingest.hook_secret)",
            hook_secret_path(state_file),
            exc.strerror or exc,
        )
        return secrets.token_urlsafe(24)
