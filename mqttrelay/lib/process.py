"""Child processes: spawning in their own group, stopping in steps, orphans.

Every ffmpeg mqttrelay starts carries an environment marker naming its owner
(the state file), so processes left behind by a run that was SIGKILLed can be
found and ended by the next run.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections import deque
from collections.abc import Callable, Mapping

import psutil

from mqttrelay.lib.redact import Redactor

OWNER_ENV = "MQTTRELAY_OWNER"
# What a child may inherit: ffmpeg and nginx need no token, password or key
# from mqttrelay's environment (EnvironmentFile, ${VAR} keys), only these.
CHILD_ENV_NAMES = ("PATH", "LANG", "LANGUAGE", "TZ", "TMPDIR", "SSL_CERT_FILE", "SSL_CERT_DIR")
log = logging.getLogger(__name__)


async def spawn(
    argv: list[str], owner: str, *, stdin: bool, capture: bool = True
) -> asyncio.subprocess.Process:
    """Start argv (never through a shell) in a new session and process group.

    With capture, stdout and stderr are pipes the caller must read.
    """
    return await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.PIPE if stdin else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE if capture else asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE if capture else asyncio.subprocess.DEVNULL,
        start_new_session=True,
        env=child_environment(os.environ, owner),
    )


def child_environment(parent: Mapping[str, str], owner: str) -> dict[str, str]:
    """A minimal environment for a child process, with the owner's marker."""
    env = {k: v for k, v in parent.items() if k in CHILD_ENV_NAMES or k.startswith("LC_")}
    env[OWNER_ENV] = owner
    return env


def signal_group(proc: asyncio.subprocess.Process, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


async def _exited_within(proc: asyncio.subprocess.Process, seconds: float) -> bool:
    try:
        await asyncio.wait_for(asyncio.shield(proc.wait()), seconds)
    except TimeoutError:
        return False
    return True


async def stop_process(proc: asyncio.subprocess.Process, grace_s: float) -> str:
    """Close stdin, then SIGTERM, then SIGKILL, each after grace_s; always reaps.

    A relay reading a pipe ignores SIGTERM while it waits for input, but
    flushes and exits in milliseconds when its stdin closes. Returns the step
    that ended it.
    """
    if proc.returncode is not None:
        return "exited"
    if proc.stdin is not None:
        with contextlib.suppress(Exception):
            proc.stdin.close()
        if await _exited_within(proc, grace_s):
            return "stdin closed"
    signal_group(proc, signal.SIGTERM)
    if await _exited_within(proc, grace_s):
        return "SIGTERM"
    signal_group(proc, signal.SIGKILL)
    await proc.wait()
    return "SIGKILL"


async def run_to_end(
    argv: list[str], owner: str, stdin: bytes | None, timeout_s: float
) -> tuple[int, bytes, bytes]:
    """Run argv with `stdin` as its input (None: no input) to its end: (exit code,
    stdout, stderr). Raises OSError if it cannot start, TimeoutError after
    timeout_s; it is killed then, or if the caller is cancelled."""
    proc = await spawn(argv, owner, stdin=stdin is not None)
    try:
        out, err = await asyncio.wait_for(proc.communicate(stdin), timeout_s)
    finally:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                await kill_process(proc)
    return proc.returncode or 0, out, err


async def kill_process(proc: asyncio.subprocess.Process) -> None:
    """Immediate end (also works on a SIGSTOPped process)."""
    signal_group(proc, signal.SIGKILL)
    await proc.wait()


async def read_stderr(
    stream: asyncio.StreamReader | None,
    redactor: Redactor,
    tail: deque[str],
    logger: Callable[[str], None],
) -> None:
    """Read ffmpeg's stderr to its end, masking every line before anything sees it."""
    if stream is None:
        return
    while True:
        raw = await stream.readline()
        if not raw:
            return
        line = redactor.mask(raw.decode("utf-8", "replace").rstrip())
        if line:
            tail.append(line)
            logger(line)


def marked_processes(owner: str) -> list[psutil.Process]:
    """Live (not zombie) processes carrying this owner's marker, this one excluded."""
    me = os.getpid()
    found = []
    for proc in psutil.process_iter():
        if proc.pid == me:
            continue
        try:
            if proc.environ().get(OWNER_ENV) == owner and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
        except psutil.Error:
            continue
    return found


def find_orphans(owner: str) -> list[psutil.Process]:
    """Marked processes that are not children of this process."""
    me = os.getpid()
    orphans = []
    for proc in marked_processes(owner):
        with contextlib.suppress(psutil.Error):
            if proc.ppid() != me:
                orphans.append(proc)
    return orphans


def reap_orphans(owner: str, timeout_s: float = 3.0) -> int:
    """End processes left behind by an earlier run with the same owner."""
    orphans = find_orphans(owner)
    for proc in orphans:
        with contextlib.suppress(psutil.Error):
            proc.terminate()
    _, alive = psutil.wait_procs(orphans, timeout=timeout_s)
    for proc in alive:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    psutil.wait_procs(alive, timeout=timeout_s)
    if orphans:
        log.warning("ended %d ffmpeg process(es) left behind by an earlier run", len(orphans))
    return len(orphans)
