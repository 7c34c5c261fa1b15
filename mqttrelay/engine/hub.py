"""The tap and the keyframe-cached fan-out.

One tap ffmpeg reads the ingest and writes FLV to its stdout. The hub keeps
the metadata, the codec sequence headers and every tag since the last
keyframe, so a relay attached now is handed a decodable picture at once, and
then every live tag through its own bounded queue: a slow destination only
ever fills its own queue.

While OBS is away, the standby loop (standby.py) is fed into the same fan-out
as a session of its own, until OBS's first keyframe takes over again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import signal
import time
from collections import deque
from collections.abc import Callable

from mqttrelay.engine.ffmpeg import build_tap_argv
from mqttrelay.engine.flv import FlvError, FlvReader, FlvTag, TimestampRewriter, encode_header
from mqttrelay.engine.standby import LoopMaker, LoopPlayer, SessionSample
from mqttrelay.engine.subscription import Subscription
from mqttrelay.lib import process
from mqttrelay.lib.aio import Notifier, cancel_and_wait

log = logging.getLogger(__name__)
_CONTEXT_ADDRESS = re.compile(r"@ 0x[0-9a-f]+")

GOP_CACHE_MAX_MS = 12_000  # without a keyframe for this long, the cache is dropped
GOP_CACHE_MAX_BYTES = 32 * 1024 * 1024
TAP_RETRY_S = 1.0
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
# Live tags are gathered into one batch, shared by every relay and written to
# each pipe this often: per-tag, per-relay work was most of mqttrelay's own CPU
# at 50 relays (benchmarks/RESULTS.md, scale).
FEED_INTERVAL_S = 0.04


class Hub(Notifier):
    """Supervises the tap and fans its tags out to subscriptions."""

    def __init__(
        self,
        ffmpeg: str,
        ingest_url: str,
        owner: str,
        secrets: list[str],
        grace_s: float = 2.0,
        standby: LoopMaker | None = None,
        standby_max_s: float = 600.0,
    ) -> None:
        """With `standby`, OBS's absence is filled with its loop for up to standby_max_s."""
        super().__init__()
        self._loops = standby
        self._standby_max_s = standby_max_s
        self._player: LoopPlayer | None = None
        self._standby_fresh = False  # the next standby tag starts its session
        self._held: dict[str, FlvTag] = {}  # OBS's new headers, until its first keyframe
        self._sample: SessionSample | None = None  # the session's first seconds, for the probe
        self._argv = build_tap_argv(ffmpeg, ingest_url)
        self._owner = owner
        self._secrets = secrets
        self._grace_s = grace_s
        self._subs: list[Subscription] = []
        self._rewriter = TimestampRewriter()
        self._task: asyncio.Task[None] | None = None
        self._poke = asyncio.Event()
        self._proc: asyncio.subprocess.Process | None = None
        self._header = encode_header(audio=True, video=True)
        self._metadata: FlvTag | None = None
        self._video_seq: FlvTag | None = None
        self._audio_seq: FlvTag | None = None
        self._gop: list[FlvTag] = []
        self._gop_bytes = 0
        self._last_tag_wall: float | None = None
        self._synced = False  # has this session had its first keyframe?
        self._new_session = True  # the next tag starts a session (timestamps shift)
        self._respawn_at_once = False
        self._flush_timer: asyncio.TimerHandle | None = None
        self._batch: list[bytes] = []  # live tags not yet written to the relays
        self._batch_timestamp = 0
        self.live = False
        self.sessions = 0
        self.last_error: str | None = None
        self._said: set[str] = set()  # tap error lines logged since the ingest was live
        self.stderr_tail: deque[str] = deque(maxlen=20)
        self._rate_bytes = 0
        self._rate_since = time.monotonic()
        self.bitrate_kbps = 0.0

    # -- public -------------------------------------------------------------
    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="hub-tap")

    @property
    def has_standby(self) -> bool:
        """Was it given a standby picture to play (a `standby` section)?"""
        return self._loops is not None and self._standby_max_s > 0

    @property
    def standby(self) -> bool:
        """Is the standby picture being fed to the relays now?"""
        return self._player is not None

    async def stop(self) -> None:
        if self._player is not None:
            self._player.stop()
            self._player = None
        if self._loops is not None:
            await self._loops.stop()
        if self._task is not None:
            await cancel_and_wait(self._task)
            self._task = None
        if self._flush_timer is not None:
            self._flush_timer.cancel()
            self._flush_timer = None

    def add_secrets(self, secrets: list[str]) -> None:
        self._secrets.extend(s for s in secrets if s not in self._secrets)

    def publisher_started(self) -> None:
        """The ingest is (probably) publishing now: retry the tap at once."""
        self._poke.set()

    def publisher_stopped(self) -> None:
        """An on_publish_done hook: the session is over, even if the tap is still connected."""
        if self.live:
            self._renew_tap()

    def subscribe(self, pipe: asyncio.StreamWriter, on_wake: Callable[[], None]) -> Subscription:
        """Feed a relay's stdin: the cached keyframe group at once, then live tags."""
        sub = Subscription(pipe, on_wake)
        self._flush()  # the batch's tags are in the cached group too: none twice
        if self._gop:
            self._send_start(sub, self._gop[0].timestamp)
            for tag in self._gop:
                sub.put(tag.timestamp, tag.encode())
            sub.flush()
        self._subs.append(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        with contextlib.suppress(ValueError):
            self._subs.remove(sub)

    # -- the tap ------------------------------------------------------------
    async def _run(self) -> None:
        try:
            while True:
                ran_s = await self._run_tap_once()
                self._poke.clear()
                recently_live = self._last_tag_wall is not None and (
                    time.monotonic() - self._last_tag_wall < FAST_RETRY_WINDOW_S
                )
                delay = TAP_FAST_RETRY_S if recently_live else TAP_RETRY_S
                if ran_s >= TAP_RESPAWN_AT_ONCE_AFTER_S or self._respawn_at_once:
                    delay = 0.0
                self._respawn_at_once = False
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._poke.wait(), delay)
        finally:
            if self._proc is not None and self._proc.returncode is None:
                await asyncio.shield(process.stop_process(self._proc, self._grace_s))
            self._end_session()

    async def _run_tap_once(self) -> float:
        """Run the tap until it ends; returns how long it ran, in seconds."""
        started = time.monotonic()
        try:
            proc = await process.spawn(self._argv, self._owner, stdin=False)
        except OSError as exc:
            self.last_error = f"cannot start ffmpeg: {exc.strerror or exc}"
            log.error("tap: %s", self.last_error)
            await asyncio.sleep(5)
            return 0.0
        self._proc = proc
        helpers = [
            asyncio.create_task(
                process.read_stderr(proc.stderr, self._secrets, self.stderr_tail, self._log_stderr)
            ),
            asyncio.create_task(self._watch_silence()),
        ]
        reader = FlvReader()
        assert proc.stdout is not None
        try:
            while chunk := await proc.stdout.read(READ_SIZE):
                if self._respawn_at_once:
                    break  # the session was ended: what is left in the pipe is not news
                self._count(len(chunk))
                had_header = reader.header is not None
                tags = reader.feed(chunk)
                if not had_header and reader.header is not None:
                    # new relays are told which streams to expect, as this session says
                    flags = reader.header
                    self._header = encode_header(audio=flags.audio, video=flags.video)
                for tag in tags:
                    self._on_tag(tag)
        except FlvError as exc:
            self.last_error = f"tap produced bad FLV: {exc}"
            log.error("tap: %s", self.last_error)
        finally:
            await process.stop_process(proc, self._grace_s)
            await cancel_and_wait(*helpers)
            self._proc = None
            self._end_session()
        return time.monotonic() - started

    async def _watch_silence(self) -> None:
        while True:
            await asyncio.sleep(SILENCE_CHECK_S)
            last = self._last_tag_wall
            if self.live and last is not None and time.monotonic() - last > SILENCE_END_S:
                log.info("ingest: no data for %.0f s, taking the session as ended", SILENCE_END_S)
                self._renew_tap()

    def _renew_tap(self) -> None:
        """End the session and start a fresh tap at once: with idle_streams on it
        then waits at the ingest and reads OBS's very first keyframe when OBS
        returns. (A tap that stays connected through a pause longer than its
        read timeout garbles its next packets, ffmpeg 5.1.)"""
        self._end_session()
        if self._proc is not None and self._proc.returncode is None:
            self._respawn_at_once = True
            process.signal_group(self._proc, signal.SIGKILL)

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

    # -- tags ---------------------------------------------------------------
    def _on_tag(self, tag: FlvTag) -> None:
        """A tag from the tap. During standby OBS's new session waits for its first
        keyframe (its headers are held): that keyframe ends the standby."""
        if self._player is not None:
            if tag.is_metadata or tag.is_sequence_header:
                kind = "meta" if tag.is_metadata else "video" if tag.is_video else "audio"
                self._held[kind] = tag
                return
            if not tag.is_keyframe:
                return
            self._stop_standby()
            log.info("standby: OBS is back, its picture follows")
            held, self._held = self._held, {}
            for header in held.values():
                self._on_session_tag(header)
        self._on_session_tag(tag)

    def _on_session_tag(self, tag: FlvTag) -> None:
        now = time.monotonic()
        if self._new_session:
            # shift the session to follow the last tag sent, plus the wall-clock pause
            gap = 0 if self._last_tag_wall is None else int((now - self._last_tag_wall) * 1000)
            self._rewriter.new_session(gap)
            self._new_session = False
        self._last_tag_wall = now
        if not (tag.is_metadata or tag.is_sequence_header):
            if not self._synced and not tag.is_keyframe:
                return  # nothing decodable before the session's first keyframe
            self._synced = True
        tag = self._rewriter.rewrite(tag)
        if tag.is_keyframe and not self.live:
            self.live = True
            self.sessions += 1
            log.info("ingest is live (session %d)", self.sessions)
            self._said.clear()
            self._begin_sample(tag)
            self.notify()
        self._keep_and_forward(tag)
        self._add_to_sample(tag)

    def _on_standby_tag(self, tag: FlvTag) -> None:
        now = time.monotonic()
        if self._standby_fresh:
            gap = 0 if self._last_tag_wall is None else int((now - self._last_tag_wall) * 1000)
            self._rewriter.new_session(gap)
            self._standby_fresh = False
        self._last_tag_wall = now
        self._keep_and_forward(self._rewriter.rewrite(tag))

    def _keep_and_forward(self, tag: FlvTag) -> None:
        if tag.is_metadata:
            # Only new relays get it: an attached relay takes a second one for a new stream.
            self._metadata = tag
            return
        if tag.is_sequence_header:
            if tag.is_video:
                self._video_seq = tag
            else:
                self._audio_seq = tag
        elif tag.is_keyframe:
            self._gop = [tag]
            self._gop_bytes = len(tag.data)
        elif self._gop:
            self._gop.append(tag)
            self._gop_bytes += len(tag.data)
            too_long = tag.timestamp - self._gop[0].timestamp > GOP_CACHE_MAX_MS
            if too_long or self._gop_bytes > GOP_CACHE_MAX_BYTES:
                self._gop, self._gop_bytes = [], 0
        self._forward(tag)

    # -- standby ----------------------------------------------------------------
    def _begin_sample(self, keyframe: FlvTag) -> None:
        if self._loops is not None:
            headers = [h for h in (self._metadata, self._video_seq, self._audio_seq) if h]
            self._sample = SessionSample(self._header, headers, keyframe)

    def _add_to_sample(self, tag: FlvTag) -> None:
        if self._sample is not None and self._loops is not None:
            sample = self._sample.add(tag)
            if sample is not None:
                self._loops.session_started(sample)
                self._sample = None

    def _start_standby(self) -> None:
        loop = self._loops.current if self._loops is not None else None
        if loop is None or self._standby_max_s <= 0:
            return
        log.info("standby: OBS is away, the platforms get the standby picture")
        self._standby_fresh = True
        self._player = LoopPlayer(loop, self._on_standby_tag, self._standby_max_s, self._expired)
        self._player.start()

    def _stop_standby(self) -> None:
        if self._player is not None:
            self._player.stop()
            self._player = None
        self._flush()  # the standby's last tags go out before OBS's headers
        self._synced, self._new_session = False, True
        self._gop, self._gop_bytes = [], 0

    def _expired(self) -> None:
        log.info("standby: %.0f s (standby.max_s) are over; relays stop", self._standby_max_s)
        self._stop_standby()
        self.notify()

    def _send_start(self, sub: Subscription, timestamp: int) -> None:
        """FLV header and codec headers, stamped at the group's start."""
        sub.put(timestamp, self._header)
        for header in (self._metadata, self._video_seq, self._audio_seq):
            if header is not None:
                sub.put(timestamp, header.with_timestamp(timestamp).encode())
        sub.started = True

    def _forward(self, tag: FlvTag) -> None:
        if not self._subs:
            return
        if tag.is_keyframe and not all(sub.started for sub in self._subs):
            # relays waiting for a keyframe start here: the batch so far is not theirs
            self._flush()
            for sub in self._subs:
                if not sub.started:
                    self._send_start(sub, tag.timestamp)
        if not self._batch:
            self._batch_timestamp = tag.timestamp
        self._batch.append(tag.encode())
        if self._flush_timer is None:
            loop = asyncio.get_running_loop()
            self._flush_timer = loop.call_later(FEED_INTERVAL_S, self._flush)

    def _flush(self) -> None:
        if self._flush_timer is not None:
            self._flush_timer.cancel()
            self._flush_timer = None
        if not self._batch:
            return
        batch = b"".join(self._batch)
        self._batch.clear()
        for sub in self._subs:
            if sub.started:
                sub.send(self._batch_timestamp, batch)

    def _end_session(self) -> None:
        self.bitrate_kbps = 0.0
        if self._player is not None:
            return  # the standby's own session goes on
        self._synced = False
        self._new_session = True
        self._gop, self._gop_bytes = [], 0
        self._sample = None
        if self.live:
            self.live = False
            log.info("ingest is no longer live")
            self._start_standby()
            self.notify()
