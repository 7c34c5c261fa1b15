"""The hub's watch for a publisher whose video never arrives (cached mode).

A publisher is known from the on_publish hook, or from the tap reading its
metadata or audio; its video from any video tag the tap reads. When none comes
(lib.video_check says how long to wait), the reason is kept as `problem`,
logged once per publish session, and cleared when video arrives or the
publisher leaves. A tap whose FLV header announces audio only (nginx-rtmp's
default application hands out an Enhanced RTMP publisher's audio alone) has
the reason said sooner. (The tap's ffmpeg writes its own onMetaData, so OBS's
FourCC codec id never reaches the hub.)
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from mqttrelay.lib.flv import FlvHeader, FlvTag
from mqttrelay.lib.video_check import video_problem, wait_for_video_s

log = logging.getLogger(__name__)
# Known from the tap's tags alone (no hooks), a publisher is gone when they stop:
# a tap on an nginx without idle_streams just waits on after it left.
TAGS_GONE_S = 2.0
LOOK_AGAIN_S = 1.0


class VideoWatch:
    def __init__(self, on_change: Callable[[], None]) -> None:
        """on_change: `problem` changed."""
        self._on_change = on_change
        self.problem: str | None = None
        self._hooked = False  # an on_publish hook said a publisher is there
        self._since: float | None = None  # waiting for its video since
        self._last_tag = 0.0
        self._video = False
        self._audio_only = False  # the tap's header: no video in this session
        self._said = False  # logged in this publish session
        self._timer: asyncio.TimerHandle | None = None

    def publisher_started(self, video_flowing: bool = False) -> None:
        """An on_publish hook; video_flowing: the hub is live (the hook is for a
        second publisher, whom nginx will turn away)."""
        self._hooked = True
        if not video_flowing:
            self._wait()

    def publisher_stopped(self) -> None:
        self._hooked = False
        self._forget()

    def session_ended(self) -> None:
        """The tap's session ended (the tap stopped, or silence)."""
        if not self._hooked:
            self._forget()
        elif not self._video:
            self._wait()  # the publisher is still there: wait again for its video
        # else its video was read in this publish session: its codec is no problem

    def tag(self, tag: FlvTag) -> None:
        """Every tag the tap reads."""
        self._last_tag = time.monotonic()
        if tag.is_video and not self._video:
            self._video = True
            if self.problem is not None:
                log.info("ingest: the publisher's video arrives")
                self._said = False
                self._set(None)
        if self._video:
            return
        if self._since is None:
            self._wait()  # a tag without video: a publisher is there (no hook said so)

    def header(self, flags: FlvHeader) -> None:
        """A tap's FLV header: it says whether this session carries video."""
        self._last_tag = time.monotonic()
        if flags.video or self._video:
            return
        if self._since is None:
            self._wait()  # the tap read a stream: a publisher is there
        self._audio_only = True
        self._schedule()

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _wait(self) -> None:
        self._since = time.monotonic()
        self._video = self._audio_only = False
        self._schedule()

    def _forget(self) -> None:
        self.stop()
        self._since = None
        self._video = self._audio_only = self._said = False
        self._set(None)

    def _schedule(self) -> None:
        if self._since is None:
            return
        self.stop()
        due = self._since + wait_for_video_s(self._audio_only)
        delay = max(0.0, due - time.monotonic()) + 0.05
        self._timer = asyncio.get_running_loop().call_later(delay, self._check)

    def _check(self) -> None:
        self._timer = None
        if self._since is None or self._video:
            return
        now = time.monotonic()
        if not self._hooked:
            if now - self._last_tag > TAGS_GONE_S:
                self._forget()
                return
            self._timer = asyncio.get_running_loop().call_later(LOOK_AGAIN_S, self._check)
        problem = video_problem(self._since, self._video, self._audio_only, now)
        if problem is not None:  # kept until video arrives or the publisher leaves
            self._set(problem)

    def _set(self, problem: str | None) -> None:
        if problem == self.problem:
            return
        self.problem = problem
        if problem is not None and not self._said:
            self._said = True
            log.warning("ingest: %s", problem)
        self._on_change()
