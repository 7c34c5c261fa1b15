"""The container's start as processes (container/launch.py): the argv values, the
hand-over of the data folders, and `mqttrelay container` exec'ing `mqttrelay run`
without the Supervisor's token (the image suite runs the root part in the image)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mqttrelay.container.launch import (
    hand_over,
    handed_folders,
    run_argv,
    self_command,
    setpriv_argv,
    without_token,
)
from mqttrelay.container.start import Places, Prepared

from .support import free_port, wait_port


def test_the_token_is_left_out_and_the_rest_kept() -> None:
    env = {"SUPERVISOR_TOKEN": "t", "HASSIO_TOKEN": "t", "SUPERVISOR_API": "x", "TZ": "UTC"}
    assert without_token(env) == {"SUPERVISOR_API": "x", "TZ": "UTC"}


def test_the_commands(tmp_path: Path) -> None:
    script = tmp_path / "mqttrelay"
    script.write_text("#!/bin/sh\n")
    script.chmod(0o755)
    assert self_command(str(script), "/py") == [str(script)]
    assert self_command("/x/mqttrelay/__main__.py", "/py") == ["/py", "-m", "mqttrelay"]
    assert self_command("mqttrelay", "/py") == ["/py", "-m", "mqttrelay"]
    assert setpriv_argv("/usr/bin/setpriv", 1935, 1935, ["/m", "container"]) == [
        "/usr/bin/setpriv", "--reuid=1935", "--regid=1935", "--clear-groups",
        "--inh-caps=-all", "--no-new-privs", "--", "/m", "container",
    ]  # fmt: skip
    prepared = Prepared(Path("/config/config.yaml"), "warning")
    assert run_argv(["/m"], prepared) == [
        "/m", "run", "--config", "/config/config.yaml", "--log-level", "warning",
    ]  # fmt: skip


def test_handed_folders_are_data_and_the_add_ons_config_only(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    assert handed_folders(Places(data, data / "config.yaml", False)) == [data]
    # a config.yaml the user put elsewhere: its folder is not taken over
    assert handed_folders(Places(data, Path("/etc/mqttrelay/config.yaml"), False)) == [data]
    assert handed_folders(Places(tmp_path / "none", tmp_path / "none" / "c.yaml", False)) == []


@pytest.mark.skipif(os.geteuid() != 0, reason="chown to another user needs root")
def test_hand_over_owns_the_tree_and_never_follows_a_link(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.write_text("not the service's")
    data = tmp_path / "data"
    (data / ".mqttrelay-nginx").mkdir(parents=True)
    (data / ".mqttrelay-nginx" / "nginx.conf").write_text("x")
    (data / "options.json").write_text("{}")
    (data / "link").symlink_to(outside)
    (data / "linked-dir").symlink_to(tmp_path)
    assert hand_over(data, 54321, 54322) == []
    for path in (data, data / ".mqttrelay-nginx", data / ".mqttrelay-nginx" / "nginx.conf"):
        assert (path.stat().st_uid, path.stat().st_gid) == (54321, 54322), path
    assert os.lstat(data / "link").st_uid == 54321  # the link itself
    assert outside.stat().st_uid == 0 and tmp_path.stat().st_uid == 0


def test_container_execs_the_service_without_the_supervisor_token(tmp_path: Path) -> None:
    """Docker mode on this machine (no `mqttrelay` user here: it runs as it is), with
    a config.yaml on free ports: `mqttrelay run` is exec'd in the same process, and
    its environment, as /proc shows it, has no token."""
    api_port = free_port()
    config = tmp_path / "config.yaml"
    config.write_text(
        f"state_file: {tmp_path / 'state.json'}\n"
        f"ingest: {{url: 'rtmp://127.0.0.1:{free_port()}/live/stream'}}\n"
        "mqtt: {enabled: false}\n"
        f"api: {{host: 127.0.0.1, port: {api_port}}}\n"
    )
    config.chmod(0o600)
    env = {
        **os.environ,
        "MQTTRELAY_DATA": str(tmp_path),
        "SUPERVISOR_TOKEN": "token-that-must-go",
        "HASSIO_TOKEN": "token-that-must-go",
        "PAGE_TOKEN": "p" * 20,
    }
    log = tmp_path / "container.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "mqttrelay", "container"],
            env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        wait_port(api_port, 60)
        cmdline = Path(f"/proc/{proc.pid}/cmdline").read_bytes().split(b"\0")
        assert cmdline[1:7] == [
            b"-m",
            b"mqttrelay",
            b"run",
            b"--config",
            bytes(config),
            b"--log-level",
        ]
        environ = Path(f"/proc/{proc.pid}/environ").read_bytes()
        assert b"token-that-must-go" not in environ and b"SUPERVISOR_TOKEN" not in environ
        assert b"PAGE_TOKEN=" in environ  # the rest is kept
    finally:
        proc.terminate()
        code = proc.wait(30)
    assert code == 0, log.read_text()
    assert "token-that-must-go" not in log.read_text()
