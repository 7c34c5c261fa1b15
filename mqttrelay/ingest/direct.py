"""Is the ingest live? (direct mode; it fits engine.source.IngestSource)

In cached mode the tap itself answers (engine.hub.Hub: live once it has read a
keyframe). In direct mode nothing reads the ingest but the
relays, so the nginx-rtmp stat page is polled when `stat_url` is set;
without it the ingest is taken as live and relays retry on their own.
"""

from __future__ import annotations

import asyncio
import logging
import xml.etree.ElementTree as ET

import httpx

from mqttrelay.config import ingest_app_and_stream
from mqttrelay.lib.aio import Notifier, cancel_and_wait

log = logging.getLogger(__name__)
STAT_POLL_S = 2.0


def parse_stat(xml_text: str, app: str, name: str) -> tuple[bool, float]:
    """(publishing?, bw_in in kbit/s) of one stream on an nginx-rtmp stat page."""
    try:
        root = ET.fromstring(xml_text)
    except ET.ParseError:
        return False, 0.0
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
            return publishing, round(bw_in, 1)
    return False, 0.0


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

    def add_secrets(self, secrets: list[str]) -> None:
        """Nothing to mask: this source runs no process."""

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
                    live, self.bitrate_kbps = parse_stat(response.text, self._app, self._name)
                    self.last_error = None
                except httpx.HTTPError as exc:
                    live = False
                    if self.last_error is None:
                        log.warning("ingest stat page %s unreachable: %s", url, exc)
                    self.last_error = str(exc) or type(exc).__name__
                self.set_live(live)
                await asyncio.sleep(STAT_POLL_S)
