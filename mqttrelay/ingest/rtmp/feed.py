"""What the hub reads instead of the tap when the ingest is built in
(ingest.listen): the RTMP server (ingest.rtmp.server) hands each publisher's
tags here in-process, and a publisher's arrival and departure are known at
once, so a session ends without waiting for silence.

It fits the server's Sink structurally (rtmp_started, rtmp_media,
rtmp_ended), so the engine never imports the ingest package.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from mqttrelay.ingest.session_info import parse_metadata
from mqttrelay.lib.flv import FlvHeader, FlvTag, TagType

log = logging.getLogger(__name__)


class RtmpFeed:
    def __init__(self) -> None:
        self._on_header: Callable[[FlvHeader], None] | None = None
        self._on_tag: Callable[[FlvTag], None] | None = None
        self._on_ended: Callable[[], None] | None = None
        self._header_sent = False
        self._publishing = False
        self.last_error: str | None = None
        self._rate_bytes = 0
        self._rate_since = time.monotonic()
        self._bitrate_kbps = 0.0

    def attach(
        self,
        on_header: Callable[[FlvHeader], None],
        on_tag: Callable[[FlvTag], None],
        on_ended: Callable[[], None],
    ) -> None:
        self._on_header, self._on_tag, self._on_ended = on_header, on_tag, on_ended

    @property
    def bitrate_kbps(self) -> float:
        if not self._publishing or time.monotonic() - self._rate_since > 5:
            return 0.0
        return self._bitrate_kbps

    # -- what the hub calls on a tap; nothing to do in-process -------------------
    def start(self) -> None:
        """The server is started by the app, beside this feed."""

    async def stop(self) -> None:
        """The hub is stopping: what the server still hands over goes nowhere."""
        self._publishing = False
        self._on_header = self._on_tag = self._on_ended = None

    def poke(self) -> None: ...

    def went_live(self) -> None: ...

    def renew(self) -> None: ...

    # -- the server's side -------------------------------------------------------
    def rtmp_started(self) -> None:
        self._publishing = True
        self._header_sent = False
        self._rate_bytes, self._rate_since = 0, time.monotonic()

    def rtmp_media(self, type_id: int, timestamp: int, payload: bytes) -> None:
        if self._on_tag is None or self._on_header is None:
            return
        tag = FlvTag(TagType(type_id), _signed32(timestamp), payload)
        if not self._header_sent:
            self._header_sent = True
            self._on_header(_header_for(tag))
        self._count(len(payload))
        self._on_tag(tag)

    def rtmp_ended(self) -> None:
        if self._publishing:
            self._publishing = False
            self._bitrate_kbps = 0.0
            if self._on_ended is not None:
                self._on_ended()

    def _count(self, n: int) -> None:
        self._rate_bytes += n
        now = time.monotonic()
        if now - self._rate_since >= 2.0:
            self._bitrate_kbps = round(self._rate_bytes * 8 / 1000 / (now - self._rate_since), 1)
            self._rate_bytes, self._rate_since = 0, now


def _header_for(first: FlvTag) -> FlvHeader:
    """Which streams relays are told to expect: as onMetaData says, both when
    the publisher sends no metadata first."""
    if first.is_metadata:
        props = parse_metadata(first.data)
        audio, video = "audiocodecid" in props, "videocodecid" in props
        if audio or video:
            return FlvHeader(audio=audio, video=video)
    return FlvHeader(audio=True, video=True)


def _signed32(value: int) -> int:
    return value - (1 << 32) if value & 0x80000000 else value
