"""The keyframe-cached fan-out.

The tap (tap.py) reads the ingest. The hub keeps the metadata, the codec
sequence headers and every tag since the last keyframe, so a relay attached now
is handed a decodable picture at once, and then every live tag through its own
bounded queue: a slow destination only ever fills its own queue.

While OBS is away, or while it is held by hand, the standby loop (standby.py)
is fed into the same fan-out as a session of its own, until OBS's first
keyframe takes over again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Protocol

from mqttrelay.ffmpeg.argv import build_tap_argv as _tap_argv
from mqttrelay.hub.backup import FeedShape, feed_shape, pairing_problem
from mqttrelay.hub.fanout import FanOut
from mqttrelay.hub.snapshot import Snapshots
from mqttrelay.hub.standby import LoopMaker, LoopPlayer, SessionSample
from mqttrelay.hub.subscription import Subscription
from mqttrelay.ingest.nginx.tap import Tap
from mqttrelay.ingest.rtmp.feed import RtmpFeed
from mqttrelay.ingest.session_info import SessionInfo, describe_session
from mqttrelay.ingest.video_watch import VideoWatch
from mqttrelay.lib.aio import Notifier
from mqttrelay.lib.flv import FlvHeader, FlvTag, TimestampRewriter, encode_header
from mqttrelay.lib.redact import Redactor

log = logging.getLogger(__name__)


class Reader(Protocol):
    """What reads the ingest for the hub: the tap, or the built-in ingest's
    RtmpFeed (rtmp_feed.py), which is attached to the hub's callbacks."""

    last_error: str | None

    @property
    def bitrate_kbps(self) -> float: ...

    def start(self) -> None: ...

    async def stop(self) -> None: ...

    def poke(self) -> None: ...

    def went_live(self) -> None: ...

    def renew(self) -> None: ...


class Hub(Notifier):
    """Supervises the tap and fans its tags out to subscriptions."""

    def __init__(
        self,
        ffmpeg: str,
        ingest_url: str,
        owner: str,
        redactor: Redactor,
        grace_s: float = 2.0,
        standby: LoopMaker | None = None,
        standby_max_s: float = 600.0,
        feed: RtmpFeed | None = None,
    ) -> None:
        """With `standby`, OBS's absence is filled with its loop for up to standby_max_s.
        With `feed` (the built-in ingest) the hub reads that instead of starting a tap."""
        super().__init__()
        self._loops = standby
        self._standby_max_s = standby_max_s
        self._player: LoopPlayer | None = None
        self._standby_fresh = False  # the next standby tag starts its session
        self._held: dict[str, FlvTag] = {}  # OBS's new headers, until its first keyframe
        self._obs_headers: dict[str, FlvTag] = {}  # the session's own, sent again after standby
        self.standby_held = False  # "be right back": standby by hand while OBS sends
        self._sample: SessionSample | None = None  # the session's first seconds, for the probe
        self._ingest_url = ingest_url
        self.snapshots = Snapshots(ffmpeg, owner, self.keyframe_flv, redactor)
        self._tap: Reader
        if feed is not None:
            feed.attach(self._on_header, self._on_tag, self._end_session)
            self._tap = feed
        else:
            self._tap = Tap(
                _tap_argv(ffmpeg, ingest_url),
                owner,
                redactor,
                grace_s,
                self._on_header,
                self._on_tag,
                self._end_session,
                lambda: self.live,
            )
        self._fanout = FanOut()
        self._video_watch = VideoWatch(self.notify)
        self._rewriter = TimestampRewriter()
        self._last_tag_wall: float | None = None
        self._synced = False  # has this session had its first keyframe?
        self._new_session = True  # the next tag starts a session (timestamps shift)
        self.live = False
        self.sessions = 0
        self.backup: Hub | None = None  # another source's hub, standing in while this is away
        self.on_backup = False  # the backup's picture is being fed to the relays now
        self._followers: list[Callable[[FlvTag], None]] = []  # hubs this one is backup for
        self._last_shape: FeedShape | None = None  # the platforms' last session of ours
        self.backup_problem: str | None = None  # why the backup cannot stand in, once known
        self._label = "backup"  # "<source>'s backup <id>", in log lines

    # -- public -------------------------------------------------------------
    def start(self) -> None:
        self._tap.start()

    @property
    def last_error(self) -> str | None:
        return self._tap.last_error

    @property
    def bitrate_kbps(self) -> float:
        return self._tap.bitrate_kbps

    @property
    def video_problem(self) -> str | None:
        """Why a publisher's video does not arrive, while it does not (video_watch.py)."""
        return self._video_watch.problem

    @property
    def has_standby(self) -> bool:
        """Was it given a standby picture to play (a `standby` section)?"""
        return self._loops is not None and self._standby_max_s > 0

    @property
    def standby(self) -> bool:
        """Is the standby picture (or the backup's) being fed to the relays now?"""
        return self._player is not None or self.on_backup

    async def stop(self) -> None:
        self._stop_backup()
        if self._player is not None:
            self._player.stop()
            self._player = None
        if self._loops is not None:
            await self._loops.stop()
        await self._tap.stop()
        self._video_watch.stop()
        self._fanout.close()

    def set_ffmpeg(self, ffmpeg: str) -> None:
        """A new ffmpeg for what starts from now on; running processes go on."""
        if isinstance(self._tap, Tap):
            self._tap.argv = _tap_argv(ffmpeg, self._ingest_url)
        self.snapshots.ffmpeg = ffmpeg
        if self._loops is not None:
            self._loops.set_ffmpeg(ffmpeg)

    def session_info(self) -> SessionInfo:
        """What OBS announced for this session (empty while it is away)."""
        if not self.live:
            return SessionInfo()
        obs = self._obs_headers
        return describe_session(obs.get("meta"), obs.get("video"), obs.get("audio"))

    async def snapshot(self) -> bytes | None:
        """A JPEG of OBS's picture; raises SnapshotError when there is none."""
        return await self.snapshots.jpeg()

    def keyframe_flv(self) -> bytes | None:
        """OBS's latest keyframe as a small FLV file (video only), or None."""
        video_seq = self._obs_headers.get("video")
        gop = self._fanout.gop
        if not self.live or self._player is not None or not gop or video_seq is None:
            return None
        start = gop[0].timestamp
        tags = [video_seq.with_timestamp(start), gop[0]]
        return encode_header(audio=False, video=True) + b"".join(t.encode() for t in tags)

    def publisher_started(self) -> None:
        """The ingest is (probably) publishing now: retry the tap at once."""
        self._video_watch.publisher_started(video_flowing=self.live)
        self._tap.poke()

    def publisher_stopped(self) -> None:
        """An on_publish_done hook: the session is over, even if the tap is still
        connected; a fresh tap then waits at the ingest for OBS's first keyframe."""
        self._video_watch.publisher_stopped()
        if self.live:
            self._end_session()
            self._tap.renew()

    def subscribe(
        self, pipe: asyncio.StreamWriter, on_wake: Callable[[], None], max_delay_ms: int
    ) -> Subscription:
        """Feed a relay's stdin: the cached keyframe group at once, then live tags."""
        return self._fanout.subscribe(pipe, on_wake, max_delay_ms)

    def unsubscribe(self, sub: Subscription) -> None:
        self._fanout.unsubscribe(sub)

    # -- tags ---------------------------------------------------------------
    def _on_header(self, flags: FlvHeader) -> None:
        # new relays are told which streams to expect, as this session says
        self._fanout.header = encode_header(audio=flags.audio, video=flags.video)
        self._video_watch.header(flags)

    def _on_tag(self, tag: FlvTag) -> None:
        """A tag from the tap. During standby (or the backup) OBS's tags wait for its
        first keyframe (its headers are held): that keyframe ends the standby, unless
        it is held."""
        self._video_watch.tag(tag)
        if self._player is not None or self.on_backup:
            if tag.is_metadata or tag.is_sequence_header:
                self._held[_kind(tag)] = tag
                return
            if not tag.is_keyframe or self.standby_held:
                return
            self._stop_standby()
            log.info("standby: OBS's picture follows")
            self.notify()
            # the platforms last had the standby's headers: OBS's go out again first
            held, self._held = self._obs_headers | self._held, {}
            for header in held.values():
                self._on_session_tag(header.with_timestamp(tag.timestamp))
        self._on_session_tag(tag)

    def _on_session_tag(self, tag: FlvTag) -> None:
        self._stamp(starts_session=self._new_session)
        self._new_session = False
        if tag.is_metadata or tag.is_sequence_header:
            self._obs_headers[_kind(tag)] = tag
        else:
            if not self._synced and not tag.is_keyframe:
                return  # nothing decodable before the session's first keyframe
            self._synced = True
        tag = self._rewriter.rewrite(tag)
        if tag.is_keyframe and not self.live:
            self.live = True
            self.sessions += 1
            log.info("ingest is live (session %d)", self.sessions)
            self._tap.went_live()
            if self.backup is not None and self.backup.live:
                self._check_pairing(self.shape())
            self._begin_sample(tag)
            self.notify()
        self._keep_and_forward(tag)
        self._add_to_sample(tag)

    def _on_standby_tag(self, tag: FlvTag) -> None:
        self._stamp(starts_session=self._standby_fresh)
        self._standby_fresh = False
        self._keep_and_forward(self._rewriter.rewrite(tag))

    def _stamp(self, starts_session: bool) -> None:
        """A tag goes out now. A new session (OBS's or the standby's) follows the
        last tag sent, plus the wall-clock pause."""
        now = time.monotonic()
        if starts_session:
            last = self._last_tag_wall
            self._rewriter.new_session(0 if last is None else int((now - last) * 1000))
        self._last_tag_wall = now

    def _keep_and_forward(self, tag: FlvTag) -> None:
        self._fanout.put(tag)
        for follower in self._followers:
            follower(tag)

    # -- standby ----------------------------------------------------------------
    def _begin_sample(self, keyframe: FlvTag) -> None:
        if self._loops is not None:
            fan = self._fanout
            headers = [h for h in (fan.metadata, fan.video_seq, fan.audio_seq) if h]
            self._sample = SessionSample(fan.header, headers, keyframe)

    def _add_to_sample(self, tag: FlvTag) -> None:
        if self._sample is not None and self._loops is not None:
            sample = self._sample.add(tag)
            if sample is not None:
                self._loops.session_started(sample)
                self._sample = None

    def hold_standby(self, on: bool) -> str | None:
        """ "Be right back": the standby picture while OBS keeps sending, until
        released (OBS's picture then follows at its next keyframe). None, or why not."""
        if on and not self.standby_held:
            if not self.has_standby:
                return "no standby picture is configured (a standby section)"
            if self._loops is not None and self._loops.current is None:
                return "the standby loop is not made yet (it takes OBS's first seconds)"
            self.standby_held = True
            if self._player is None:
                self._stop_backup()  # by hand, the standby picture wins over the backup
                self._start_standby()
            log.info("standby: held by hand (be right back)")
        elif not on and self.standby_held:
            self.standby_held = False
            log.info("standby: released; OBS's picture follows at its next keyframe")
        self.notify()
        return None

    def _start_standby(self) -> None:
        loop = self._loops.current if self._loops is not None else None
        if loop is None or self._standby_max_s <= 0:
            return
        if self.standby_held:
            log.info("standby: the platforms get the standby picture (be right back)")
        else:
            log.info("standby: OBS is away, the platforms get the standby picture")
        self._standby_fresh = True
        self._player = LoopPlayer(loop, self._on_standby_tag, self._standby_max_s, self._expired)
        self._player.start()

    def _stop_standby(self) -> None:
        if self._player is not None:
            self._player.stop()
            self._player = None
        self._stop_backup()
        self._fanout.flush()  # the standby's last tags go out before OBS's headers
        self._synced, self._new_session = False, True
        self._fanout.drop_cache()

    def _expired(self) -> bool:
        """standby.max_s are over: True to play on until OBS's next keyframe (OBS is
        there: a held standby is released), False to stop (relays stop as after hold_s)."""
        self.standby_held = False
        if self.live:
            log.info("standby: %.0f s (standby.max_s) are over; OBS follows", self._standby_max_s)
            self.notify()
            return True
        log.info("standby: %.0f s (standby.max_s) are over; relays stop", self._standby_max_s)
        self._stop_standby()
        self.notify()
        return False

    def _end_session(self) -> None:
        self._sample = None
        self._video_watch.session_ended()
        if self._player is None and not self.on_backup:  # else the stand-in goes on
            self._synced = False
            self._new_session = True
            self._fanout.drop_cache()
        if self.live:
            self.live = False
            self._last_shape = self.shape()
            self._obs_headers = {}
            log.info("ingest is no longer live")
            if self._player is None and not self._start_backup():
                self._start_standby()
            self.notify()

    # -- backup -----------------------------------------------------------------
    def set_backup(self, backup: Hub, label: str = "backup") -> None:
        """Another source's hub whose picture stands in while this one is away;
        `label` names the pairing in log lines."""
        self.backup, self._label = backup, label
        backup.add_listener(self._backup_changed)

    def _check_pairing(self, primary: FeedShape | None) -> bool:
        """Can the backup stand in for this shape? A refusal is logged once, as soon
        as both feeds are known (not only when it is needed)."""
        backup = self.backup
        if backup is None or not backup.live:
            return False
        problem = pairing_problem(primary, backup.shape())
        if problem is not None and problem != self.backup_problem:
            log.warning("%s cannot stand in: %s", self._label, problem)
        self.backup_problem = problem
        return problem is None

    def _backup_live(self) -> bool:
        b = self.backup
        return b is not None and b.live and not b.standby

    def _backup_changed(self) -> None:
        """The backup went live or away: follow it, or leave it for the standby."""
        if self.live and self.backup is not None and self.backup.live:
            self._check_pairing(self.shape())
        if self.on_backup and not self._backup_live():
            log.info("backup: the backup is away too")
            self._stop_standby()
            self._start_standby()
            self.notify()
        elif not self.live and not self.on_backup and self._start_backup():
            self.notify()

    def _start_backup(self) -> bool:
        """Feed the backup's picture from its cached keyframe on; False if it cannot."""
        backup = self.backup
        if backup is None or not self._backup_live() or self.standby_held:
            return False
        if not self._check_pairing(self._last_shape):
            return False
        if self._player is not None:  # the standby was filling in: the backup follows it
            self._player.stop()
            self._player = None
        log.info("backup: OBS is away, the platforms get the backup's picture")
        self.on_backup, self._standby_fresh = True, True
        backup.follow(self._on_standby_tag)
        return True

    def _stop_backup(self) -> None:
        if self.on_backup and self.backup is not None:
            self.on_backup = False
            self.backup.unfollow(self._on_standby_tag)

    # -- as another source's backup -----------------------------------------------
    def shape(self) -> FeedShape:
        """Its picture's size and rate and its sound's layout now (backup.py)."""
        return feed_shape(self._obs_headers)

    def follow(self, follower: Callable[[FlvTag], None]) -> None:
        """Hand follower this hub's stream, codec headers first, from its cached
        group on (or, live just now, from the keyframe it forwards next)."""
        fan = self._fanout
        start = fan.gop[0].timestamp if fan.gop else self._rewriter.last_timestamp or 0
        for header in (fan.metadata, fan.video_seq, fan.audio_seq):
            if header is not None:
                follower(header.with_timestamp(start))
        for tag in fan.gop:
            follower(tag)
        self._followers.append(follower)

    def unfollow(self, follower: Callable[[FlvTag], None]) -> None:
        self._followers.remove(follower)


def _kind(tag: FlvTag) -> str:
    return "meta" if tag.is_metadata else "video" if tag.is_video else "audio"
