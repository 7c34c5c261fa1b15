"""node-media-server 4 (Node.js, installed by scripts/setup into .node/): a
platform that speaks Enhanced RTMP (HEVC, AV1, VP9 over RTMP), on 127.0.0.1
and free ports, with a config written for the test."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from .support import free_port, require_tool, wait_port

APP = Path(__file__).parent.parent / ".node/node_modules/node-media-server/bin/app.js"


@dataclass
class NodeMediaServer:
    rtmp_port: int
    http_port: int
    proc: subprocess.Popen[bytes]
    log: Path

    def url(self, app: str, name: str = "") -> str:
        base = f"rtmp://127.0.0.1:{self.rtmp_port}/{app}"
        return f"{base}/{name}" if name else base

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def nms_config(rtmp_port: int, http_port: int, folder: Path) -> dict[str, object]:
    """Loopback only, no admin page, no TLS ports, no auth (none of it is under test)."""
    return {
        "bind": "127.0.0.1",
        "rtmp": {"port": rtmp_port},
        "http": {"port": http_port},
        "webadmin": {"enable": False},
        "store": {"path": str(folder / "data")},
        "record": {"auto": False, "path": str(folder / "record")},
    }


def start_node_media_server(folder: Path) -> NodeMediaServer:
    node = require_tool("node")
    if not APP.exists():
        message = f"{APP} missing: node-media-server is not installed (run scripts/setup)"
        pytest.fail(message) if os.environ.get("CI") else pytest.skip(message)
    folder.mkdir(parents=True, exist_ok=True)
    rtmp_port, http_port = free_port(), free_port()
    config = folder / "config.json"
    config.write_text(json.dumps(nms_config(rtmp_port, http_port, folder)))
    log = folder / "nms.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [node, str(APP), "-c", str(config)],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=folder,
        )
    server = NodeMediaServer(rtmp_port, http_port, proc, log)
    try:
        wait_port(rtmp_port, 20)
    except TimeoutError:
        server.stop()
        raise RuntimeError(log.read_text(errors="replace")) from None
    return server
