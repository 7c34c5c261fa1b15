"""The standby picture: what the relays are fed while OBS is away.

When a session starts, its first seconds are probed (ffprobe) for what the
platforms are receiving: size, frame rate, pixel format, audio rate and
channels. A short loop of the standby card with silence is encoded once for
that shape, at the lowest CPU priority, and kept in memory as FLV tags. While
OBS is away the hub plays it in real time into its one fan-out, so the
platforms see one continuous broadcast: no live encode during standby.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mqttrelay.ffmpeg import StreamShape, last_line, loop_argv, parse_probe, probe_argv
from mqttrelay.lib import process
from mqttrelay.lib.aio import cancel_and_wait
from mqttrelay.lib.flv import FlvError, FlvReader, FlvTag
from mqttrelay.lib.redact import Redactor

log = logging.getLogger(__name__)

SAMPLE_MS = 1500  # the first seconds of each session are probed for its shape
PLAY_TICK_S = 0.04  # like the hub's feed interval
PLAY_LEAD_MS = 40  # tags go out this much ahead of their time
ENCODE_TIMEOUT_S = 120.0
FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"  # fonts-dejavu-core


def ffprobe_beside(ffmpeg: str) -> str:
    """The ffprobe of the same install as this ffmpeg."""
    path = Path(ffmpeg)
    if path.parent != Path("."):
        return str(path.with_name(path.name.replace("ffmpeg", "ffprobe")))
    return "ffprobe"


@dataclass(frozen=True)
class Loop:
    """An encoded loop, in memory: codec headers, then media tags from 0 ms."""

    shape: StreamShape
    metadata: FlvTag | None
    headers: list[FlvTag]
    media: list[FlvTag]
    period_ms: int
    size: int  # bytes held
    encode_s: float = 0.0  # how long it took to make


def loop_from_flv(shape: StreamShape, data: bytes) -> Loop | None:
    """Split the encoder's FLV into headers and media; None if it has no keyframe."""
    reader = FlvReader()
    try:
        tags = reader.feed(data)
    except FlvError:
        return None
    metadata = next((t for t in tags if t.is_metadata), None)
    headers = [t for t in tags if t.is_sequence_header]
    media = [t for t in tags if not (t.is_metadata or t.is_sequence_header or _end_of_sequence(t))]
    first = next((i for i, t in enumerate(media) if t.is_keyframe), None)
    if first is None:
        return None
    start = media[first].timestamp  # the loop starts at its first keyframe
    media = [t.with_timestamp(t.timestamp - start) for t in media[first:] if t.timestamp >= start]
    frames = sum(1 for t in media if t.is_video)
    period_ms = round(frames * 1000 / float(shape.frame_rate))
    return Loop(shape, metadata, headers, media, period_ms, sum(len(t.data) for t in tags))


class SessionSample:
    """A session's first SAMPLE_MS as FLV bytes (header, codec headers, tags), for the probe."""

    def __init__(self, header: bytes, codec_headers: list[FlvTag], keyframe: FlvTag) -> None:
        start = keyframe.timestamp
        self._parts = [header, *(h.with_timestamp(start).encode() for h in codec_headers)]
        self._start = start

    def add(self, tag: FlvTag) -> bytes | None:
        """Add a tag; the whole sample once it is long enough, else None."""
        if not tag.is_metadata:
            self._parts.append(tag.encode())
        if tag.timestamp - self._start >= SAMPLE_MS:
            return b"".join(self._parts)
        return None


def _end_of_sequence(tag: FlvTag) -> bool:
    """The encoder's closing AVC end-of-sequence tag: the loop goes on instead."""
    return tag.is_video and len(tag.data) >= 2 and tag.data[0] & 0x0F == 7 and tag.data[1] == 2


class LoopMaker:
    """Probes each session and keeps the loop for its shape (one per shape)."""

    def __init__(
        self, ffmpeg: str, ffprobe: str, image: Path | None, owner: str, redactor: Redactor
    ) -> None:
        self._ffmpeg = ffmpeg
        self._redactor = redactor
        self._ffprobe = ffprobe
        self._image = image
        self._owner = owner
        self._font = FONT if Path(FONT).is_file() else None
        self._loops: dict[StreamShape, Loop] = {}
        self._task: asyncio.Task[None] | None = None
        self.current: Loop | None = None
        self.last_error: str | None = None

    def set_ffmpeg(self, ffmpeg: str) -> None:
        self._ffmpeg, self._ffprobe = ffmpeg, ffprobe_beside(ffmpeg)

    def session_started(self, sample: bytes) -> None:
        """A session's first seconds, as FLV: make (or pick) the loop that fits it."""
        if self._task is not None and not self._task.done():
            self._task.cancel()
        self._task = asyncio.create_task(self._prepare(sample), name="standby-loop")

    async def stop(self) -> None:
        if self._task is not None:
            await cancel_and_wait(self._task)

    async def _prepare(self, sample: bytes) -> None:
        probed = await self._run(probe_argv(self._ffprobe), sample, "probing the session")
        shape = parse_probe(probed.decode("utf-8", "replace")) if probed else None
        if shape is None:
            self._fail("cannot tell the session's size and frame rate; standby uses the last loop")
            return
        if shape not in self._loops:
            started = time.monotonic()
            data = await self._run(
                loop_argv(self._ffmpeg, shape, self._image, self._font),
                None,
                "encoding the standby loop",
            )
            loop = loop_from_flv(shape, data) if data else None
            if loop is None:
                self._fail(f"the standby loop for {shape.describe()} could not be made")
                return
            loop = dataclasses.replace(loop, encode_s=round(time.monotonic() - started, 2))
            self._loops = {shape: loop}  # one shape at a time: OBS rarely switches back
            log.info(
                "standby loop ready for %s: %d KiB, encoded in %.1f s",
                shape.describe(),
                loop.size // 1024,
                time.monotonic() - started,
            )
        self.current = self._loops[shape]
        self.last_error = None

    def _fail(self, message: str) -> None:
        if message != self.last_error:
            log.warning("standby: %s", message)
        self.last_error = message

    async def _run(self, argv: list[str], stdin: bytes | None, what: str) -> bytes | None:
        """Run at the lowest CPU priority (nice 19); its stdout, or None."""
        try:
            code, out, err = await process.run_to_end(
                ["nice", "-n", "19", *argv], self._owner, stdin or b"", ENCODE_TIMEOUT_S
            )
        except OSError as exc:
            self._fail(f"{what}: {exc.strerror or exc}")
            return None
        except TimeoutError:
            self._fail(f"{what}: took over {ENCODE_TIMEOUT_S:.0f} s")
            return None
        if code != 0:
            line = last_line(err)
            self._fail(f"{what}: {self._redactor.mask(line) if line else f'exit code {code}'}")
            return None
        return out


class LoopPlayer:
    """Plays a loop in real time, from memory, into `emit`; ends itself after max_s."""

    def __init__(
        self, loop: Loop, emit: Callable[[FlvTag], None], max_s: float, expired: Callable[[], bool]
    ) -> None:
        """`expired` is called after max_s: True plays on (until stopped), False ends."""
        self._loop = loop
        self._emit = emit
        self._max_s = max_s
        self._expired = expired
        self._task: asyncio.Task[None] | None = None
        self.started = time.monotonic()

    def start(self) -> None:
        self._task = asyncio.create_task(self._play(), name="standby")

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None

    async def _play(self) -> None:
        loop = self._loop
        if loop.metadata is not None:
            self._emit(loop.metadata)
        for header in loop.headers:
            self._emit(header)
        base, index = 0, 0
        while True:
            elapsed_s = time.monotonic() - self.started
            if elapsed_s >= self._max_s:
                if not self._expired():
                    self._task = None
                    return
                self._max_s = float("inf")
            horizon = elapsed_s * 1000 + PLAY_LEAD_MS
            while base + loop.media[index].timestamp <= horizon:
                tag = loop.media[index]
                self._emit(tag.with_timestamp(base + tag.timestamp))
                index += 1
                if index == len(loop.media):
                    index, base = 0, base + loop.period_ms
            await asyncio.sleep(PLAY_TICK_S)
