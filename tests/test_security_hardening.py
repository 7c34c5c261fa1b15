"""Against a real `mqttrelay run` (and its `check`): what a program on the same
machine or a page in the owner's browser must not get past — a forged
ingress proxy, SRT options that turn a relay around, short tokens and keys."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import aiomqtt
import httpx
import pytest
import yaml

from .kit import CANARY_KEY, wait_publishing
from .support import (
    Mosquitto,
    NginxRtmp,
    Publisher,
    ServiceProcess,
    eventually,
    free_port,
    start_nginx,
    stat_streams,
)

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
            # (the ingest URL's stream name is masked as every URL's last part is)
            shown = health.text.replace("/live/****", "")
            assert health.status_code == 200 and "****" not in shown, health.text
    finally:
        assert svc.stop() == 0
        svc.cleanup()
    log = svc.log.read_text()
    assert "mqttrelay running" in log and "mqttrel****" not in log, log


async def test_a_key_never_follows_its_url_to_another_server(
    tmp_path: Path,
    ingest: NginxRtmp,
    platforms: NginxRtmp,
    publisher: Publisher,
    broker: Mosquitto,
) -> None:
    attacker = start_nginx(tmp_path / "attacker", "app")  # a server someone else runs
    key = KEYS["FB_KEY"]
    config = tmp_path / "config.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "state_file": "state.json",
                "ingest": {"url": ingest.url("stream")},
                "mqtt": {"port": broker.port},
                "api": {"port": free_port(), "token": TOKEN},
                "streams": [
                    {
                        "id": "fb",
                        "url": f"rtmp://127.0.0.1:{platforms.rtmp_port}/dest",
                        "key": "${FB_KEY}",
                    }
                ],
            }
        )
    )
    svc = ServiceProcess(config, tmp_path / "service.log", KEYS)
    svc.start()
    try:
        svc.wait_api()
        elsewhere = f"rtmp://127.0.0.1:{attacker.rtmp_port}/app"
        with _client(svc, TOKEN) as owner:
            moved = owner.patch("/api/streams/fb", json={"url": elsewhere})
        async with aiomqtt.Client("127.0.0.1", broker.port) as mqtt:
            await mqtt.publish("streamrelay/fb/set", b"ON", qos=1)

        async def published_somewhere() -> bool:
            return bool(await stat_streams(attacker)) or key in await stat_streams(platforms)

        await eventually(published_somewhere, 60, "the relay to publish")
        assert not await stat_streams(attacker), "the key went to the new server"
        await wait_publishing(platforms, key)
        assert moved.status_code == 422, moved.text
        assert moved.json()["detail"][0]["loc"] == ["body", "key"]
        assert "${FB_KEY}" in config.read_text()  # nothing was changed
        with _client(svc, TOKEN) as owner:
            # the same server, another path: the key may stay
            same = owner.patch(
                "/api/streams/fb", json={"url": f"rtmp://127.0.0.1:{platforms.rtmp_port}/dest/"}
            )
            assert same.status_code == 200, same.text
            # another server with its own key (or none): accepted
            own = owner.patch("/api/streams/fb", json={"url": elsewhere, "key": "attacker-own-key"})
            assert own.status_code == 200, own.text
        await eventually(lambda: _has(attacker, "attacker-own-key"), 60, "the new key in use")
        assert key not in await stat_streams(attacker)
    finally:
        assert svc.stop() == 0
        svc.cleanup()
        attacker.stop()
    assert CANARY_KEY not in svc.log.read_text()


async def _has(server: NginxRtmp, name: str) -> bool:
    return name in await stat_streams(server)


def _many(folder: Path, count: int) -> Path:
    config = _write(folder)
    raw = yaml.safe_load(config.read_text())
    raw["streams"] = [
        {"id": f"d{n:03}", "url": f"rtmp://127.0.0.1:9/app{n}", "key": f"key-{n:03}-{CANARY_KEY}"}
        for n in range(count)
    ]
    config.write_text(yaml.safe_dump(raw))
    return config


async def test_edits_leave_the_loop_free_and_destinations_are_capped(tmp_path: Path) -> None:
    svc = ServiceProcess(_many(tmp_path / "many", 100), tmp_path / "service.log", KEYS)
    svc.start()
    try:
        svc.wait_api()
        base = f"http://127.0.0.1:{svc.port}"
        headers = {"Authorization": f"Bearer {TOKEN}"}
        async with (
            httpx.AsyncClient(base_url=base, headers=headers, timeout=10) as editor,
            httpx.AsyncClient(base_url=base, headers=headers, timeout=10) as page,
        ):
            await page.get("/api/health")  # a kept-alive connection, as the page's
            edits: list[float] = []
            stalls: list[float] = []
            done = asyncio.Event()

            async def edit() -> None:
                for n in range(6):
                    started = time.monotonic()
                    changed = await editor.patch("/api/streams/d050", json={"name": f"n{n}"})
                    assert changed.status_code == 200, changed.text
                    edits.append(time.monotonic() - started)
                done.set()

            async def poll() -> None:
                while not done.is_set():
                    started = time.monotonic()
                    assert (await page.get("/api/health")).status_code == 200
                    stalls.append(time.monotonic() - started)
                    await asyncio.sleep(0.01)

            await asyncio.gather(edit(), poll())
            print(f"edits {max(edits):.3f} s, the page {max(stalls):.3f} s at most")
            # the page is not held up for the length of an edit (on the loop: 90 %)
            assert max(stalls) < 0.6 * max(edits), (max(stalls), max(edits))
            over = {"id": "d100", "url": "rtmp://127.0.0.1:9/app", "key": f"k-{CANARY_KEY}"}
            refused = await editor.post("/api/streams", json=over)
            assert refused.status_code == 422 and "at most 100" in refused.text, refused.text
    finally:
        assert svc.stop() == 0
        svc.cleanup()
