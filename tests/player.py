"""A viewer or listener at a platform that keeps playing: an ffmpeg reading a URL,
started again whenever it ends (a platform connection that changed, a stalled
link); what it writes to its stdout is the subclass's to read."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass


@dataclass
class Player:
    url: str
    ffmpeg: str = "ffmpeg"
    starts: int = 0
    _proc: asyncio.subprocess.Process | None = None
    _task: asyncio.Task[None] | None = None

    def argv(self) -> list[str]:
        raise NotImplementedError

    async def consume(self, stdout: asyncio.StreamReader) -> None:
        """Read what this run of ffmpeg writes, until it ends."""
        raise NotImplementedError

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            self.starts += 1
            self._proc = await asyncio.create_subprocess_exec(
                *self.argv(),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.DEVNULL,
            )
            assert self._proc.stdout is not None
            await self.consume(self._proc.stdout)
            await self._proc.wait()
            await asyncio.sleep(0.5)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._proc is not None and self._proc.returncode is None:
            self._proc.kill()
            await self._proc.wait()
