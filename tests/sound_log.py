"""What a platform's listener hears, as arrival times: a reader of a platform's
stream that notes when each audio frame arrives (ffmpeg copying the sound alone,
so nothing of its own waits for the picture). While a slow link's relay skips
pictures the sound should keep coming, as OBS keeps it when it drops frames."""

from __future__ import annotations

import asyncio
import itertools
import time
from dataclasses import dataclass, field

from mqttrelay.lib.flv import FlvReader

from .player import Player


def sound_argv(ffmpeg: str, url: str) -> list[str]:
    return [
        ffmpeg, "-hide_banner", "-loglevel", "error", "-nostdin", "-fflags", "nobuffer",
        "-rw_timeout", "15000000", "-i", url, "-map", "0:a:0", "-c", "copy",
        "-f", "flv", "-flush_packets", "1", "pipe:1",
    ]  # fmt: skip


def largest_gap(arrivals: list[float], start: float, end: float) -> float | None:
    """The longest time between two arrivals within [start, end], the stretch from
    start to the first and from the last to end too; None when nothing arrived."""
    inside = [t for t in arrivals if start <= t <= end]
    if not inside:
        return None
    edges = [start, *inside, end]
    return max(b - a for a, b in itertools.pairwise(edges))


@dataclass
class SoundLog(Player):
    """Listens to a URL for as long as it runs."""

    arrivals: list[float] = field(default_factory=list)  # monotonic, one per audio frame

    def argv(self) -> list[str]:
        return sound_argv(self.ffmpeg, self.url)

    async def consume(self, stdout: asyncio.StreamReader) -> None:
        reader = FlvReader()
        while chunk := await stdout.read(65536):
            now = time.monotonic()
            for tag in reader.feed(chunk):
                if tag.is_audio and not tag.is_sequence_header:
                    self.arrivals.append(now)
