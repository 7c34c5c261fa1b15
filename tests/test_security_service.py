"""Security of a real `mqttrelay run`: host names, cross-site requests, hook
secrets, headers, docs behind the token, event tickets, and no secret in any
child's environment or in anything the service says."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest
import yaml

from .kit import CANARY_KEY, TokenService, collector, offline_service
from .kit import SERVICE_TOKEN as TOKEN
from .support import (
    Mosquitto,
    NginxRtmp,
    Publisher,
    ServiceProcess,
    eventually,
    free_port,
    require_tool,
)

pytestmark = pytest.mark.integration
FORM = {"Content-Type": "application/x-www-form-urlencoded"}

# every route, as (method, path, JSON body or None)
ROUTES = [
    ("GET", "/", None),
    ("GET", "/api/streams", None),
    ("GET", "/api/streams/facebook", None),
    ("PUT", "/api/streams/facebook", {"enabled": False}),
    ("POST", "/api/streams/facebook/timer", {"action": "on", "in_s": 600}),
    ("GET", "/api/streams/facebook/timer", None),
    ("DELETE", "/api/streams/facebook/timer", None),
    ("POST", "/api/hooks/on_publish", None),
    ("POST", "/api/hooks/on_publish_done", None),
    ("POST", "/api/reload", None),
    ("GET", "/api/health", None),
    ("POST", "/api/events/ticket", None),
    ("GET", "/metrics", None),
    ("GET", "/api/docs", None),
    ("GET", "/openapi.json", None),
]


@pytest.fixture(scope="module", params=[None, TOKEN], ids=["no-token", "token"])
def service(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TokenService]:
    svc = offline_service(tmp_path_factory.mktemp("sec") / "svc", request.param)
    svc.token = request.param
    yield svc
    assert svc.stop() == 0
    log = svc.log.read_text()
    assert CANARY_KEY not in log and "Traceback" not in log
    svc.cleanup()


def _client(service: TokenService | ServiceProcess, token: str | None = None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=f"http://127.0.0.1:{service.port}", headers=headers, timeout=10)


def _call(client: httpx.Client, method: str, path: str, body: object, **headers: str) -> int:
    if path == "/api/events":
        with client.stream(method, path, headers=headers) as response:
            return response.status_code
    return client.request(method, path, json=body, headers=headers).status_code


def test_a_foreign_host_name_is_refused_on_every_route(service: TokenService) -> None:
    token = service.token
    with _client(service, token) as client:
        for method, path, body in [*ROUTES, ("GET", "/api/events", None)]:
            status = _call(client, method, path, body, host="rebind.example.com")
            assert status == 400, (method, path, status)
        port = service.port
        for host in (f"127.0.0.1:{port}", f"localhost:{port}", "studio.lan", f"[::1]:{port}"):
            assert client.get("/api/streams", headers={"host": host}).status_code == 200, host
        # the hooks answer to their own rules, the page to everyone it knows
        refused = client.get("/", headers={"host": "rebind.example.com"})
        assert "api.allowed_hosts" in refused.json()["detail"]


def test_cross_site_forms_cannot_cut_or_reload(service: TokenService) -> None:
    token = service.token
    secret = (service.config.parent / ".mqttrelay-hook-secret").read_text().strip()
    with _client(service, token) as client:
        for path in ("/api/hooks/on_publish", "/api/hooks/on_publish_done", "/api/reload"):
            for marker in ({"origin": "http://evil.example"}, {"sec-fetch-site": "cross-site"}):
                response = client.post(
                    f"{path}?secret={secret}", content=b"name=x", headers={**FORM, **marker}
                )
                assert response.status_code == 403, (path, marker, response.text)
            empty = client.post(path, headers={"origin": "http://evil.example"})
            assert empty.status_code == 403, path
        same = client.post("/api/reload", headers={"origin": f"http://127.0.0.1:{service.port}"})
        assert same.status_code == 200
    assert "publisher stopped" not in service.log.read_text()


def test_hooks_need_their_secret(service: TokenService) -> None:
    secret = (service.config.parent / ".mqttrelay-hook-secret").read_text().strip()
    with _client(service) as client:  # nginx sends no token
        wrong = client.post(
            "/api/hooks/on_publish_done?secret=" + "w" * 32, content=b"", headers=FORM
        )
        assert wrong.status_code == 403
        right = client.post(
            f"/api/hooks/on_publish_done?secret={secret}", content=b"", headers=FORM
        )
        assert right.status_code == 200
        # a hand-run nginx rendered before hook secrets: still obeyed from loopback, with a warning
        legacy = client.post("/api/hooks/on_publish_done", content=b"name=s", headers=FORM)
        assert legacy.status_code == 200
    assert "without their secret" in service.log.read_text()


def test_every_answer_carries_the_security_headers(service: TokenService) -> None:
    token = service.token
    with _client(service, token) as client:
        page = client.get("/")
        csp = page.headers["content-security-policy"]
        assert "script-src 'sha256-" in csp and "unsafe-inline" not in csp
        assert "frame-ancestors 'none'" in csp and "connect-src 'self'" in csp
        for response in (page, client.get("/api/streams"), client.get("/api/nothing")):
            assert response.headers["x-frame-options"] == "DENY"
            assert response.headers["x-content-type-options"] == "nosniff"
            assert response.headers["referrer-policy"] == "no-referrer"
        refused = client.get("/", headers={"host": "evil.example"})
        assert refused.headers["x-frame-options"] == "DENY"


def test_docs_and_schema_are_behind_the_token(service: TokenService) -> None:
    token = service.token
    with _client(service) as anonymous, _client(service, token) as signed_in:
        for path in ("/api/docs", "/openapi.json"):
            expected = 401 if token else 200
            assert anonymous.get(path).status_code == expected, path
            assert signed_in.get(path).status_code == 200, path


def test_event_stream_takes_a_single_use_ticket(service: TokenService) -> None:
    token = service.token
    with _client(service, token) as client, _client(service) as anonymous:
        if token is None:  # nothing to show: the stream is open
            with anonymous.stream("GET", "/api/events") as events:
                assert events.status_code == 200
            return
        assert anonymous.post("/api/events/ticket").status_code == 401
        ticket = client.post("/api/events/ticket").json()["ticket"]
        with anonymous.stream("GET", f"/api/events?ticket={ticket}") as events:
            assert events.status_code == 200
            first = next(events.iter_lines())
            assert first.startswith("retry:")
        with anonymous.stream("GET", f"/api/events?ticket={ticket}") as again:
            assert again.status_code == 401


def test_check_refuses_a_short_token(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("api: {token: short}\n")
    result = subprocess.run(
        [sys.executable, "-m", "mqttrelay", "check", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "api.token: 5 characters" in result.stderr and "Traceback" not in result.stderr


# -- secrets in processes and in everything the service says ----------------------

OTHER_KEY = "other-" + CANARY_KEY
MQTT_PASSWORD = "mqttpw-" + CANARY_KEY


def _environ(pid: int) -> bytes:
    return Path(f"/proc/{pid}/environ").read_bytes()


@pytest.mark.slow
async def test_no_secret_in_children_nor_in_what_the_service_says(
    tmp_path: Path, platforms: NginxRtmp, broker: Mosquitto
) -> None:
    require_tool("ffmpeg")
    ingest_port = free_port()
    config = tmp_path / "config.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "state_file": "state.json",
                "ingest": {"url": f"rtmp://127.0.0.1:{ingest_port}/live/stream", "manage": True},
                "mqtt": {"port": broker.port, "username": "relay", "password": "${MQTT_PW}"},
                "api": {"port": free_port(), "token": "${API_TOKEN}"},
                "streams": [
                    {
                        "id": "youtube",
                        "url": f"rtmp://127.0.0.1:{platforms.rtmp_port}/dest",
                        "key": "${YT_KEY}",
                        "enabled": True,
                    },
                    {  # user-info and a query in the url, and a key: all of it secret
                        "id": "srt",
                        "url": f"srt://user:pw-{CANARY_KEY}@127.0.0.1:{free_port()}"
                        f"?passphrase=pp-{CANARY_KEY}",
                        "key": "${OTHER_KEY}",
                        "enabled": True,
                    },
                ],
            }
        )
    )
    env = {
        "MQTT_PW": MQTT_PASSWORD,
        "API_TOKEN": TOKEN,
        "YT_KEY": "yt-" + CANARY_KEY,
        "OTHER_KEY": OTHER_KEY,
    }
    service = ServiceProcess(config, tmp_path / "service.log", env)
    publisher = Publisher(f"rtmp://127.0.0.1:{ingest_port}/live/stream")
    async with collector(broker.port) as mqtt:
        service.start()
        try:
            service.wait_api()
            publisher.start()
            headers = {"Authorization": f"Bearer {TOKEN}"}
            async with httpx.AsyncClient(
                base_url=f"http://127.0.0.1:{service.port}", headers=headers, timeout=10
            ) as api:

                async def live() -> bool:
                    state = (await api.get("/api/streams/youtube")).json()
                    return bool(state["status"] == "live")

                async def srt_failed_once() -> bool:
                    return bool((await api.get("/api/streams/srt")).json()["last_error"])

                await eventually(live, 40, "youtube live")
                await eventually(srt_failed_once, 40, "the srt relay's first error")
                said = [
                    (await api.get(path)).text
                    for path in ("/api/streams", "/api/health", "/metrics", "/api/streams/srt")
                ]
                ticket = (await api.post("/api/events/ticket")).json()["ticket"]
                async with api.stream("GET", f"/api/events?ticket={ticket}") as events:
                    lines = []
                    async for line in events.aiter_lines():
                        lines.append(line)
                        if line.startswith("data:"):
                            break
                said.append("\n".join(lines))

            children = service.ps.children(recursive=True)
            relays = [p for p in children if p.name() == "ffmpeg"]
            nginxes = [p for p in children if p.name() == "nginx"]  # master and worker
            assert relays and nginxes
            for child in relays + nginxes:
                environ = _environ(child.pid)
                for secret in (TOKEN, MQTT_PASSWORD, OTHER_KEY, "yt-" + CANARY_KEY):
                    assert secret.encode() not in environ, (child.name(), secret)
                assert b"MQTT_PW" not in environ and b"API_TOKEN" not in environ
            for relay in relays:
                argv = " ".join(relay.cmdline())
                assert TOKEN not in argv and MQTT_PASSWORD not in argv
                if ("yt-" + CANARY_KEY) in argv:  # the youtube relay: only its own key
                    assert OTHER_KEY not in argv
            await asyncio.sleep(1.5)  # a few MQTT updates
        finally:
            publisher.stop()
            assert service.stop() == 0
            service.cleanup()
        published = "\n".join(f"{m.topic} {m.payload!r}" for m in mqtt.seen)
    assert mqtt.seen
    for text, where in [
        *((s, "API") for s in said),
        (published, "MQTT"),
        (service.log.read_text(), "log"),
        ((tmp_path / "state.json").read_text(), "state file"),
    ]:
        assert CANARY_KEY not in text, where
        assert TOKEN not in text and "pw-" not in text, where
    srt_url = json.loads(said[-2])["url"]
    assert srt_url.startswith("srt://****@127.0.0.1:") and srt_url.endswith("?****/****")
    assert not [
        p for p in psutil.process_iter() if p.pid == (service.proc.pid if service.proc else -1)
    ]
