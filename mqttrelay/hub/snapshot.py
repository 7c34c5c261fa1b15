"""A JPEG of what OBS sends: the hub's cached keyframe, decoded on demand by
ffmpeg at the lowest CPU priority, kept for a moment so many viewers (the
page, Home Assistant) cost one decode."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from mqttrelay.ffmpeg import last_line, snapshot_argv
from mqttrelay.lib import process
from mqttrelay.lib.redact import Redactor

SNAPSHOT_CACHE_S = 2.0
SNAPSHOT_TIMEOUT_S = 10.0


class SnapshotError(Exception):
    """No picture now; the message says why."""


class Snapshots:
    def __init__(
        self, ffmpeg: str, owner: str, keyframe: Callable[[], bytes | None], redactor: Redactor
    ) -> None:
        """`keyframe`: the FLV of the latest keyframe with its headers, or None."""
        self.ffmpeg = ffmpeg
        self._owner = owner
        self._keyframe = keyframe
        self._redactor = redactor
        self._jpeg: bytes | None = None
        self._taken = 0.0
        self._lock = asyncio.Lock()

    async def jpeg(self) -> bytes:
        async with self._lock:  # callers at once share one decode
            if self._jpeg is not None and time.monotonic() - self._taken < SNAPSHOT_CACHE_S:
                return self._jpeg
            flv = self._keyframe()
            if flv is None:
                raise SnapshotError("no picture from OBS now (not live, or the standby is on)")
            self._jpeg = await self._decode(flv)
            self._taken = time.monotonic()
            return self._jpeg

    def forget(self) -> None:
        self._jpeg = None

    async def _decode(self, flv: bytes) -> bytes:
        argv = ["nice", "-n", "19", *snapshot_argv(self.ffmpeg)]
        try:
            code, out, err = await process.run_to_end(argv, self._owner, flv, SNAPSHOT_TIMEOUT_S)
        except OSError as exc:
            raise SnapshotError(f"cannot run ffmpeg: {exc.strerror or exc}") from None
        except TimeoutError:
            raise SnapshotError("decoding the picture took too long") from None
        if code != 0 or not out.startswith(b"\xff\xd8"):
            line = last_line(err)
            why = self._redactor.mask(line) if line else f"exit code {code}"
            raise SnapshotError(f"ffmpeg could not decode the picture: {why}")
        return out
