"""Against a real `mqttrelay run` (and its `check`): what a program on the same
machine or a page in the owner's browser must not get past — a forged
ingress proxy, SRT options that turn a relay around, short tokens and keys."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from .conftest import CANARY_KEY
from .support import ServiceProcess, free_port

pytestmark = pytest.mark.integration

TOKEN = "hardening-" + "h" * 20
SUPERVISOR = "172.30.32.2"
KEYS = {"FB_KEY": f"fb-{CANARY_KEY}"}


def _write(folder: Path, **api: object) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "config.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "state_file": "state.json",
                "ingest": {"url": f"rtmp://127.0.0.1:{free_port()}/live/stream"},
                "mqtt": {"enabled": False},
                "api": {"port": free_port(), "token": TOKEN, **api},
                "streams": [{"id": "fb", "url": "rtmps://a.example:443/rtmp/", "key": "${FB_KEY}"}],
            }
        )
    )
    return config


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    """A token, and Home Assistant's ingress proxy at the Supervisor's address."""
    folder = tmp_path_factory.mktemp("hardening")
    svc = ServiceProcess(
        _write(folder, ingress_proxy=SUPERVISOR),
        folder / "service.log",
        KEYS,
    )
    svc.start()
    svc.wait_api()
    yield svc
    assert svc.stop() == 0
    log = svc.log.read_text()
    assert CANARY_KEY not in log and "Traceback" not in log
    svc.cleanup()


def _client(service: ServiceProcess, token: str | None = None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=f"http://127.0.0.1:{service.port}", headers=headers, timeout=10)


def test_a_loopback_client_cannot_claim_to_be_the_ingress_proxy(service: ServiceProcess) -> None:
    forged = {"X-Forwarded-For": SUPERVISOR, "X-Ingress-Path": "/x"}
    with _client(service) as anyone:
        assert anyone.get("/api/streams", headers=forged).status_code == 401
        # what a DNS-rebinding page sends: a foreign Host, a same-origin Origin
        rebinding = {**forged, "Host": "rebind.example", "Origin": "http://rebind.example"}
        put = anyone.put("/api/streams/fb", json={"enabled": True}, headers=rebinding)
        patch = anyone.patch("/api/streams/fb", json={"name": "pwned"}, headers=rebinding)
        assert put.status_code == 400 and patch.status_code == 400, (put.text, patch.text)
    with _client(service, TOKEN) as owner:
        state = owner.get("/api/streams/fb").json()
        assert state["enabled"] is False and state["name"] == "fb"


def _check(config: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mqttrelay", "check", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        env=dict(os.environ, **(env or KEYS)),
    )


def test_srt_options_that_turn_a_relay_around_are_refused(
    service: ServiceProcess, tmp_path: Path
) -> None:
    listener = "srt://127.0.0.1:19555?mode=listener"
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"streams": [{"id": "srt", "url": listener}]}))
    checked = _check(config)
    assert checked.returncode == 2 and "SRT option 'mode'" in checked.stderr, checked.stderr
    with _client(service, TOKEN) as owner:
        for url in (listener, "srt://127.0.0.1:19555?streamid=x&localport=1935"):
            added = owner.post("/api/streams", json={"id": "srt", "url": url})
            assert added.status_code == 422 and added.json()["detail"][0]["loc"][-1] == "url"
            changed = owner.patch("/api/streams/fb", json={"url": url, "key": None})
            assert changed.status_code == 422, changed.text
        caller = "srt://127.0.0.1:19555?streamid=live/x&passphrase=0123456789ab&latency=120"
        assert owner.post("/api/streams", json={"id": "srt", "url": caller}).status_code == 201
        assert owner.delete("/api/streams/srt").status_code == 204


def test_a_short_token_is_refused_where_other_machines_reach_the_page(tmp_path: Path) -> None:
    config = _write(tmp_path / "lan", host="0.0.0.0", token="short")
    checked = _check(config)
    assert checked.returncode == 2 and "token is 5 characters" in checked.stderr
    # `run` refuses before it listens anywhere (192.0.2.1: an address no host has)
    config = _write(tmp_path / "run", host="192.0.2.1", token="short")
    ran = subprocess.run(
        [sys.executable, "-m", "mqttrelay", "run", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        env=dict(os.environ, **KEYS),
    )
    assert ran.returncode == 2 and "token is 5 characters" in ran.stderr, ran.stderr
    assert "cannot listen" not in ran.stderr
    # the container's options: PAGE_TOKEN under plain Docker
    from mqttrelay.container.options import OptionsError
    from mqttrelay.container.start import prepare

    env = {"MQTTRELAY_DATA": str(tmp_path / "data"), "PAGE_TOKEN": "short"}
    (tmp_path / "data").mkdir()
    with pytest.raises(OptionsError) as refused:
        prepare(env, lambda _: None)
    assert any("page_token" in p for p in refused.value.problems)
    assert not (tmp_path / "data" / "config.yaml").exists()


def test_a_short_key_is_refused_and_masking_keeps_words_whole(
    service: ServiceProcess, tmp_path: Path
) -> None:
    checked = _check(_write(tmp_path / "short"), {"FB_KEY": "a"})
    assert checked.returncode == 2 and "streams[0].key: key is 1 character" in checked.stderr
    with _client(service, TOKEN) as owner:
        body = {"id": "kick", "url": "rtmp://127.0.0.1:9/app", "key": "k" * 7}
        added = owner.post("/api/streams", json=body)
        assert added.status_code == 422 and added.json()["detail"][0]["loc"][-1] == "key"
        changed = owner.patch("/api/streams/fb", json={"key": "k" * 7})
        assert changed.status_code == 422 and changed.json()["detail"][0]["loc"][-1] == "key"
    # a short MQTT password ("a") is a secret too, but not every "a" of the log
    config = _write(tmp_path / "pw")
    raw = yaml.safe_load(config.read_text())
    raw["mqtt"] = {"port": free_port(), "username": "relay", "password": "a"}
    config.write_text(yaml.safe_dump(raw))
    svc = ServiceProcess(config, tmp_path / "pw" / "service.log", KEYS)
    svc.start()
    try:
        svc.wait_api()
        with _client(svc, TOKEN) as owner:
            health = owner.get("/api/health")
            assert health.status_code == 200 and "****" not in health.text, health.text
    finally:
        assert svc.stop() == 0
        svc.cleanup()
    log = svc.log.read_text()
    assert "mqttrelay running" in log and "mqttrel****" not in log, log
