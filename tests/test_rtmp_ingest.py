"""The built-in ingest (ingest.listen) with real publishers and real sockets:
ffmpeg 5.1 (Debian) and ffmpeg 9 (imageio-ffmpeg) publish H.264 and HEVC into
mqttrelay itself, a relay takes it to a platform; and the LAN limits: an idle
flood, a slow handshake, an oversize message, a wrong key, a second publisher."""

from __future__ import annotations

import asyncio
import logging
import os
import random
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mqttrelay.app import Service
from mqttrelay.config import Config
from mqttrelay.ffmpeg.argv import build_test_source_argv
from mqttrelay.ingest.rtmp import amf0, handshake
from mqttrelay.ingest.rtmp.chunks import COMMAND_AMF0, encode_message
from mqttrelay.ingest.rtmp.server import Limits, RtmpServer

from .kit import CANARY_KEY
from .support import (
    NginxRtmp,
    eventually,
    free_port,
    probe_codecs,
    require_tool,
    stat_streams,
)

pytestmark = pytest.mark.integration
KEY = "pubkey-0123456789ab"


def ffmpeg9() -> str:
    """The static ffmpeg 9 of the imageio-ffmpeg wheel (a dev dependency)."""
    try:
        import imageio_ffmpeg  # type: ignore[import-untyped]
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail("imageio-ffmpeg is not installed (scripts/setup)")
        pytest.skip("imageio-ffmpeg is not installed (scripts/setup)")
    path: str = imageio_ffmpeg.get_ffmpeg_exe()
    return path


def source_argv(
    ffmpeg: str, url: str, codec: str = "libx264", seconds: float = 0, audio: str = "aac"
) -> list[str]:
    argv = build_test_source_argv(ffmpeg, url)
    if audio != "aac":
        argv[argv.index("aac")] = audio
        argv[-1:-1] = ["-ar", "48000"]
    if codec != "libx264":
        argv[argv.index("libx264")] = codec
        argv[argv.index("zerolatency") - 1 : argv.index("zerolatency") + 1] = []
        argv[-1:-1] = ["-x265-params", "log-level=error"]
    if seconds:
        argv[-1:-1] = ["-t", str(seconds)]
    return argv


def gstreamer_argv(url: str) -> list[str]:
    """GStreamer publishing with rtmp2sink (gstreamer1.0-plugins-bad): H.264 + AAC."""
    gst = require_tool("gst-launch-1.0")
    pipeline = (
        "videotestsrc is-live=true ! video/x-raw,width=320,height=240,framerate=25/1"
        " ! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=50 bitrate=400"
        " ! h264parse ! queue ! flvmux name=mux streamable=true"
        f" ! rtmp2sink location={url}"
        " audiotestsrc is-live=true ! audioconvert ! voaacenc ! aacparse ! queue ! mux."
    )
    return [gst, "-q", *pipeline.split()]


class Pub:
    """A process on the test's own loop (the server under test runs there too)."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    @classmethod
    async def start(cls, argv: list[str]) -> Pub:
        proc = await asyncio.create_subprocess_exec(
            *argv, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
        )
        return cls(proc)

    @staticmethod
    async def start_capture(argv: list[str], deadline_s: float = 40) -> str:
        """Run to the end; its stdout."""
        proc = await asyncio.create_subprocess_exec(
            *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL
        )
        out, _ = await asyncio.wait_for(proc.communicate(), deadline_s)
        return out.decode(errors="replace")

    async def kill(self) -> None:
        if self.proc.returncode is None:
            self.proc.kill()
        await self.proc.wait()

    async def wait(self, deadline_s: float) -> int:
        return await asyncio.wait_for(self.proc.wait(), deadline_s)

    async def stop_after(self, deadline_s: float) -> str:
        """Its stderr once it ends by itself."""
        _, err = await asyncio.wait_for(self.proc.communicate(), deadline_s)
        return err.decode(errors="replace")

    async def stop(self) -> str:
        if self.proc.returncode is None:
            self.proc.kill()
        _, err = await asyncio.wait_for(self.proc.communicate(), 10)
        return err.decode(errors="replace")


def builtin_config(tmp_path: Path, platform_url: str, ffmpeg: str = "ffmpeg") -> Config:
    port = free_port()
    return Config.model_validate(
        {
            "state_file": str(tmp_path / "state.json"),
            "ffmpeg": {"path": ffmpeg},
            "ingest": {
                "url": f"rtmp://127.0.0.1:{port}/live/stream",
                "listen": f"127.0.0.1:{port}",
                "publish_key": KEY,
            },
            "streams": [
                {"id": "tiktok", "name": "TikTok", "url": platform_url, "key": f"t-{CANARY_KEY}"}
            ],
        }
    )


def publish_url(config: Config, key: str = KEY) -> str:
    return f"{config.ingest.url}?key={key}"


async def wait_live(service: Service, live: bool = True, deadline_s: float = 30) -> None:
    async def check() -> bool:
        return service.router.ingest_state().live == live

    await eventually(check, deadline_s, f"the ingest to be {'live' if live else 'idle'}")


async def relay_to_nginx(
    tmp_path: Path, platforms: NginxRtmp, services: Callable[[Config], Service], ffmpeg: str
) -> tuple[Service, Config]:
    config = builtin_config(tmp_path, f"rtmp://127.0.0.1:{platforms.rtmp_port}/dest", ffmpeg)
    service = services(config)
    await service.start()
    return service, config


async def wait_platform(platforms: NginxRtmp, key: str, deadline_s: float = 40) -> None:
    async def check() -> bool:
        stream = (await stat_streams(platforms)).get(key)
        return bool(stream and stream.publishing and stream.video_codec and stream.audio_codec)

    await eventually(check, deadline_s, f"{key} to publish audio and video")


@pytest.mark.parametrize("publisher", ["ffmpeg5", "ffmpeg9", "gstreamer"])
async def test_h264_publisher_reaches_a_platform_through_the_builtin_ingest(
    publisher: str,
    tmp_path: Path,
    platforms: NginxRtmp,
    services: Callable[[Config], Service],
) -> None:
    service, config = await relay_to_nginx(tmp_path, platforms, services, "ffmpeg")
    if publisher == "gstreamer":
        argv = gstreamer_argv(publish_url(config))
    else:
        ffmpeg = require_tool("ffmpeg") if publisher == "ffmpeg5" else ffmpeg9()
        argv = source_argv(ffmpeg, publish_url(config))
    pub = await Pub.start(argv)
    try:
        await wait_live(service)
        info = service.router.ingest_state()
        assert info.live
        await service.router.set_enabled("tiktok", True)
        key = config.streams[0].target.rsplit("/", 1)[1]
        await wait_platform(platforms, key)
        assert await probe_codecs(platforms.url(key)) == {"audio", "video"}
        assert service.hub is not None and service.hub.session_info().video_codec == "H.264"
        # the publisher drops: noticed at once, not after silence
        await pub.kill()
        started = time.monotonic()
        await wait_live(service, False, 5)
        assert time.monotonic() - started < 1.0
    finally:
        await pub.stop()


@pytest.mark.slow
@pytest.mark.parametrize(
    ("video", "audio", "seen"),
    [("libx265", "aac", ("Video: hevc", "Audio: aac")),
     ("libx264", "libopus", ("Video: h264", "Audio: opus"))],
)  # fmt: skip
async def test_e_rtmp_reaches_an_e_rtmp_platform_without_reencoding(
    video: str,
    audio: str,
    seen: tuple[str, str],
    tmp_path: Path,
    services: Callable[[Config], Service],
) -> None:
    """ffmpeg 9 publishes HEVC (E-RTMP v1) or Opus (E-RTMP v2 audio); the relay
    (ffmpeg.path: ffmpeg 9) writes E-RTMP to a platform that reads it (ffmpeg 9
    listening), which gets the same codecs."""
    ff9 = ffmpeg9()
    port = free_port()
    received = tmp_path / "platform.flv"
    platform = await Pub.start(
        [ff9, "-hide_banner", "-loglevel", "error", "-listen", "1", "-i",
         f"rtmp://127.0.0.1:{port}/dest/key", "-c", "copy", "-f", "flv", str(received)]
    )  # fmt: skip
    config = builtin_config(tmp_path, f"rtmp://127.0.0.1:{port}/dest", ff9)
    config = config.model_copy(
        update={"streams": [config.streams[0].model_copy(update={"key": "key"})]}
    )
    service = services(config)
    await service.start()
    pub = await Pub.start(source_argv(ff9, publish_url(config), video, audio=audio))
    try:
        await wait_live(service, deadline_s=40)
        assert service.hub is not None
        info = service.hub.session_info()
        assert info.video_codec == ("HEVC" if video == "libx265" else "H.264")
        assert info.audio_codec == ("AAC" if audio == "aac" else "Opus")
        await service.router.set_enabled("tiktok", True)

        async def grown() -> bool:
            return received.exists() and received.stat().st_size > 50_000

        await eventually(grown, 40, "the platform to receive the stream")
        probe = await Pub.start([ff9, "-hide_banner", "-i", str(received)])
        text = await probe.stop_after(30)
        assert seen[0] in text and seen[1] in text, text
        assert "Input #0, flv" in text
    finally:
        await pub.stop()
        await service.router.set_enabled("tiktok", False)
        await platform.stop()


async def test_multitrack_publisher_sends_track_0_only(
    tmp_path: Path, platforms: NginxRtmp, services: Callable[[Config], Service]
) -> None:
    """ffmpeg 9 publishing two video tracks (E-RTMP v2: track 1 in multitrack
    packets): the hub takes track 0, so a relay on Debian's ffmpeg 5.1 sends the
    platform one 320x240 video and the audio."""
    service, config = await relay_to_nginx(tmp_path, platforms, services, "ffmpeg")
    argv = source_argv(ffmpeg9(), publish_url(config))
    second = ["-f", "lavfi", "-i", "testsrc=size=180x320:rate=25"]
    argv[argv.index("-c:v") : argv.index("-c:v")] = [
        *second, "-map", "0:v", "-map", "2:v", "-map", "1:a"
    ]  # fmt: skip
    pub = await Pub.start(argv)
    try:
        await wait_live(service)
        await service.router.set_enabled("tiktok", True)
        key = config.streams[0].target.rsplit("/", 1)[1]
        await wait_platform(platforms, key)
        out = await Pub.start_capture(
            [require_tool("ffprobe"), "-v", "error", "-rw_timeout", "10000000",
             "-show_entries", "stream=codec_type,width,height", "-of", "csv=p=0",
             platforms.url(key)]
        )  # fmt: skip
        lines = sorted(line.strip(",") for line in out.split())
        assert lines == ["audio", "video,320,240"], out
    finally:
        await pub.stop()


async def test_hevc_to_h264_only_destination_and_old_ffmpeg_get_clear_reasons(
    tmp_path: Path, platforms: NginxRtmp, services: Callable[[Config], Service]
) -> None:
    """HEVC with the relays on Debian's ffmpeg 5.1: a destination that takes H.264
    only (video_codecs) and one that does not say both get a reason, not a black
    picture; neither relay starts an ffmpeg."""
    config = builtin_config(tmp_path, f"rtmp://127.0.0.1:{platforms.rtmp_port}/dest")
    h264_only = config.streams[0].model_copy(update={"video_codecs": ["h264"]})
    unsaid = config.streams[0].model_copy(update={"id": "youtube", "key": f"y-{CANARY_KEY}"})
    config = config.model_copy(update={"streams": [h264_only, unsaid]})
    service = services(config)
    await service.start()
    pub = await Pub.start(source_argv(ffmpeg9(), publish_url(config), "libx265"))
    try:
        await wait_live(service, deadline_s=40)
        for stream_id in ("tiktok", "youtube"):
            await service.router.set_enabled(stream_id, True)

        async def reasons() -> bool:
            states = [service.router.stream_state(s) for s in ("tiktok", "youtube")]
            return all(s.error_kind == "codec" for s in states)

        await eventually(reasons, 30, "both relays to name the codec problem")
        tiktok = service.router.stream_state("tiktok").last_error or ""
        youtube = service.router.stream_state("youtube").last_error or ""
        assert "takes H.264 only (video_codecs) and OBS sends HEVC" in tiktok
        assert "ffmpeg 5.1" in youtube and "no Enhanced RTMP" in youtube
        assert service.router.stream_state("tiktok").pid is None
        assert not (await stat_streams(platforms))
    finally:
        await pub.stop()


# -- the limits, with real sockets -------------------------------------------------


class Recorder:
    def __init__(self) -> None:
        self.started = 0
        self.ended = 0
        self.tags = 0

    def rtmp_started(self) -> None:
        self.started += 1

    def rtmp_media(self, type_id: int, timestamp: int, payload: bytes) -> None:
        self.tags += 1

    def rtmp_ended(self) -> None:
        self.ended += 1


async def server(limits: Limits | None = None) -> tuple[RtmpServer, Recorder]:
    sink = Recorder()
    srv = RtmpServer("127.0.0.1", 0, {"live/stream": sink}, KEY, limits)
    await srv.start()
    return srv, sink


def url(srv: RtmpServer, key: str = KEY) -> str:
    return f"rtmp://127.0.0.1:{srv.port}/live/stream?key={key}"


async def closed(sock: socket.socket, deadline_s: float) -> bool:
    """Does the server close this socket within deadline_s?"""
    loop = asyncio.get_running_loop()
    sock.setblocking(False)
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        try:
            data = await asyncio.wait_for(loop.sock_recv(sock, 65536), end - time.monotonic())
        except TimeoutError:
            return False
        except ConnectionError:
            return True
        if not data:
            return True
    return False


async def connect_from(address: str, port: int) -> socket.socket:
    sock = socket.socket()
    sock.setblocking(False)
    sock.bind((address, 0))
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    return sock


async def raw_publisher(port: int, key: str = KEY, then: bytes = b"") -> socket.socket:
    """A publisher written by hand: handshake, connect ... publish, and `then`
    in the same write (without waiting for the answers)."""
    loop = asyncio.get_running_loop()
    sock = socket.socket()
    sock.setblocking(False)
    await loop.sock_connect(sock, ("127.0.0.1", port))
    await loop.sock_sendall(sock, b"\x03" + bytes(handshake.SIZE))
    got = b""
    while len(got) < 1 + 2 * handshake.SIZE:
        got += await loop.sock_recv(sock, 8192)
    await loop.sock_sendall(sock, got[1 : 1 + handshake.SIZE])

    def cmd(csid: int, stream: int, *values: Any) -> bytes:
        return encode_message(csid, COMMAND_AMF0, stream, 0, amf0.encode(*values), 128)

    await loop.sock_sendall(
        sock,
        cmd(3, 0, "connect", 1.0, {"app": "live"})
        + cmd(3, 0, "createStream", 2.0, None)
        + cmd(5, 1, "publish", 3.0, None, f"stream?key={key}", "live")
        + then,
    )
    return sock


@pytest.mark.slow
async def test_idle_flood_does_not_keep_obs_out(caplog: pytest.LogCaptureFixture) -> None:
    srv, sink = await server()
    flood = [await connect_from("127.0.0.2", srv.port) for _ in range(300)]
    pub = await Pub.start(source_argv(require_tool("ffmpeg"), url(srv), seconds=4))
    try:

        async def publishing() -> bool:
            return sink.started == 1 and sink.tags > 20

        await eventually(publishing, 30, "OBS to publish past 300 idle connections")
        assert len(srv._conns) <= srv.limits.max_connections
        # and the flood is dropped at the handshake deadline, one log line for the address
        assert await closed(flood[-1], srv.limits.handshake_s + srv.limits.publish_s + 5)
        lines = [r.getMessage() for r in caplog.records if "127.0.0.2" in r.getMessage()]
        assert 1 <= len(lines) <= 2, lines
    finally:
        await pub.stop()
        for sock in flood:
            sock.close()
        await srv.stop()


async def test_slow_handshake_and_oversize_message_are_dropped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    srv, sink = await server(Limits(handshake_s=1.0, max_message_size=100_000))
    try:
        slow = await connect_from("127.0.0.3", srv.port)
        await asyncio.get_running_loop().sock_sendall(
            slow, b"\x03" + bytes(500)
        )  # then nothing: a slowloris handshake
        started = time.monotonic()
        assert await closed(slow, 10)
        assert time.monotonic() - started < 5
        big = await raw_publisher(srv.port)
        header = bytes([0x06]) + bytes(3) + (0xFFFFFF).to_bytes(3, "big") + b"\x09" + bytes(4)
        await asyncio.get_running_loop().sock_sendall(big, header + bytes(128))
        assert await closed(big, 10)
        text = "\n".join(r.getMessage() for r in caplog.records)
        assert "127.0.0.3" in text
        assert "over the cap of 100000" in text and "127.0.0.1" in text
        assert sink.tags == 0
    finally:
        await srv.stop()


async def test_wrong_key_is_refused_before_any_media(caplog: pytest.LogCaptureFixture) -> None:
    srv, sink = await server()
    try:
        wrong = await Pub.start(
            source_argv(require_tool("ffmpeg"), url(srv, "guess-9999"), seconds=5)
        )
        await wrong.wait(30)
        err = await wrong.stop()
        assert wrong.proc.returncode != 0
        assert sink.started == 0 and sink.tags == 0
        text = "\n".join(r.getMessage() for r in caplog.records)
        assert "wrong publish key" in text and "guess-9999" not in text
        assert "Server error: live/stream: wrong publish key" in err  # OBS is told why
        sock = await raw_publisher(srv.port, "")
        assert await closed(sock, 5)  # no key at all: refused too
        assert sink.started == 0
    finally:
        await srv.stop()


async def test_second_publisher_refused_and_a_crashed_one_replaced() -> None:
    srv, sink = await server(Limits(takeover_s=1.0, idle_s=30))
    ffmpeg = require_tool("ffmpeg")
    first = await Pub.start(source_argv(ffmpeg, url(srv)))
    try:

        async def tags() -> bool:
            return sink.tags > 20

        await eventually(tags, 30, "the first publisher's tags")
        second = await Pub.start(source_argv(ffmpeg, url(srv), seconds=20))
        await second.wait(30)
        assert "already being published" in await second.stop()
        assert sink.started == 1 and srv.publishing("live/stream")
        # a crash (the process is gone: its socket closes) frees the name at once
        await first.kill()

        async def ended() -> bool:
            return sink.ended == 1

        await eventually(ended, 5, "the crashed publisher to end its session")
        # a publisher gone silent without closing (a frozen machine) is replaced
        frozen = await raw_publisher(srv.port)
        await eventually(lambda: _true(srv.publishing("live/stream")), 5, "the raw publisher")
        await asyncio.sleep(1.5)
        third = await Pub.start(source_argv(ffmpeg, url(srv)))
        try:
            await eventually(lambda: _true(sink.started == 3), 30, "the new publisher")
            assert await closed(frozen, 5)
        finally:
            await third.stop()
    finally:
        await first.stop()
        await srv.stop()


async def _true(value: bool) -> bool:
    return value


@pytest.mark.slow
async def test_malformed_input_over_sockets_never_stops_the_service(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Garbage at every stage (before, in and after the handshake, after connect),
    from one address: each connection ends, one log line for the address, and a
    real publisher is taken afterwards."""
    srv, sink = await server(Limits(handshake_s=2.0, publish_s=2.0))
    loop = asyncio.get_running_loop()
    rng = random.Random(30)
    try:

        async def attack(n: int) -> bool:
            garbage = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 3000)))
            if n % 4 == 0:
                sock = await connect_from("127.0.0.4", srv.port)
                await loop.sock_sendall(sock, garbage)
            elif n % 4 == 1:
                sock = await connect_from("127.0.0.4", srv.port)
                await loop.sock_sendall(sock, b"\x03" + garbage)
            else:
                sock = await raw_publisher(srv.port, "wrong" if n % 4 == 2 else KEY)
                await loop.sock_sendall(sock, garbage)
            try:
                return await closed(sock, 10)
            finally:
                sock.close()

        # in rounds of 8: the address's cap of connections not publishing
        for first in range(0, 40, 8):
            ended = await asyncio.gather(*(attack(n) for n in range(first, first + 8)))
            assert all(ended), (first, ended)
        assert len(srv._conns) == 0
        lines = [r.getMessage() for r in caplog.records if "127.0.0.4" in r.getMessage()]
        assert len(lines) == 1, lines
        pub = await Pub.start(source_argv(require_tool("ffmpeg"), url(srv), seconds=3))
        await pub.wait(30)
        assert sink.tags > 20
    finally:
        await srv.stop()


async def test_small_cap_before_publishing_and_a_pipelining_publisher(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Before its publish is accepted a connection may send commands only (64 KiB
    a message: idle sockets hold little); a publisher that sends its first large
    keyframe right behind publish, without waiting for the answer, is taken."""
    srv, sink = await server()
    loop = asyncio.get_running_loop()
    try:
        idle = await connect_from("127.0.0.5", srv.port)
        await loop.sock_sendall(idle, b"\x03" + bytes(handshake.SIZE))
        await asyncio.sleep(0.2)
        await loop.sock_sendall(idle, bytes(handshake.SIZE))
        big_command = amf0.encode("connect", 1.0, {"app": "x" * 70_000})
        await loop.sock_sendall(idle, encode_message(3, COMMAND_AMF0, 0, 0, big_command, 128))
        assert await closed(idle, 10)
        assert "over the cap of 65536" in caplog.text and "127.0.0.5" in caplog.text

        keyframe = b"\x17\x01\x00\x00\x00" + bytes(300_000)
        sock = await raw_publisher(srv.port, KEY, then=encode_message(6, 9, 1, 0, keyframe, 128))
        await eventually(lambda: _true(sink.tags == 1), 10, "the pipelined keyframe")
        assert srv.publishing("live/stream")
        sock.close()
    finally:
        await srv.stop()


async def test_one_key_guess_per_connection_and_no_message_flood() -> None:
    """A refused publish ends the connection's reading (the guesses queued behind it in
    the same write are never checked), and a flood of empty messages before `publish`
    is cut instead of stalling the loop."""
    srv, sink = await server()
    loop = asyncio.get_running_loop()

    def cmd(csid: int, stream: int, *values: Any) -> bytes:
        return encode_message(csid, COMMAND_AMF0, stream, 0, amf0.encode(*values), 128)

    guesses = b"".join(
        cmd(5, 1, "publish", 4.0 + i, None, f"stream?key=guess-{i:04}", "live") for i in range(200)
    )
    sock = await raw_publisher(srv.port, key="wrong-key-0000000000", then=guesses)
    try:
        assert await closed(sock, 10)
        assert srv.refused == 1 and sink.started == 0
    finally:
        sock.close()
    # 1,000 zero-length audio messages (ignored before `publish`), after a type-0 header
    flood = bytes([0x03]) + bytes(3) + bytes(3) + bytes([8]) + bytes(4)
    flood += bytes([0xC3]) * 1000
    sock = await raw_publisher(srv.port, then=b"")  # this one publishes with the key

    async def published() -> bool:
        return sink.started == 1

    await eventually(published, 10, "the publisher with the key to be taken")
    second = socket.socket()
    second.setblocking(False)
    await loop.sock_connect(second, ("127.0.0.1", srv.port))
    try:
        await loop.sock_sendall(second, b"\x03" + bytes(handshake.SIZE))
        got = b""
        while len(got) < 1 + 2 * handshake.SIZE:
            got += await loop.sock_recv(second, 8192)
        await loop.sock_sendall(second, got[1 : 1 + handshake.SIZE] + flood)
        assert await closed(second, 10)
        assert sink.started == 1  # the publisher with the key was never disturbed
    finally:
        second.close()
        sock.close()
        await srv.stop()
