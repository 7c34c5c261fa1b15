"""The README's LAN setup with a real nginx-rtmp: `ingest.manage: true`, the page
and the ingest on a LAN address (in a network namespace). OBS on the LAN
publishes with the key; without it, it is refused; nobody on the LAN can watch."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from mqttrelay.ffmpeg.argv import build_test_source_argv

from .netns import Namespace, host_and_lan
from .support import require_tool

pytestmark = pytest.mark.integration
TOKEN = "lan-token-0123456789"
PUBLISH_KEY = "pubkey-0123"

# Polls the service's health from inside the host namespace (the API is only there).
HEALTH_PROBE = """
import httpx, sys, time
url, token, want = sys.argv[1], sys.argv[2], sys.argv[3] == "live"
end = time.monotonic() + float(sys.argv[4])
last = None
while time.monotonic() < end:
    try:
        last = httpx.get(url, headers={"Authorization": "Bearer " + token}, timeout=3).json()
        if last["ingest"]["live"] == want:
            print("ok"); sys.exit(0)
    except Exception as exc:
        last = repr(exc)
    time.sleep(0.3)
print(last); sys.exit(1)
"""


def _health_is(host: Namespace, port: int, live: bool, deadline_s: float) -> str:
    result = subprocess.run(
        host.argv(
            sys.executable,
            "-c",
            HEALTH_PROBE,
            f"http://{host.address}:{port}/api/health",
            TOKEN,
            "live" if live else "idle",
            str(deadline_s),
        ),
        capture_output=True,
        text=True,
        timeout=deadline_s + 30,
    )
    return result.stdout.strip()


def _post(ns: Namespace, url: str) -> str:
    """The status of a form POST as nginx sends it, from inside ns."""
    code = (
        "import httpx, sys; print(httpx.post(sys.argv[1], content=b'name=stream', headers="
        "{'Content-Type': 'application/x-www-form-urlencoded'}, timeout=10).status_code)"
    )
    return subprocess.run(
        ns.argv(sys.executable, "-c", code, url), capture_output=True, text=True, timeout=30
    ).stdout.strip()


def _probe(ns: Namespace, url: str) -> subprocess.CompletedProcess[str]:
    ffprobe = require_tool("ffprobe")
    return subprocess.run(
        ns.argv(ffprobe, "-v", "error", "-rw_timeout", "8000000", "-analyzeduration", "3000000",
                "-show_entries", "stream=codec_type", "-of", "csv=p=0", url),
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip


@pytest.mark.slow
def test_lan_ingest_takes_obs_with_the_key_only_and_plays_to_nobody_on_the_lan(
    tmp_path: Path,
) -> None:
    ffmpeg = require_tool("ffmpeg")
    require_tool("nginx")
    with host_and_lan() as (host, lan):
        ingest = f"rtmp://{host.address}:1935/live/stream"
        config = tmp_path / "config.yaml"
        config.write_text(
            yaml.safe_dump(
                {
                    "state_file": "state.json",
                    "ingest": {"url": ingest, "manage": True, "publish_key": PUBLISH_KEY},
                    "mqtt": {"enabled": False},
                    "api": {"host": host.address, "port": 8088, "token": TOKEN},
                }
            )
        )
        log = tmp_path / "service.log"
        with log.open("wb") as out:
            service = subprocess.Popen(
                host.argv(sys.executable, "-m", "mqttrelay", "run", "--config", str(config)),
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        obs: list[subprocess.Popen[bytes]] = []
        try:
            rendered = (tmp_path / ".mqttrelay-nginx" / "nginx.conf").read_text
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and not (tmp_path / ".mqttrelay-nginx").exists():
                time.sleep(0.2)
            assert _health_is(host, 8088, False, 30) == "ok", log.read_text()

            # the managed nginx always sends the hook secret: a call without it is refused
            for query in ("", "?secret=" + "w" * 32):
                status = _post(host, f"http://{host.address}:8088/api/hooks/on_publish_done{query}")
                assert status == "403", (query, status)

            without_key = subprocess.run(
                lan.argv(*build_test_source_argv(ffmpeg, ingest)),
                capture_output=True, timeout=60,
            )  # fmt: skip
            assert without_key.returncode != 0, "a publisher without the key was accepted"
            assert "refused a publisher" in log.read_text()

            publisher = subprocess.Popen(
                lan.argv(*build_test_source_argv(ffmpeg, f"{ingest}?key={PUBLISH_KEY}")),
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            obs.append(publisher)
            status = _health_is(host, 8088, True, 40)
            assert status == "ok", f"OBS with the key was not taken: {status}\n{log.read_text()}"
            assert publisher.poll() is None

            from_lan = _probe(lan, ingest)
            assert "video" not in from_lan.stdout, "the LAN could watch the raw feed"
            on_host = _probe(host, ingest)  # the host itself (the tap) may
            assert "video" in on_host.stdout, on_host.stderr
            # the hooks go where the API listens, not to 127.0.0.1
            assert (
                f"on_publish http://{host.address}:8088/api/hooks/on_publish?secret=" in rendered()
            )
            # the hooks go where the API listens, not to 127.0.0.1
            assert (
                f"on_publish http://{host.address}:8088/api/hooks/on_publish?secret=" in rendered()
            )
        finally:
            for proc in obs:
                proc.kill()
                proc.wait()
            service.terminate()
            code = service.wait(30)
        text = log.read_text()
        assert code == 0, text
        assert PUBLISH_KEY not in text and TOKEN not in text and "Traceback" not in text
        state = json.loads((tmp_path / "state.json").read_text())
        assert PUBLISH_KEY not in json.dumps(state)
