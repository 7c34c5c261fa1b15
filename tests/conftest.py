from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from mqttrelay.app import Service, build
from mqttrelay.config import Config

from .support import (
    Mosquitto,
    NginxRtmp,
    Publisher,
    TlsFront,
    make_mosquitto,
    owned_processes,
    require_tool,
    start_nginx,
    start_tls_front,
)

CANARY_KEY = "canary-SECRET-4711"

# Faster supervision for tests; the values the product uses are in RelaySettings.
TEST_RELAY_OVERRIDES: dict[str, float] = {
    "stop_grace_s": 2.0,
    "stall_s": 6.0,
    "backoff_first_s": 0.3,
    "backoff_max_s": 2.0,
}


@pytest.fixture
def ingest(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[NginxRtmp]:
    """The ingest as `mqttrelay nginx-conf` renders it; parametrize with
    indirect=True and a bool to choose idle_streams."""
    require_tool("ffmpeg")
    idle_streams = bool(getattr(request, "param", True))
    server = start_nginx(tmp_path / "ingest", "live", idle_streams=idle_streams)
    yield server
    server.stop()


@pytest.fixture
def platforms(tmp_path: Path) -> Iterator[NginxRtmp]:
    """A second nginx-rtmp server standing in for Facebook, TikTok, YouTube."""
    server = start_nginx(tmp_path / "platforms", "dest", fast_start=False)
    yield server
    server.stop()


@pytest.fixture
def tls_platforms(tmp_path: Path, platforms: NginxRtmp) -> Iterator[TlsFront]:
    """The platforms, also over rtmps:// through a TLS terminator (stunnel)."""
    front = start_tls_front(tmp_path / "tls", platforms.rtmp_port)
    yield front
    front.stop()


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    server = make_mosquitto(tmp_path / "mosquitto")
    server.start()
    yield server
    server.kill()


@pytest.fixture
def publisher(ingest: NginxRtmp) -> Iterator[Publisher]:
    pub = Publisher(ingest.url("stream"))
    pub.start()
    yield pub
    pub.stop()


def make_config(
    tmp_path: Path,
    ingest: NginxRtmp,
    platforms: NginxRtmp,
    names: list[str],
    mode: str = "cached",
    **ingest_extra: Any,
) -> Config:
    return Config.model_validate(
        {
            "state_file": str(tmp_path / "state.json"),
            "ingest": {"url": ingest.url("stream"), "mode": mode, **ingest_extra},
            "streams": [
                {
                    "id": name,
                    "name": name.title(),
                    "url": f"rtmp://127.0.0.1:{platforms.rtmp_port}/dest",
                    "key": f"{name}-{CANARY_KEY}",
                }
                for name in names
            ],
        }
    )


@pytest.fixture
async def managers() -> AsyncIterator[Callable[..., Service]]:
    """Services as build() makes them (`managers(config, config_path)`: with the
    file's editor and reloads), stopped after the test; no ffmpeg may outlive them."""
    made: list[tuple[Service, Config]] = []

    def factory(config: Config, config_path: Path | None = None) -> Service:
        service = build(config, config_path, relay_overrides=TEST_RELAY_OVERRIDES)
        made.append((service, config))
        return service

    yield factory
    for service, _ in made:
        await service.stop()
    for _, config in made:
        leftovers = owned_processes(config.state_file)
        assert not leftovers, f"processes left behind: {leftovers}"
