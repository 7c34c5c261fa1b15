"""`mqttrelay demo`: the same page port after a previous demo, a mosquitto_sub line
that leaves out the picture's JPEG bytes, log lines that say what each nginx is."""

from __future__ import annotations

import asyncio
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest

from mqttrelay.config import load_config
from mqttrelay.demo import banner, demo_config, free_port
from mqttrelay.transports.mqtt.topics import Topics

from .support import eventually, make_mosquitto, require_tool, wait_port
from .support import free_port as any_free_port


def time_wait_on(port: int) -> bool:
    return any(
        c.status == psutil.CONN_TIME_WAIT and c.laddr and c.laddr.port == port
        for c in psutil.net_connections(kind="tcp4")
    )


def leave_time_wait(port: int) -> None:
    """A server on `port` that closes a connection first, as the page does at Ctrl-C:
    the port is left in TIME_WAIT for a minute."""
    with socket.socket() as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", port))
        server.listen()
        with socket.create_connection(("127.0.0.1", port)) as client:
            conn, _ = server.accept()
            conn.close()
            client.recv(1)  # the server's FIN
    end = time.monotonic() + 10
    while not time_wait_on(port):
        assert time.monotonic() < end, f"no TIME_WAIT on port {port}"
        time.sleep(0.05)


def test_the_preferred_port_after_a_previous_run_and_another_when_in_use() -> None:
    port = any_free_port()
    leave_time_wait(port)
    assert free_port(port) == port
    with socket.socket() as busy:
        busy.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        busy.bind(("127.0.0.1", port))
        busy.listen()
        other = free_port(port)
        assert other != port and other > 0


def demo_banner(tmp_path: Path, mqtt_port: int) -> str:
    ports = {"ingest": 1, "platforms": 3, "mqtt": mqtt_port, "api": 8088}
    config = load_config(demo_config(tmp_path, ports, mqtt=True))
    return banner(config, ports, mqtt=True)


def test_the_demo_publishes_to_the_built_in_ingest(tmp_path: Path) -> None:
    ports = {"ingest": 1935, "platforms": 3, "mqtt": 1883, "api": 8088}
    ingest = load_config(demo_config(tmp_path, ports, mqtt=True)).ingest
    assert ingest.listen == "127.0.0.1:1935" and not ingest.manage
    assert ingest.url == "rtmp://127.0.0.1:1935/live/stream" and ingest.mode == "cached"


def test_the_printed_mosquitto_sub_leaves_out_the_picture(tmp_path: Path) -> None:
    text = demo_banner(tmp_path, 1883)
    (line,) = [line for line in text.splitlines() if "mosquitto_sub" in line]
    picture = Topics("streamrelay", "demo").ingest_picture
    assert picture == "streamrelay/host/demo/ingest/picture"
    assert line.split() == [
        "mosquitto_sub",
        *("-h", "127.0.0.1", "-p", "1883"),
        *("-t", "'streamrelay/#'", "-T", f"'{picture}'", "-v"),
    ]


def test_the_printed_mosquitto_sub_prints_states_not_jpeg_bytes(tmp_path: Path) -> None:
    require_tool("mosquitto_sub")
    pub = require_tool("mosquitto_pub")
    broker = make_mosquitto(tmp_path / "mosquitto")
    broker.start()
    try:
        text = demo_banner(tmp_path, broker.port)
        line = next(line for line in text.splitlines() if "mosquitto_sub" in line)
        # as pasted into a shell, stopping after the first message it prints
        sub = subprocess.Popen(
            [*shlex.split(line), "-C", "1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        try:
            jpeg = tmp_path / "picture.jpg"
            jpeg.write_bytes(b"\xff\xd8\xff\xe0" + bytes(range(256)) * 8)
            picture = Topics("streamrelay", "demo").ingest_picture
            for _ in range(50):  # until the subscription is in place: the state arrives
                if sub.poll() is not None:
                    break
                subprocess.run(
                    [pub, "-h", "127.0.0.1", "-p", str(broker.port), "-t", picture, "-f", jpeg],
                    check=True,
                    timeout=30,
                )
                state = ["-t", "streamrelay/tiktok/state", "-m", "ON"]
                subprocess.run(
                    [pub, "-h", "127.0.0.1", "-p", str(broker.port), *state], check=True, timeout=30
                )
                try:
                    sub.wait(0.2)
                except subprocess.TimeoutExpired:
                    continue
            out, err = sub.communicate(timeout=30)
        finally:
            if sub.poll() is None:
                sub.kill()
                sub.wait()
        assert sub.returncode == 0, err
        assert out == b"streamrelay/tiktok/state ON\n"
    finally:
        broker.kill()


async def run_demo_once(port: int, log: Path) -> None:
    """Start the demo preferring `port`, wait for its page there, close connections
    server-first (as a browser tab's at Ctrl-C), stop it with Ctrl-C."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "mqttrelay", "demo", "--port", str(port),
        stdin=subprocess.DEVNULL,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:

        async def page_line() -> str | None:
            text = await asyncio.to_thread(log.read_text, errors="replace")
            return text if "Web page:" in text or proc.returncode is not None else None

        text = await eventually(page_line, 90, "the demo's banner")
        assert f"Web page:   http://127.0.0.1:{port}/" in text, text
        await asyncio.to_thread(wait_port, port, 60)
        headers = {"Connection": "close"}  # the server closes: its side is left in TIME_WAIT
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            for _ in range(3):
                assert (await client.get("/api/streams", headers=headers)).status_code == 200
        proc.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(proc.wait(), 60) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


@pytest.mark.integration
async def test_a_demo_started_twice_gets_the_same_page_port(tmp_path: Path) -> None:
    for tool in ("ffmpeg", "nginx", "mosquitto"):
        require_tool(tool)
    port = any_free_port()
    first, second = tmp_path / "first.log", tmp_path / "second.log"
    await run_demo_once(port, first)
    assert time_wait_on(port)  # what made the second demo take another port before
    await run_demo_once(port, second)
    for log in (first, second):
        text = log.read_text()
        assert "Traceback" not in text
        infos = [line for line in text.splitlines() if " INFO " in line]
        # the first nginx is the stand-in for the platforms, not the ingest
        assert "stand-in platforms (Facebook, TikTok, YouTube) listening on" in infos[0], infos
        assert "ingest" not in infos[0].split(": ", 1)[1]
        assert any("built-in RTMP ingest listening" in line for line in infos), infos
        assert "-T 'streamrelay/host/demo/ingest/picture'" in text
