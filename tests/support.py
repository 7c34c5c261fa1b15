"""Real processes for tests and benchmarks: nginx-rtmp servers, an ffmpeg
publisher standing in for OBS, and readers of the nginx-rtmp stat page.
Everything listens on 127.0.0.1 only, on free ports."""

from __future__ import annotations

import asyncio
import os
import re
import resource
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, TypeVar

import httpx
import psutil
import pytest
import yaml

from mqttrelay.ffmpeg.argv import build_test_source_argv
from mqttrelay.ingest.nginx.conf import RTMP_MODULE, NginxSettings, render_nginx_conf
from mqttrelay.lib.process import marked_processes

T = TypeVar("T")


def require_tool(name: str) -> str:
    """The tool's path; a missing tool fails under CI=true and skips elsewhere."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed (run scripts/setup)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


# Under pytest-xdist (scripts/test) each worker draws its ports from a range of its
# own, below the kernel's ephemeral ports (32768 up), so two workers never hand out
# the same free port before either has bound it.
WORKER_PORTS = 2500
_handed_out: set[int] = set()


def free_port() -> int:
    """A port free on loopback now, not handed out before in this process."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")  # gw0, gw1, ...
    if not worker.startswith("gw"):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port: int = sock.getsockname()[1]
            return port
    low = 10_000 + int(worker[2:]) * WORKER_PORTS
    if len(_handed_out) > WORKER_PORTS // 2:
        _handed_out.clear()  # those are bound by now, or given up
    for _ in range(1000):
        port = secrets.randbelow(WORKER_PORTS) + low
        if port in _handed_out:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise RuntimeError(f"no free port between {low} and {low + WORKER_PORTS}")


def wait_port(port: int, deadline_s: float = 10.0) -> None:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port}")


@dataclass
class NginxRtmp:
    rtmp_port: int
    http_port: int
    app: str
    proc: subprocess.Popen[bytes]
    prefix: Path
    idle_streams: bool = True

    def url(self, name: str) -> str:
        return f"rtmp://127.0.0.1:{self.rtmp_port}/{self.app}/{name}"

    @property
    def stat_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}/stat"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_nginx(
    prefix: Path,
    app: str,
    *,
    fast_start: bool = True,
    idle_streams: bool = True,
    hooks_url: str | None = None,
    rtmp_port: int | None = None,
) -> NginxRtmp:
    """hooks_url: where on_publish/on_publish_done go (mqttrelay's /api/hooks);
    rtmp_port: a given port (a platform back on its address), else a free one."""
    nginx = require_tool("nginx")
    if not Path(RTMP_MODULE).exists():
        message = f"{RTMP_MODULE} missing (install libnginx-mod-rtmp)"
        pytest.fail(message) if os.environ.get("CI") else pytest.skip(message)
    prefix.mkdir(parents=True, exist_ok=True)
    http_port = free_port()
    settings = NginxSettings(
        prefix=str(prefix),
        rtmp_port=rtmp_port or free_port(),
        http_port=http_port,
        app=app,
        fast_start=fast_start,
        idle_streams=idle_streams,
        run_as_root=os.geteuid() == 0,
        on_publish_url=f"{hooks_url}/on_publish" if hooks_url else None,
        on_publish_done_url=f"{hooks_url}/on_publish_done" if hooks_url else None,
    )
    conf = prefix / "nginx.conf"
    conf.write_text(render_nginx_conf(settings))
    proc = subprocess.Popen(
        [nginx, "-p", str(prefix), "-c", str(conf)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    server = NginxRtmp(settings.rtmp_port, http_port, app, proc, prefix, idle_streams)
    try:
        wait_port(settings.rtmp_port)
        wait_port(http_port)
    except TimeoutError:
        server.stop()
        raise RuntimeError((prefix / "error.log").read_text()) from None
    return server


class Publisher:
    """An ffmpeg test source publishing like OBS: 2 s keyframe interval, H.264 + AAC."""

    def __init__(self, url: str, gop_frames: int = 50, **shape: Any) -> None:
        """`shape`: size, rate, sample_rate, channels (build_test_source_argv)."""
        self.url = url
        self.gop_frames = gop_frames
        self.shape = shape
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        ffmpeg = require_tool("ffmpeg")
        self.proc = subprocess.Popen(
            build_test_source_argv(ffmpeg, self.url, self.gop_frames, **self.shape),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _fail_or_skip(message: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@cache
def _ffmpeg_with_x265() -> tuple[str | None, str]:
    """(path, "") of the imageio-ffmpeg wheel's ffmpeg if it is 6.1+ with libx265,
    else (None, why not)."""
    try:
        import imageio_ffmpeg  # type: ignore[import-untyped]

        exe = str(imageio_ffmpeg.get_ffmpeg_exe())
    except (ImportError, RuntimeError) as exc:
        return None, f"imageio-ffmpeg gives no ffmpeg ({exc}): run scripts/setup"
    out = subprocess.run([exe, "-hide_banner", "-version"], capture_output=True, timeout=30)
    text = out.stdout.decode(errors="replace")
    version = re.search(r"ffmpeg version n?(\d+)\.(\d+)", text)
    if version is None or (int(version[1]), int(version[2])) < (6, 1):
        return None, f"{exe} is older than ffmpeg 6.1 (no Enhanced RTMP): {text[:60]!r}"
    if "--enable-libx265" not in text:
        return None, f"{exe} has no libx265"
    return exe, ""


def ffmpeg_with_x265() -> str:
    """An ffmpeg that publishes HEVC over Enhanced RTMP, as OBS set to HEVC does:
    the static one in the imageio-ffmpeg wheel (a dev dependency). Missing, it
    fails under CI=true and skips elsewhere."""
    exe, why = _ffmpeg_with_x265()
    if exe is None:
        _fail_or_skip(why)
    assert exe is not None
    return exe


class HevcPublisher(Publisher):
    """OBS set to HEVC: a small libx265 picture (ultrafast, to spare the CPU) and
    AAC, published over Enhanced RTMP."""

    def start(self) -> None:
        ffmpeg = ffmpeg_with_x265()
        argv = (
            f"{ffmpeg} -hide_banner -loglevel error -nostdin -re"
            " -f lavfi -i testsrc=size=160x120:rate=15 -f lavfi -i sine=frequency=440"
            " -c:v libx265 -preset ultrafast -x265-params log-level=error -g 30"
            " -c:a aac -b:a 64k -f flv"
        ).split()
        self.proc = subprocess.Popen(
            [*argv, self.url], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )


@dataclass(frozen=True)
class StatStream:
    name: str
    publishing: bool
    publisher_id: str | None
    bytes_in: int
    players: int
    video_codec: str | None
    audio_codec: str | None


def parse_stat_streams(xml_text: str, app: str) -> dict[str, StatStream]:
    root = ET.fromstring(xml_text)
    out: dict[str, StatStream] = {}
    for application in root.iter("application"):
        if application.findtext("name") != app:
            continue
        for stream in application.iter("stream"):
            name = stream.findtext("name") or ""
            publisher = next(
                (
                    c.findtext("id")
                    for c in stream.iter("client")
                    if c.find("publishing") is not None
                ),
                None,
            )
            out[name] = StatStream(
                name=name,
                publishing=stream.find("publishing") is not None,
                publisher_id=publisher,
                bytes_in=int(stream.findtext("bytes_in") or 0),
                players=sum(1 for c in stream.iter("client") if c.find("publishing") is None),
                video_codec=stream.findtext("meta/video/codec"),
                audio_codec=stream.findtext("meta/audio/codec"),
            )
    return out


def stat_client() -> httpx.AsyncClient:
    """A client for stat pages: plain http on loopback, so no certificates are
    loaded; loading them blocks the event loop for ~40 ms a client, and the
    service under test runs on that loop."""
    return httpx.AsyncClient(timeout=5, verify=False, trust_env=False)


async def stat_streams(
    server: NginxRtmp, client: httpx.AsyncClient | None = None
) -> dict[str, StatStream]:
    """The server's streams; pass a client to poll over one kept-alive connection."""
    if client is None:
        async with stat_client() as own:
            response = await own.get(server.stat_url)
    else:
        response = await client.get(server.stat_url)
    return parse_stat_streams(response.text, server.app)


async def eventually(
    check: Callable[[], Awaitable[T | None]], deadline_s: float, what: str, step_s: float = 0.1
) -> T:
    """Poll check() until it returns a truthy value; fail with `what` after deadline_s."""
    end = time.monotonic() + deadline_s
    last: T | None = None
    while time.monotonic() < end:
        last = await check()
        if last:
            return last
        await asyncio.sleep(step_s)
    raise AssertionError(f"timed out after {deadline_s} s waiting for {what} (last: {last!r})")


async def probe_codecs(url: str, timeout_s: float = 20.0) -> set[str]:
    """Codec types (audio/video) a player actually reads from url."""
    ffprobe = require_tool("ffprobe")
    proc = await asyncio.create_subprocess_exec(
        ffprobe, "-v", "error", "-rw_timeout", "10000000",
        "-show_entries", "stream=codec_type", "-of", "csv=p=0", url,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout_s)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        return set()
    return {line.strip() for line in out.decode().splitlines() if line.strip()}


@dataclass
class Mosquitto:
    port: int
    conf: Path
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        mosquitto = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        if not Path(mosquitto).exists():
            require_tool("mosquitto")
        self.proc = subprocess.Popen(
            [mosquitto, "-c", str(self.conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_port(self.port)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def make_mosquitto(folder: Path) -> Mosquitto:
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    conf = folder / "mosquitto.conf"
    conf.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
        "log_type error\nlog_type warning\n" + ("user root\n" if os.geteuid() == 0 else "")
    )
    return Mosquitto(port, conf)


def owned_processes(state_file: Path) -> list[psutil.Process]:
    """Live (not zombie) processes mqttrelay marked as started for this state file."""
    return marked_processes(str(state_file.resolve()))


class ServiceProcess:
    """`mqttrelay run` as a user starts it, with its state file beside its config;
    a test may kill it and start it again."""

    def __init__(
        self,
        config: Path,
        log: Path,
        env: dict[str, str] | None = None,
        nofile: int | None = None,
    ) -> None:
        """nofile: the service's open-file limit (soft and hard), as a small host sets it."""
        self.config = config
        self.log = log
        self.env = env or {}
        self.nofile = nofile
        self.cwd = config.parent / "cwd"  # where a stray relative file would land
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def port(self) -> int:
        return int(yaml.safe_load(self.config.read_text())["api"]["port"])

    def start(self) -> None:
        self.cwd.mkdir(exist_ok=True)
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "mqttrelay", "run", "--config", str(self.config)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                cwd=self.cwd, env=dict(os.environ, **self.env), preexec_fn=self._limits,
            )  # fmt: skip

    def _limits(self) -> None:
        if self.nofile is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (self.nofile, self.nofile))

    def wait_api(self, deadline_s: float = 30) -> None:
        wait_port(self.port, deadline_s)

    @property
    def ps(self) -> psutil.Process:
        assert self.proc is not None
        return psutil.Process(self.proc.pid)

    def children(self) -> list[psutil.Process]:
        return owned_processes(self.config.parent / "state.json")

    def stop(self) -> int | None:
        """SIGTERM, as systemd stops it; its exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.terminate()
        return self.proc.wait(30)

    def cleanup(self) -> None:
        """After a test: nothing of it left running, whatever happened."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for child in self.children():
            child.kill()


@dataclass
class TlsFront:
    """stunnel in server mode in front of an nginx-rtmp "platform": rtmps:// on
    127.0.0.1:port, with a self-signed certificate made at test time."""

    port: int
    proc: subprocess.Popen[bytes]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def self_signed_cert(folder: Path) -> tuple[Path, Path]:
    """A throwaway certificate for localhost and its key, in `folder`."""
    openssl = require_tool("openssl")
    folder.mkdir(parents=True, exist_ok=True)
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost",
         "-days", "1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return cert, key


def start_tls_front(folder: Path, backend_port: int) -> TlsFront:
    stunnel = require_tool("stunnel")
    cert, key = self_signed_cert(folder)
    port = free_port()
    conf = folder / "stunnel.conf"
    conf.write_text(
        "foreground = yes\npid =\nsyslog = no\ndebug = 3\n[platform]\n"
        f"accept = 127.0.0.1:{port}\nconnect = 127.0.0.1:{backend_port}\n"
        f"cert = {cert}\nkey = {key}\n"
        "socket = l:TCP_NODELAY=1\nsocket = r:TCP_NODELAY=1\n"
    )
    proc = subprocess.Popen(
        [stunnel, str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    front = TlsFront(port, proc)
    try:
        wait_port(port)
    except TimeoutError:
        front.stop()
        raise
    return front


@dataclass(frozen=True)
class SeenFrame:
    """A frame a viewer decoded at the platform (ffmpeg's showinfo/ashowinfo)."""

    wall: float  # time.monotonic() when it was seen
    pts: float
    video: bool
    key: bool = False
    size: str = ""
    mean: tuple[int, ...] = ()  # per plane (Y, U, V)
    rate: int = 0
    channels: int = 0


_SHOWINFO = re.compile(r"pts_time:\s*(-?[\d.]+)")


def parse_showinfo(line: str, wall: float) -> SeenFrame | None:
    """One showinfo or ashowinfo line -> the frame, or None for other lines."""
    found = _SHOWINFO.search(line)
    if found is None or " n:" not in line:
        return None
    pts = float(found.group(1))
    if "Parsed_showinfo" in line:
        size = re.search(r" s:(\d+x\d+)", line)
        mean = re.search(r"mean:\[([\d ]+)\]", line)
        return SeenFrame(
            wall,
            pts,
            video=True,
            key="iskey:1" in line,
            size=size.group(1) if size else "",
            mean=tuple(int(v) for v in mean.group(1).split()) if mean else (),
        )
    if "Parsed_ashowinfo" in line:
        rate = re.search(r"rate:(\d+)", line)
        channels = re.search(r"channels:(\d+)", line)
        return SeenFrame(
            wall,
            pts,
            video=False,
            rate=int(rate.group(1)) if rate else 0,
            channels=int(channels.group(1)) if channels else 0,
        )
    return None


class Viewer:
    """A player at the platform that decodes everything and notes every frame."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.frames: list[SeenFrame] = []
        self._proc: asyncio.subprocess.Process | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        ffmpeg = require_tool("ffmpeg")
        argv = [ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "info", "-i", self.url,
                "-vf", "showinfo", "-af", "ashowinfo", "-f", "null", "-"]  # fmt: skip
        self._proc = await asyncio.create_subprocess_exec(
            *argv, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
        )
        self._task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self._proc is not None and self._proc.stderr is not None
        while line := await self._proc.stderr.readline():
            frame = parse_showinfo(line.decode("utf-8", "replace"), time.monotonic())
            if frame is not None:
                self.frames.append(frame)

    def video(self, since: float = 0.0) -> list[SeenFrame]:
        return [f for f in self.frames if f.video and f.wall >= since]

    def audio(self, since: float = 0.0) -> list[SeenFrame]:
        return [f for f in self.frames if not f.video and f.wall >= since]

    async def stop(self) -> None:
        if self._proc is not None and self._proc.returncode is None:
            self._proc.kill()
            await self._proc.wait()
        if self._task is not None:
            await self._task
