"""The container's start as processes: root only hands the data folders to the
service's user and becomes it; mqttrelay itself is then exec'd without the
Supervisor's token.

    tini -> mqttrelay container (root): chown /data (and the add-on's /config),
            exec setpriv ... mqttrelay container
         -> mqttrelay container (mqttrelay): options, the Supervisor's MQTT
            service (the token's one use), config.yaml; exec mqttrelay run
         -> mqttrelay run (mqttrelay, same PID, no token in its environment)

An exec, not `del os.environ[...]`: /proc/<pid>/environ shows the environment a
program was exec'd with, whatever it changes later. setpriv, not gosu: it is
util-linux's, which Debian marks Essential, so every Debian base has it (Home
Assistant's too) and no extra binary is trusted; besides the user and group it
clears the supplementary groups and inheritable capabilities and sets
no_new_privs, so nothing started later (nginx, ffmpeg) can gain privileges."""

from __future__ import annotations

import os
import pwd
import shutil
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import NoReturn

from mqttrelay.container.start import Places, Prepared, places

SERVICE_USER = "mqttrelay"
# the Supervisor sets both; mqttrelay needs the token only for the MQTT service
TOKEN_NAMES = ("SUPERVISOR_TOKEN", "HASSIO_TOKEN")
ADDON_CONFIG = Path("/config")


class LaunchError(Exception):
    """The container cannot start as its user; the message says why."""


def without_token(env: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in env.items() if k not in TOKEN_NAMES}


def self_command(argv0: str, executable: str) -> list[str]:
    """How to run this program again: its own script (so the process keeps the
    name `mqttrelay`), or `python -m mqttrelay` when started that way."""
    if os.path.isabs(argv0) and Path(argv0).name == "mqttrelay" and os.access(argv0, os.X_OK):
        return [argv0]
    return [executable, "-m", "mqttrelay"]


def setpriv_argv(setpriv: str, uid: int, gid: int, command: Sequence[str]) -> list[str]:
    return [
        setpriv,
        f"--reuid={uid}",
        f"--regid={gid}",
        "--clear-groups",
        "--inh-caps=-all",
        "--no-new-privs",
        "--",
        *command,
    ]


def run_argv(command: Sequence[str], prepared: Prepared) -> list[str]:
    return [
        *command,
        "run",
        "--config",
        str(prepared.config_path),
        "--log-level",
        prepared.log_level,
    ]


def handed_folders(where: Places) -> list[Path]:
    """The service's folders: the data folder, and the add-on's config folder.
    A config.yaml placed elsewhere (MQTTRELAY_CONFIG) is left as it is."""
    folders = [where.data]
    if where.config.parent == ADDON_CONFIG and where.data != ADDON_CONFIG:
        folders.append(ADDON_CONFIG)
    return [folder for folder in folders if folder.is_dir()]


def hand_over(top: Path, uid: int, gid: int) -> list[str]:
    """chown top and all in it to uid:gid, never through a link (lchown, and
    os.walk does not enter linked folders); nothing of the service's user runs
    yet, so nothing can swap a link in meanwhile. Returns what could not be."""
    failed: list[str] = []

    def own(path: str) -> None:
        try:
            info = os.lstat(path)
            if (info.st_uid, info.st_gid) != (uid, gid):
                os.chown(path, uid, gid, follow_symlinks=False)
        except OSError as exc:
            failed.append(f"{path} ({exc.strerror or exc})")

    own(str(top))
    for folder, dirs, files in os.walk(top, followlinks=False):
        for name in (*dirs, *files):
            own(os.path.join(folder, name))
    return failed


def become_service_user(env: Mapping[str, str], say: Callable[[str], None]) -> None:
    """As root: hand the folders over and exec this command again as the
    service's user (does not return). Otherwise, or without that user (not
    the image), it returns and the start goes on as it is."""
    if os.geteuid() != 0:
        return
    try:
        user = pwd.getpwnam(SERVICE_USER)
    except KeyError:
        return
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        raise LaunchError("setpriv is missing (util-linux): cannot run as the mqttrelay user")
    for folder in handed_folders(places(env)):
        failed = hand_over(folder, user.pw_uid, user.pw_gid)
        if failed:
            say(f"cannot hand to user {SERVICE_USER}: {', '.join(failed[:3])}")
    command = [*self_command(sys.argv[0], sys.executable), "container"]
    _exec(setpriv_argv(setpriv, user.pw_uid, user.pw_gid, command), dict(env))


def exec_service(prepared: Prepared, env: Mapping[str, str]) -> NoReturn:
    """`mqttrelay run` in this process, with the Supervisor's token left out."""
    _exec(run_argv(self_command(sys.argv[0], sys.executable), prepared), without_token(env))


def _exec(argv: list[str], env: dict[str, str]) -> NoReturn:
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execve(argv[0], argv, env)
    except OSError as exc:
        raise LaunchError(f"cannot start {argv[0]}: {exc.strerror or exc}") from None
