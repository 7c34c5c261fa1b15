"""A picture that carries its own frame number, and readers that decode it.

The publisher draws its frame number n into every frame as a row of black and
white blocks (20 bits of n, then 4 bits of n mod 13 as a check), over a
high-entropy picture (testsrc2 plus temporal noise) so x264 really spends the
bitrate. A reader plays an RTMP URL, crops the row, averages each block to one
grey pixel and decodes n: comparing the frame a platform shows with when that
frame showed at the ingest gives the delay at the platform, to one frame.

The blocks are 24x32 pixels on the 8-pixel grid, flat black (16) or white (235):
x264 keeps such blocks apart at any quantiser, and the reader reads only their
middle rows, away from the edges where ringing lives."""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field

from .player import Player

DATA_BITS = 20  # 2**20 frames: 9.7 hours at 30 fps
CHECK_BITS = 4
CHECK_MOD = 13
BITS = DATA_BITS + CHECK_BITS
BLOCK_W, BLOCK_H = 24, 32
ROW_X, ROW_Y = 32, 16  # on the 8-pixel grid


@dataclass(frozen=True)
class Picture:
    """The test stream: size, rate, keyframe interval and bitrates."""

    width: int = 640
    height: int = 360
    fps: int = 30
    gop_frames: int = 60  # 2 s at 30 fps
    video_kbps: int = 2300
    audio_kbps: int = 128  # video + audio + FLV overhead: about 2.5 Mbit/s

    @property
    def gop_s(self) -> float:
        return self.gop_frames / self.fps


def check_value(n: int) -> int:
    return n % CHECK_MOD


def bit_of(n: int, bit: int) -> int:
    """The value block `bit` shows for frame n (blocks left to right)."""
    if bit < DATA_BITS:
        return (n >> bit) & 1
    return (check_value(n) >> (bit - DATA_BITS)) & 1


def _block_expr(bit: int) -> str:
    """Timeline expression (ffmpeg's `n` is the frame number) for bit_of."""
    if bit < DATA_BITS:
        return f"mod(floor(n/{2**bit}),2)"
    return f"mod(floor(mod(n,{CHECK_MOD})/{2 ** (bit - DATA_BITS)}),2)"


def counter_filter(p: Picture) -> str:
    """The video filter chain: noise over testsrc2, then the counter row on top."""
    if p.width < ROW_X + BITS * BLOCK_W or p.height < ROW_Y + BLOCK_H:
        raise ValueError(f"{p.width}x{p.height} is too small for the counter row")
    parts = [
        "noise=alls=40:allf=t+u",
        f"drawbox=x={ROW_X - 8}:y={ROW_Y - 8}:w={BITS * BLOCK_W + 16}:h={BLOCK_H + 16}"
        ":color=gray:t=fill",
    ]
    for bit in range(BITS):
        x = ROW_X + bit * BLOCK_W
        parts.append(
            f"drawbox=x={x}:y={ROW_Y}:w={BLOCK_W}:h={BLOCK_H}:color=black:t=fill"
            f":enable='eq({_block_expr(bit)},0)'"
        )
        parts.append(
            f"drawbox=x={x}:y={ROW_Y}:w={BLOCK_W}:h={BLOCK_H}:color=white:t=fill"
            f":enable='eq({_block_expr(bit)},1)'"
        )
    return ",".join(parts)


def counter_argv(
    ffmpeg: str, output: str, p: Picture, realtime: bool = True, seconds: float | None = None
) -> list[str]:
    """The counter picture with a tone, H.264 + AAC as FLV to `output`, a keyframe
    every gop_frames exactly (no scene-cut keyframes); in real time (an OBS
    stand-in) or as fast as it goes for `seconds` (a clip to loop)."""
    v = p.video_kbps
    return [
        ffmpeg, "-hide_banner", "-loglevel", "error", "-nostdin", "-y",
        *(["-re"] if realtime else []),
        "-f", "lavfi", "-i", f"testsrc2=size={p.width}x{p.height}:rate={p.fps}",
        "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
        "-vf", counter_filter(p),
        "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency",
        "-pix_fmt", "yuv420p", "-b:v", f"{v}k", "-maxrate", f"{v}k", "-bufsize", f"{v}k",
        "-g", str(p.gop_frames), "-keyint_min", str(p.gop_frames), "-sc_threshold", "0",
        "-c:a", "aac", "-b:a", f"{p.audio_kbps}k", "-ac", "2",
        *(["-t", str(seconds)] if seconds is not None else []),
        "-f", "flv", output,
    ]  # fmt: skip


def publisher_argv(ffmpeg: str, url: str, p: Picture) -> list[str]:
    """An OBS stand-in publishing the counter picture in real time."""
    return counter_argv(ffmpeg, url, p)


def reader_argv(ffmpeg: str, url: str) -> list[str]:
    """A player that writes BITS grey bytes per decoded frame (one per block),
    as soon as each frame is decoded: one decoder thread (frame threads would
    hold frames back), no input buffering, a flush after every frame."""
    middle = BLOCK_H // 4  # the middle half of each block's rows
    crop = f"crop={BITS * BLOCK_W}:{BLOCK_H - 2 * middle}:{ROW_X}:{ROW_Y + middle}"
    return [
        ffmpeg, "-hide_banner", "-loglevel", "error", "-nostdin",
        "-fflags", "nobuffer", "-threads", "1", "-rw_timeout", "15000000", "-i", url,
        "-map", "0:v:0", "-an", "-vf", f"{crop},scale={BITS}:1:flags=area,format=gray",
        "-fps_mode", "passthrough", "-f", "rawvideo", "-pix_fmt", "gray",
        "-flush_packets", "1", "pipe:1",
    ]  # fmt: skip


def decode_row(row: bytes) -> int | None:
    """n from one frame's BITS grey values, or None when the check does not match."""
    if len(row) != BITS:
        return None
    bits = [1 if value >= 128 else 0 for value in row]
    n = sum(bit << i for i, bit in enumerate(bits[:DATA_BITS]))
    check = sum(bit << i for i, bit in enumerate(bits[DATA_BITS:]))
    return n if check == check_value(n) else None


def encode_row(n: int) -> bytes:
    """The grey values a perfect reader gets for frame n (for tests of decode_row)."""
    return bytes(235 if bit_of(n, b) else 16 for b in range(BITS))


@dataclass
class CounterReader(Player):
    """Plays a URL for as long as it runs and notes each decoded frame's number
    with the monotonic time it was decoded."""

    seen: dict[int, float] = field(default_factory=dict)  # n -> first time seen
    latest: int | None = None  # the highest n seen (what the viewer shows now)
    latest_at: float = 0.0
    bad_frames: int = 0  # rows whose check failed

    def argv(self) -> list[str]:
        return reader_argv(self.ffmpeg, self.url)

    async def consume(self, stdout: asyncio.StreamReader) -> None:
        with contextlib.suppress(asyncio.IncompleteReadError):
            while True:
                self._note(await stdout.readexactly(BITS), time.monotonic())

    def _note(self, row: bytes, now: float) -> None:
        n = decode_row(row)
        if n is None:
            self.bad_frames += 1
            return
        self.seen.setdefault(n, now)
        if self.latest is None or n > self.latest:
            self.latest, self.latest_at = n, now


def shown_at(reference: dict[int, float], n: int, fps: float) -> float | None:
    """When frame n showed at the reference (the ingest): seen there, or placed
    from the nearest frame seen within one second of it."""
    if n in reference:
        return reference[n]
    for step in range(1, int(fps) + 1):
        for m in (n - step, n + step):
            if m in reference:
                return reference[m] + (n - m) / fps
    return None


def delay_s(
    reference: CounterReader, viewer: CounterReader, now: float, fps: float
) -> float | None:
    """How old the picture a viewer shows is at `now`: now minus when its latest
    frame showed at the reference. It keeps growing while nothing arrives."""
    if viewer.latest is None:
        return None
    at = shown_at(reference.seen, viewer.latest, fps)
    return None if at is None else now - at
