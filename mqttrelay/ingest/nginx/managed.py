"""ingest.manage: true — mqttrelay runs its own nginx-rtmp ingest."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
from pathlib import Path

from mqttrelay.config import ApiConfig, IngestConfig
from mqttrelay.ingest.nginx.conf import (
    RTMP_MODULE,
    NginxSettings,
    render_nginx_conf,
    settings_from_config,
)
from mqttrelay.lib import process
from mqttrelay.lib.aio import port_open
from mqttrelay.lib.files import private_dir, write_atomic
from mqttrelay.lib.supervisor import ChildProcess, Ended, StartError, Supervisor

log = logging.getLogger(__name__)
RESTART_DELAY_S = 2.0
# SIGTERM is nginx's fast stop: a graceful one would wait for OBS to leave
STOP_GRACE_S = 3.0


class NginxError(Exception):
    """nginx cannot run as configured; the message says what to do."""


def find_executable(name: str) -> str | None:
    """Debian puts nginx and mosquitto in /usr/sbin, often not on a user's PATH."""
    return shutil.which(name) or next(
        (p for p in (f"/usr/sbin/{name}", f"/usr/local/sbin/{name}") if os.access(p, os.X_OK)),
        None,
    )


def explain_nginx_test(output: str) -> str:
    """Turn `nginx -t` output into one actionable line."""
    if "ngx_rtmp_module" in output or 'unknown directive "rtmp"' in output:
        return "the nginx RTMP module is missing: install libnginx-mod-rtmp (scripts/setup does)"
    if "Address already in use" in output or "bind()" in output:
        return f"the ingest port is in use by another program: {output.strip().splitlines()[-1]}"
    lines = [line for line in output.strip().splitlines() if "emerg" in line or "error" in line]
    return (lines or output.strip().splitlines() or ["nginx -t failed"])[-1]


class ManagedNginx:
    """Renders the ingest config, checks it with `nginx -t`, runs and supervises nginx."""

    def __init__(
        self,
        settings: NginxSettings,
        owner: str,
        nginx: str | None = None,
        role: str = "managed nginx ingest",  # what its log lines call it
    ) -> None:
        self.settings = settings
        self.role = role
        self._owner = owner
        self._nginx = nginx or find_executable("nginx")
        self._conf = Path(settings.prefix) / "nginx.conf"
        self._starting: ChildProcess | None = None  # until it listens
        self._sup: Supervisor[ChildProcess] = Supervisor(
            "managed-nginx", self._spawn, self._after_exit, watch=self._watch_exit
        )

    @classmethod
    def from_config(
        cls, ingest: IngestConfig, api: ApiConfig, state_file: Path, owner: str, hook_secret: str
    ) -> ManagedNginx:
        """Its folder is beside the state file; the hooks go to where `api` listens."""
        folder = state_file.resolve().parent / ".mqttrelay-nginx"
        settings = settings_from_config(
            ingest, api, str(folder), hook_secret=hook_secret, run_as_root=os.geteuid() == 0
        )
        return cls(settings, owner)

    def _prepare(self) -> str:
        """Check what nginx needs and write its config; returns the nginx binary."""
        if self._nginx is None:
            raise NginxError("nginx is not installed (scripts/setup installs it)")
        if not Path(self.settings.module_path).exists():
            raise NginxError(
                f"{RTMP_MODULE} is missing: install libnginx-mod-rtmp (scripts/setup does)"
            )
        # nginx.conf names a module nginx loads: nobody else may write there
        try:
            private_dir(Path(self.settings.prefix))
            write_atomic(self._conf, render_nginx_conf(self.settings))
        except OSError as exc:
            raise NginxError(f"cannot write the ingest's nginx.conf: {exc}") from None
        return self._nginx

    def _error_log_tail(self) -> str:
        log_file = Path(self.settings.prefix) / "error.log"
        return log_file.read_text(errors="replace")[-4000:] if log_file.exists() else ""

    async def start(self) -> None:
        nginx = self._prepare()
        check = await asyncio.create_subprocess_exec(
            nginx,
            "-t",
            "-q",
            "-p",
            self.settings.prefix,
            "-c",
            str(self._conf),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env=process.child_environment(os.environ, self._owner),
        )
        output, _ = await check.communicate()
        if check.returncode != 0:
            raise NginxError(f"nginx -t: {explain_nginx_test(output.decode(errors='replace'))}")
        try:
            self._starting = await self._spawn()
        except StartError as exc:
            raise NginxError(str(exc)) from None
        await self._wait_listening(self._starting)
        self._sup.start(self._starting)  # supervised from now on
        self._starting = None
        log.info(
            "%s listening on %s:%d",
            self.role,
            self.settings.listen_host,
            self.settings.rtmp_port,
        )

    async def _spawn(self) -> ChildProcess:
        argv = [self._nginx or "nginx", "-p", self.settings.prefix, "-c", str(self._conf)]
        return await ChildProcess.spawn(
            argv, self._owner, "nginx", stdin=False, capture=False, grace_s=STOP_GRACE_S
        )

    async def _wait_listening(self, child: ChildProcess, deadline_s: float = 10.0) -> None:
        loop = asyncio.get_running_loop()
        end = loop.time() + deadline_s
        while loop.time() < end:
            if child.returncode is not None:
                tail = self._error_log_tail()
                raise NginxError(f"nginx exited at start: {explain_nginx_test(tail)}")
            if await port_open(self.settings.listen_host, self.settings.rtmp_port):
                return
            await asyncio.sleep(0.05)
        raise NginxError(f"nginx did not listen on port {self.settings.rtmp_port} in time")

    async def _watch_exit(self, child: ChildProcess) -> str:
        return f"nginx exited with code {await child.wait()}"

    def _after_exit(self, ended: Ended) -> float:
        log.error("%s: %s; restarting", self.role, ended.reason)
        return RESTART_DELAY_S

    async def stop(self) -> None:
        await self._sup.stop()  # closes the supervised nginx
        if self._starting is not None:  # it never listened
            await self._starting.close()
            self._starting = None
