from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from mqttrelay.app import Service, build
from mqttrelay.config import Config

# also imported from here (the kit's names as they were)
from .kit import CANARY_KEY as CANARY_KEY
from .kit import BuiltinIngest, Ingest, publishing
from .kit import make_config as make_config
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

# Faster supervision for tests; the values the product uses are in RelaySettings.
TEST_RELAY_OVERRIDES: dict[str, float] = {
    "stop_grace_s": 2.0,
    "stall_s": 6.0,
    "backoff_first_s": 0.3,
    "backoff_max_s": 2.0,
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests marked `early` first and `late` last: what waits in the background
    (the quiet minutes) overlaps the rest of the suite."""
    early = [i for i in items if i.get_closest_marker("early")]
    late = [i for i in items if i.get_closest_marker("late")]
    rest = [i for i in items if i not in early and i not in late]
    items[:] = early + rest + late


@pytest.fixture
def ingest_kind() -> str:
    """Which ingest `ingest` is: "nginx", or "builtin" where a test parametrizes
    it (kit.both_ingests)."""
    return "nginx"


@pytest.fixture
def ingest(tmp_path: Path, request: pytest.FixtureRequest, ingest_kind: str) -> Iterator[Ingest]:
    """The ingest as `mqttrelay nginx-conf` renders it; parametrize with
    indirect=True and a bool to choose idle_streams. With ingest_kind "builtin",
    mqttrelay's own (ingest.listen on a free port): nothing runs until a service does."""
    require_tool("ffmpeg")
    if ingest_kind == "builtin":
        yield BuiltinIngest()
        return
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
async def publisher(ingest: Ingest) -> AsyncIterator[Publisher]:
    """OBS publishing to "stream": at once on nginx; on the built-in ingest once the
    test's service listens."""
    async with publishing(ingest) as pub:
        yield pub


@pytest.fixture
async def services() -> AsyncIterator[Callable[..., Service]]:
    """Services as build() makes them (`services(config, config_path)`: with the
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
