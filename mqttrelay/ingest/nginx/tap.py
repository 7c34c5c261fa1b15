"""The tap: the one ffmpeg that reads the ingest and writes FLV to its stdout.

It is started again at once after a session (with idle_streams on, a fresh tap
waits at the ingest and reads OBS's very first keyframe), sooner right after
OBS was live, and it takes silence as the end of a session when no
on_publish_done hook says so. The hub (hub.py) gets its tags.
"""

from __future__ import annotations

import asyncio
import logging
import re
import signal
import time
from collections import deque
from collections.abc import Callable

from mqttrelay.lib import process
from mqttrelay.lib.aio import cancel_and_wait
from mqttrelay.lib.flv import FlvError, FlvHeader, FlvReader, FlvTag
from mqttrelay.lib.redact import Redactor
from mqttrelay.lib.supervisor import ChildProcess, Ended, Phase, Supervisor, stderr_reader

log = logging.getLogger(__name__)
_CONTEXT_ADDRESS = re.compile(r"@ 0x[0-9a-f]+")

TAP_RETRY_S = 1.0
TAP_START_FAILED_RETRY_S = 5.0  # ffmpeg could not be started at all
# A tap that ran this long had connected: start the next one at once.
TAP_RESPAWN_AT_ONCE_AFTER_S = 5.0
# With idle_streams on a player stays connected while OBS is away, so silence
# is how the hub learns a session ended when no on_publish_done hook says so.
SILENCE_END_S = 2.0
SILENCE_CHECK_S = 0.25
# Right after OBS drops, OBS usually comes back soon and relays are holding:
# look again more often, so the platforms get pictures again sooner.
TAP_FAST_RETRY_S = 0.2
FAST_RETRY_WINDOW_S = 60.0
READ_SIZE = 65536


class Tap:
    def __init__(
        self,
        argv: list[str],
        owner: str,
        redactor: Redactor,
        grace_s: float,
        on_header: Callable[[FlvHeader], None],
        on_tag: Callable[[FlvTag], None],
        on_ended: Callable[[], None],
        live: Callable[[], bool],
    ) -> None:
        """on_ended: the session is over (the tap ended, or silence); live: is a
        session on (for the silence watch)."""
        self.argv = argv
        self._owner = owner
        self._redactor = redactor
        self._grace_s = grace_s
        self._on_header = on_header
        self._on_tag = on_tag
        self._on_ended = on_ended
        self._live = live
        self._sup: Supervisor[ChildProcess] = Supervisor(
            "hub-tap", self._spawn, self._after_run, watch=self._read, on_state=self._on_phase
        )
        self._respawn_at_once = False
        self._last_tag_wall: float | None = None
        self.last_error: str | None = None
        self._said: set[str] = set()  # error lines logged since the ingest was live
        self.stderr_tail: deque[str] = deque(maxlen=20)
        self._rate_bytes = 0
        self._rate_since = time.monotonic()
        self.bitrate_kbps = 0.0

    def start(self) -> None:
        self._sup.start()

    async def stop(self) -> None:
        await self._sup.stop()

    def poke(self) -> None:
        """The ingest is (probably) publishing now: retry at once."""
        self._sup.retry_now()

    def went_live(self) -> None:
        self._said.clear()

    def renew(self) -> None:
        """Start a fresh tap at once. (A tap that stays connected through a pause
        longer than its read timeout garbles its next packets, ffmpeg 5.1.)"""
        self.bitrate_kbps = 0.0
        child = self._sup.child
        if child is not None and child.returncode is None:
            self._respawn_at_once = True
            process.signal_group(child.proc, signal.SIGKILL)

    async def _spawn(self) -> ChildProcess:
        stderr = stderr_reader(self._redactor, self.stderr_tail, self._log_stderr)
        return await ChildProcess.spawn(
            self.argv, self._owner, "ffmpeg", stdin=False, grace_s=self._grace_s, readers=[stderr]
        )

    def _after_run(self, ended: Ended) -> float:
        """The pause before the next tap: none after a session, short right after one."""
        if not ended.started:
            self.last_error = ended.reason
            log.error("tap: %s", self.last_error)
            return TAP_START_FAILED_RETRY_S
        self.bitrate_kbps = 0.0
        self._on_ended()
        recently_live = self._last_tag_wall is not None and (
            time.monotonic() - self._last_tag_wall < FAST_RETRY_WINDOW_S
        )
        delay = TAP_FAST_RETRY_S if recently_live else TAP_RETRY_S
        if ended.ran_s >= TAP_RESPAWN_AT_ONCE_AFTER_S or self._respawn_at_once:
            delay = 0.0
        self._respawn_at_once = False
        return delay

    def _on_phase(self, phase: Phase) -> None:
        if phase is Phase.STOPPED:
            self.bitrate_kbps = 0.0
            self._on_ended()

    async def _read(self, child: ChildProcess) -> str:
        """Hand its tags to the hub until it ends; the reason it ended."""
        silence = asyncio.create_task(self._watch_silence())
        reader = FlvReader()
        assert child.proc.stdout is not None
        try:
            while chunk := await child.proc.stdout.read(READ_SIZE):
                if self._respawn_at_once:
                    break  # the session was ended: what is left in the pipe is not news
                self._count(len(chunk))
                had_header = reader.header is not None
                tags = reader.feed(chunk)
                if not had_header and reader.header is not None:
                    self._on_header(reader.header)
                for tag in tags:
                    self._last_tag_wall = time.monotonic()
                    self._on_tag(tag)
        except FlvError as exc:
            self.last_error = f"tap produced bad FLV: {exc}"
            log.error("tap: %s", self.last_error)
            return self.last_error
        finally:
            await cancel_and_wait(silence)
        return "ended"

    async def _watch_silence(self) -> None:
        while True:
            await asyncio.sleep(SILENCE_CHECK_S)
            last = self._last_tag_wall
            if self._live() and last is not None and time.monotonic() - last > SILENCE_END_S:
                log.info("ingest: no data for %.0f s, taking the session as ended", SILENCE_END_S)
                self._on_ended()
                self.renew()

    def _log_stderr(self, line: str) -> None:
        # While OBS is away the tap fails the same few ways every second: say each
        # once until the ingest is live again (the same line of another ffmpeg
        # differs only in its context address).
        kind = _CONTEXT_ADDRESS.sub("@", line)
        if kind not in self._said:
            if len(self._said) < 64:
                self._said.add(kind)
            log.info("tap: %s", line)
        self.last_error = line

    def _count(self, n: int) -> None:
        self._rate_bytes += n
        now = time.monotonic()
        if now - self._rate_since >= 2.0:
            self.bitrate_kbps = round(self._rate_bytes * 8 / 1000 / (now - self._rate_since), 1)
            self._rate_bytes = 0
            self._rate_since = now
