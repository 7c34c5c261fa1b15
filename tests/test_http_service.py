"""The HTTP API served by a real `mqttrelay run`: events, OpenAPI fuzzing, start-up errors."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
import yaml
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import positive_data_acceptance

from .kit import CANARY_KEY, write_offline_config
from .kit import RunningService as RunningService

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningService]:
    folder = tmp_path_factory.mktemp("http-service")
    svc = RunningService(
        write_offline_config(folder, ["facebook", "tiktok"]), folder / "service.log"
    )
    yield svc
    assert svc.stop() == 0
    log = svc.log.read_text()
    assert CANARY_KEY not in log
    assert "Traceback" not in log


@pytest.fixture(scope="module")
def api_schema(service: RunningService) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_url(f"{service.url}/openapi.json")


@pytest.mark.slow
def test_openapi_fuzzing_no_server_errors_and_schema_holds(
    api_schema: schemathesis.BaseSchema,
) -> None:
    """Property tests from the served OpenAPI document: every operation, generated
    inputs; no 5xx, responses match their schema, no key anywhere."""
    operations = []
    for result in api_schema.get_all_operations():
        assert isinstance(result, Ok), f"the served OpenAPI document is invalid: {result}"
        operations.append(result.ok())
    assert len(operations) >= 9
    for operation in operations:

        @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy())
        def check(case: schemathesis.Case[Any]) -> None:
            # Schema-valid bodies may still break a rule the schema cannot say
            # ("at" in the past): those get a 422, which is right.
            # the ingest picture is 503 while OBS is away (it is, here): that is its answer
            picture = case.operation.path == "/api/ingest/snapshot"
            excluded: list[Any] = [positive_data_acceptance]
            if picture:
                excluded.append(not_a_server_error)
            response = case.call_and_validate(excluded_checks=excluded)
            assert response.status_code < 500 or (picture and response.status_code == 503)
            assert CANARY_KEY not in response.text

        check()


async def test_events_are_pushed(service: RunningService) -> None:
    async with (
        httpx.AsyncClient(base_url=service.url, timeout=10) as client,
        client.stream("GET", "/api/events") as response,
    ):
        assert response.headers["content-type"].startswith("text/event-stream")
        seen: list[str] = []
        lines = response.aiter_lines()

        async def read_until(marker: str) -> None:
            async for line in lines:
                seen.append(line)
                if marker in line:
                    return

        await asyncio.wait_for(read_until("event: snapshot"), 10)
        put = await httpx.AsyncClient(base_url=service.url).put(
            "/api/streams/tiktok", json={"enabled": True}
        )
        assert put.status_code == 200
        await asyncio.wait_for(read_until('"enabled":true'), 10)
        await httpx.AsyncClient(base_url=service.url).put(
            "/api/streams/tiktok", json={"enabled": False}
        )
        await asyncio.wait_for(read_until('"status":"off"'), 10)
        assert CANARY_KEY not in "\n".join(seen)


def run_cli(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mqttrelay", "run", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


@pytest.mark.slow
def test_busy_port_and_exposed_api_are_clear_errors(tmp_path: Path) -> None:
    path = write_offline_config(tmp_path, ["facebook"])
    raw = yaml.safe_load(path.read_text())
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", raw["api"]["port"]))
        busy.listen()
        result = run_cli(path)
    assert result.returncode == 2
    assert "cannot listen on 127.0.0.1" in result.stderr and "Traceback" not in result.stderr

    raw["api"]["host"] = "0.0.0.0"
    path.write_text(yaml.safe_dump(raw))
    started = time.monotonic()
    result = run_cli(path)
    assert result.returncode == 2
    assert "api.token is not set" in result.stderr and "Traceback" not in result.stderr
    assert time.monotonic() - started < 30
    assert not os.path.exists(tmp_path / "state.json")  # refused before anything started
