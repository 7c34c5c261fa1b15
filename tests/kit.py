"""The test kit: what test modules share above tests/support.py's processes.
Config builders, waits on the router and the platforms, an MQTT collector, the
API in the same loop, `mqttrelay run` variants, the browser. Test modules
import these from here, never from each other."""

from __future__ import annotations

import asyncio
import contextlib
import random
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiomqtt
import httpx
import psutil
import pytest
import yaml

from mqttrelay.app import Service
from mqttrelay.config import Config, load_config
from mqttrelay.control.router import Router
from mqttrelay.transports.mqtt.bridge import MqttBridge

from .support import (
    Mosquitto,
    NginxRtmp,
    Publisher,
    SeenFrame,
    ServiceProcess,
    eventually,
    free_port,
    require_tool,
    stat_streams,
    wait_port,
)

CANARY_KEY = "canary-SECRET-4711"
B = "streamrelay"  # the default MQTT base topic


# -- the two ingests ------------------------------------------------------------
BUILTIN_KEY = "pubkey-0123456789ab"  # ingest.listen wants 16+ of [A-Za-z0-9_-]


@dataclass
class BuiltinIngest:
    """The built-in ingest (ingest.listen): mqttrelay itself listens on rtmp_port,
    so a publisher may only start once the service does (`publish_when_listening`)."""

    rtmp_port: int = field(default_factory=free_port)
    app: str = "live"
    key: str = BUILTIN_KEY

    def url(self, name: str) -> str:
        return f"rtmp://127.0.0.1:{self.rtmp_port}/{self.app}/{name}"

    def publish_url(self, name: str) -> str:
        return f"{self.url(name)}?key={self.key}"

    def listening(self) -> bool:
        return any(
            c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == self.rtmp_port
            for c in psutil.net_connections("tcp4")
        )


Ingest = NginxRtmp | BuiltinIngest
INGEST_KINDS = ["nginx", "builtin"]


def both_ingests(slow_builtin: bool = False) -> pytest.MarkDecorator:
    """Runs a test that takes the `ingest` fixture on nginx-rtmp and on the built-in
    ingest (fixture `ingest_kind`); slow_builtin marks the built-in run slow."""
    builtin = pytest.param("builtin", marks=[pytest.mark.slow] if slow_builtin else [])
    return pytest.mark.parametrize("ingest_kind", ["nginx", builtin])


def ingest_section(ingest: Ingest, **extra: Any) -> dict[str, Any]:
    """config.yaml's `ingest` for stream "stream" on either ingest."""
    section: dict[str, Any] = {"url": ingest.url("stream"), **extra}
    if isinstance(ingest, BuiltinIngest):
        section |= {"listen": f"127.0.0.1:{ingest.rtmp_port}", "publish_key": ingest.key}
    return section


def ingest_publisher(ingest: Ingest, **kwargs: Any) -> Publisher:
    """A publisher (not started) to "stream" on either ingest, with its key."""
    if isinstance(ingest, BuiltinIngest):
        return Publisher(ingest.publish_url("stream"), **kwargs)
    return Publisher(ingest.url("stream"), **kwargs)


async def publish_when_listening(ingest: Ingest, publisher: Publisher) -> None:
    """Starts the publisher: at once on nginx, else once mqttrelay listens (ffmpeg
    gives up on a refused connection)."""
    if isinstance(ingest, BuiltinIngest):
        await eventually(lambda: _async(ingest.listening()), 60, "the built-in ingest to listen")
    publisher.start()


@contextlib.asynccontextmanager
async def publishing(ingest: Ingest, **kwargs: Any) -> AsyncIterator[Publisher]:
    """OBS publishing to "stream" (Publisher's `kwargs`): started at once on nginx,
    on the built-in ingest in the background once the test's service listens."""
    pub = ingest_publisher(ingest, **kwargs)
    starting = asyncio.create_task(publish_when_listening(ingest, pub))
    await asyncio.sleep(0)  # on nginx it has started now
    try:
        yield pub
    finally:
        starting.cancel()
        with contextlib.suppress(asyncio.CancelledError, AssertionError):
            await starting
        pub.stop()


# -- config builders ----------------------------------------------------------
def stream_entries(
    names: list[str], url: str, key: Callable[[str], str] = lambda n: f"{n}-{CANARY_KEY}"
) -> list[dict[str, Any]]:
    """One config entry per name, all at `url`, each with a key holding the canary."""
    return [{"id": n, "name": n.title(), "url": url, "key": key(n)} for n in names]


def unused_ingest_url() -> str:
    """An ingest nobody publishes to: commands work, relays wait."""
    return f"rtmp://127.0.0.1:{free_port()}/live/stream"


def make_config(
    tmp_path: Path,
    ingest: Ingest,
    platforms: NginxRtmp,
    names: list[str],
    mode: str = "cached",
    **ingest_extra: Any,
) -> Config:
    """Streams `names` from the ingest's "stream" to the platforms' server."""
    return Config.model_validate(
        {
            "state_file": str(tmp_path / "state.json"),
            "ingest": ingest_section(ingest, mode=mode, **ingest_extra),
            "streams": stream_entries(names, f"rtmp://127.0.0.1:{platforms.rtmp_port}/dest"),
        }
    )


def offline_config(tmp_path: Path, broker: Mosquitto, names: list[str]) -> Config:
    """Streams whose ingest never goes live, on the broker: commands work, relays wait."""
    return Config.model_validate(
        {
            "state_file": str(tmp_path / "state.json"),
            "ingest": {"url": unused_ingest_url()},
            "mqtt": {"port": broker.port, "node_id": "studio"},
            "streams": stream_entries(names, "rtmp://127.0.0.1:9/app", lambda _: CANARY_KEY),
        }
    )


def write_offline_config(tmp_path: Path, streams: list[str], token: str | None = None) -> Path:
    """config.yaml for an API without MQTT, whose ingest never goes live."""
    path = tmp_path / "config.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "state_file": "state.json",
                "ingest": {"url": unused_ingest_url()},
                "mqtt": {"enabled": False},
                "api": {"port": free_port(), "token": token},
                "streams": stream_entries(streams, "rtmps://live-api-s.example.com:443/rtmp/"),
            }
        )
    )
    return path


# -- waits ----------------------------------------------------------------------
async def wait_ingest_live(router: Router) -> None:
    async def live() -> bool:
        return router.ingest_state().live

    await eventually(live, 30, "the ingest to be live")


async def wait_status(router: Router, stream_id: str, status: str, deadline_s: float = 30) -> None:
    async def check() -> bool:
        return router.stream_state(stream_id).status == status

    await eventually(check, deadline_s, f"{stream_id} to be {status}")


async def wait_publishing(platforms: NginxRtmp, key: str, deadline_s: float = 30) -> None:
    async def check() -> bool:
        stream = (await stat_streams(platforms)).get(key)
        return bool(stream and stream.publishing and stream.video_codec and stream.audio_codec)

    await eventually(check, deadline_s, f"{key} to publish audio and video")


def key_of(config: Config, stream_id: str) -> str:
    """The stream key a destination publishes under at the test platform."""
    stream = config.stream(stream_id)
    assert stream is not None and stream.key is not None
    return stream.key


async def switch_on(router: Router, config: Config, platforms: NginxRtmp, stream_id: str) -> str:
    """Switch a destination on once there is a picture to relay (cached mode: the
    ingest is live) and wait until the platform gets audio and video; its key."""
    if config.ingest.mode == "cached":
        await wait_ingest_live(router)
    await router.set_enabled(stream_id, True)
    key = key_of(config, stream_id)
    await wait_publishing(platforms, key)
    return key


async def wait_gone(platforms: NginxRtmp, key: str, deadline_s: float = 15) -> None:
    async def check() -> bool:
        stream = (await stat_streams(platforms)).get(key)
        return stream is None or not stream.publishing

    await eventually(check, deadline_s, f"{key} to stop publishing")


# -- MQTT -----------------------------------------------------------------------
@dataclass
class Seen:
    topic: str
    payload: bytes
    retain: bool


@dataclass
class Collector:
    """A client subscribed to '#' that remembers everything it sees."""

    port: int
    seen: list[Seen] = field(default_factory=list)
    client: aiomqtt.Client | None = None

    def last(self, topic: str) -> bytes | None:
        for item in reversed(self.seen):
            if item.topic == topic:
                return item.payload
        return None

    async def wait(self, topic: str, payload: bytes, deadline_s: float = 20) -> None:
        async def check() -> bool:
            return self.last(topic) == payload

        await eventually(check, deadline_s, f"{topic} = {payload!r}")

    async def publish(self, topic: str, payload: bytes | str, retain: bool = False) -> None:
        assert self.client is not None
        await self.client.publish(topic, payload, qos=1, retain=retain)


@contextlib.asynccontextmanager
async def collector(port: int) -> AsyncIterator[Collector]:
    col = Collector(port)

    async def listen() -> None:
        async with aiomqtt.Client("127.0.0.1", port, identifier=f"test-{random.random()}") as c:
            col.client = c
            await c.subscribe("#", qos=1)
            async for m in c.messages:
                col.seen.append(Seen(str(m.topic), bytes(m.payload), m.retain))

    task = asyncio.create_task(listen())

    async def ready() -> bool:
        return col.client is not None

    await eventually(ready, 10, "the test client to connect")
    try:
        yield col
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
            await task


@contextlib.asynccontextmanager
async def running_bridge(service: Service, config: Config) -> AsyncIterator[MqttBridge]:
    """The service build() made, started, with its own MQTT bridge (mqtt.enabled)."""
    await service.start()
    bridge = service.bridge
    assert bridge is not None, "mqtt.enabled"
    bridge.start()
    try:
        yield bridge
    finally:
        await bridge.stop()


async def wait_connected(bridge: MqttBridge, connects: int = 1) -> None:
    async def check() -> bool:
        return bridge.connected and bridge.connects >= connects

    await eventually(check, 30, "the bridge to connect")


# -- the HTTP API ---------------------------------------------------------------
@contextlib.asynccontextmanager
async def api_client(
    config_path: Path, services: Callable[..., Service], token: str | None = None
) -> AsyncIterator[tuple[httpx.AsyncClient, Router]]:
    """The API app build() made for a started service, called in this event loop."""
    service = services(load_config(config_path), config_path)
    await service.start()
    app = service.api
    transport = httpx.ASGITransport(app=app)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with httpx.AsyncClient(
        transport=transport, base_url="http://127.0.0.1", headers=headers
    ) as client:
        yield client, service.router


def assert_no_canary(response: httpx.Response) -> None:
    assert CANARY_KEY not in response.text


# -- `mqttrelay run` ------------------------------------------------------------
class RunningService:
    """`mqttrelay run` on a config, its API up."""

    def __init__(self, config: Path, log: Path) -> None:
        self.config = config
        self.log = log
        self.port = yaml.safe_load(config.read_text())["api"]["port"]
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mqttrelay", "run", "--config", str(config)],
            stdin=subprocess.DEVNULL,
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
        )
        wait_port(self.port, 30)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> int:
        self.proc.terminate()
        try:
            return self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise


SERVICE_TOKEN = "tok-" + "x" * 20


class TokenService(ServiceProcess):
    token: str | None = None


def offline_service(folder: Path, token: str | None) -> TokenService:
    """`mqttrelay run` without MQTT, an ingest that never goes live, one stream,
    the host name studio.lan allowed."""
    folder.mkdir()
    config = folder / "config.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "state_file": "state.json",
                "ingest": {"url": unused_ingest_url()},
                "mqtt": {"enabled": False},
                "api": {"port": free_port(), "token": token, "allowed_hosts": ["studio.lan"]},
                "streams": [
                    {"id": "facebook", "url": "rtmps://a.example:443/rtmp/", "key": CANARY_KEY}
                ],
            }
        )
    )
    service = TokenService(config, folder / "service.log")
    service.start()
    service.wait_api()
    return service


# -- the standby picture ----------------------------------------------------------
RED_YUV = (81, 90, 240)  # a solid red card after BT.601 conversion


def is_red(frame: SeenFrame) -> bool:
    return len(frame.mean) == 3 and all(
        abs(a - b) <= 16 for a, b in zip(frame.mean, RED_YUV, strict=True)
    )


def red_png(folder: Path) -> Path:
    path = folder / "red.png"
    subprocess.run(
        [require_tool("ffmpeg"), "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi",
         "-i", "color=c=red:s=160x90", "-frames:v", "1", str(path)],
        check=True, timeout=30,
    )  # fmt: skip
    return path


def standby_config(config: Config, image: Path, max_s: float = 120) -> Config:
    return Config.model_validate(
        config.model_dump() | {"standby": {"image": str(image), "max_s": max_s}}
    )


async def publisher_client(platforms: NginxRtmp, key: str) -> str | None:
    stream = (await stat_streams(platforms)).get(key)
    return stream.publisher_id if stream else None


async def wait_loop_ready(service: Service) -> None:
    async def ready() -> bool:
        loops = service.hub._loops if service.hub else None
        return loops is not None and loops.current is not None

    await eventually(ready, 60, "the standby loop to be encoded")


async def _async(value: bool) -> bool:
    """A value as a check for eventually()."""
    return value


# the publisher's shapes the standby is checked with
SHAPES: list[dict[str, Any]] = [
    {"size": "320x180", "rate": 30, "sample_rate": 44100, "channels": 2},
    {"size": "640x360", "rate": 25, "sample_rate": 48000, "channels": 1},
]


# -- floods -----------------------------------------------------------------------
class IdleHolder:
    """Keeps `count` TCP connections open that never send a byte."""

    def __init__(self, port: int, count: int, sources: tuple[str, ...] = ()) -> None:
        """sources: loopback addresses the connections come from, in turn (another
        machine's flood, not OBS's own address); none: the system's choice."""
        self.port = port
        self.count = count
        self.sources = sources
        self._opened = 0
        self.dropped: list[float] = []  # how long each dropped one had been open
        self._tasks: list[asyncio.Task[None]] = []
        self._refill = True
        self.open_now = 0

    async def _hold(self) -> None:
        while True:
            try:
                source = self.sources[self._opened % len(self.sources)] if self.sources else None
                self._opened += 1
                reader, writer = await asyncio.open_connection(
                    "127.0.0.1", self.port, local_addr=(source, 0) if source else None
                )
            except OSError:
                await asyncio.sleep(0.1)
                continue
            opened = time.monotonic()
            self.open_now += 1
            try:
                # nginx sends nothing before the client's handshake: this ends at its close
                await reader.read()
            except ConnectionError:
                pass
            finally:
                self.open_now -= 1
                writer.close()
            self.dropped.append(time.monotonic() - opened)
            if not self._refill:
                return

    async def open(self) -> None:
        for _ in range(self.count):
            self._tasks.append(asyncio.create_task(self._hold()))
            await asyncio.sleep(0)  # one connect at a time, as a flood arrives

    async def stop_refilling_and_wait(self, deadline_s: float) -> bool:
        """True when nginx closed every connection within deadline_s."""
        self._refill = False
        done, _ = await asyncio.wait(self._tasks, timeout=deadline_s)
        return len(done) == len(self._tasks)

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(BaseException):
                await task
