"""Is the ingest live? (direct mode; it fits hub.source.IngestSource)

In cached mode the tap itself answers (hub.hub.Hub: live once it has read a
keyframe). In direct mode nothing reads the ingest but the
relays, so the nginx-rtmp stat page is polled when `stat_url` is set;
without it the ingest is taken as live and relays retry on their own.

The stat page also names the publisher's video codec. nginx-rtmp reads it from
the low four bits of a video tag's first byte, which in Enhanced RTMP (OBS's
HEVC or AV1) is the packet type: it then names no H.264 ("Jpeg" for coded
frames), and the relays will get no video (lib.video_check).
"""

from __future__ import annotations

import asyncio
import logging
import time
import xml.etree.ElementTree as ET
from typing import NamedTuple

import httpx

from mqttrelay.config import ingest_app_and_stream
from mqttrelay.lib.aio import Notifier, cancel_and_wait
from mqttrelay.lib.video_check import video_problem

log = logging.getLogger(__name__)
STAT_POLL_S = 2.0


class StatReading(NamedTuple):
    publishing: bool
    bitrate_kbps: float  # bw_in
    video_codec: str | None = None  # as nginx-rtmp names it; None before any video

    @property
    def video_readable(self) -> bool:
        return self.video_codec == "H264"

    @property
    def video_misread(self) -> bool:
        """A codec that is not H.264: nginx-rtmp misreads Enhanced RTMP (see above)."""
        return self.video_codec is not None and not self.video_readable


def parse_stat(xml_text: str, app: str, name: str) -> StatReading:
    """One stream on an nginx-rtmp stat page."""
    try:
        root = ET.fromstring(xml_text)
    except ET.ParseError:
        return StatReading(False, 0.0)
    for application in root.iter("application"):
        if application.findtext("name") != app:
            continue
        for stream in application.iter("stream"):
            if stream.findtext("name") != name:
                continue
            publishing = stream.find("publishing") is not None
            try:
                bw_in = int(stream.findtext("bw_in") or 0) / 1000
            except ValueError:
                bw_in = 0.0
            codec = stream.findtext("meta/video/codec") or None
            return StatReading(publishing, round(bw_in, 1), codec)
    return StatReading(False, 0.0)


class DirectIngest(Notifier):
    """Ingest state for direct mode."""

    def __init__(self, ingest_url: str, stat_url: str | None) -> None:
        super().__init__()
        self._app, self._name = ingest_app_and_stream(ingest_url)
        self._stat_url = stat_url
        self._task: asyncio.Task[None] | None = None
        self.live = stat_url is None
        self.bitrate_kbps = 0.0
        self.last_error: str | None = None
        self.video_problem: str | None = None  # from the stat page
        self._publisher_since: float | None = None
        self.standby = False  # a standby picture needs the hub (cached mode)
        self.has_standby = False
        self.standby_held = False

    def set_live(self, live: bool) -> None:
        if live != self.live:
            self.live = live
            log.info("ingest is %s", "live" if live else "no longer live")
            self.notify()

    def publisher_started(self) -> None:
        if self._stat_url is None:  # else the stat page says
            self.set_live(True)

    def publisher_stopped(self) -> None:
        if self._stat_url is None:
            self.set_live(False)

    def hold_standby(self, on: bool) -> str | None:
        return "direct mode (ingest.mode: direct) has no standby picture" if on else None

    def session_info(self) -> None:
        return None  # only the cached mode reads OBS's stream itself

    async def snapshot(self) -> None:
        return None

    def start(self) -> None:
        if self._stat_url is not None and self._task is None:
            self._task = asyncio.create_task(self._poll(self._stat_url), name="ingest-stat")

    async def stop(self) -> None:
        if self._task is not None:
            await cancel_and_wait(self._task)
            self._task = None

    async def _poll(self, url: str) -> None:
        async with httpx.AsyncClient(timeout=3.0) as client:
            while True:
                try:
                    response = await client.get(url)
                    response.raise_for_status()
                    reading = parse_stat(response.text, self._app, self._name)
                    self.last_error = None
                except httpx.HTTPError as exc:
                    reading = StatReading(False, 0.0)
                    if self.last_error is None:
                        log.warning("ingest stat page %s unreachable: %s", url, exc)
                    self.last_error = str(exc) or type(exc).__name__
                self.bitrate_kbps = reading.bitrate_kbps
                problem_changed = self._check_video(reading)
                if reading.publishing != self.live:
                    self.set_live(reading.publishing)
                elif problem_changed:
                    self.notify()
                await asyncio.sleep(STAT_POLL_S)

    def _check_video(self, reading: StatReading) -> bool:
        """Update video_problem from a stat reading; True if it changed."""
        if not reading.publishing:
            self._publisher_since = None
        elif self._publisher_since is None:
            self._publisher_since = time.monotonic()
        problem = video_problem(
            self._publisher_since,
            reading.video_readable,
            reading.video_misread,
            time.monotonic(),
        )
        if problem == self.video_problem:
            return False
        if problem is not None:
            log.warning("ingest: %s", problem)
        self.video_problem = problem
        return True
