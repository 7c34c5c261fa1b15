"""One publisher's stream name split into sources by track (E-RTMP v2 multitrack).

OBS's multitrack video sends several pictures (e.g. the vertical canvas) and
several audio tracks on one stream name. Each source configured on that name
(`ingest.sources[].video_track`/`audio_track`) is a `Route`: its video track
and its audio track, made single-track classic FLV (media.py) and handed to
that source's sink (feed.py), so its hub, relays and platforms see an ordinary
stream. `TrackSplit` is itself the server's Sink for the stream name.

onMetaData describes track 0; a route on another track gets it without the
properties of the other picture or sound (or with its own, when the publisher
sends E-RTMP v2's `videoTrackIdInfoMap`/`audioTrackIdInfoMap`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from mqttrelay.ingest.rtmp import amf0
from mqttrelay.ingest.rtmp.chunks import AUDIO, DATA_AMF0, VIDEO
from mqttrelay.ingest.rtmp.media import audio_track, track_ids, video_track

log = logging.getLogger(__name__)

_VIDEO_PROPS = ("width", "height", "framerate", "videodatarate")
_AUDIO_PROPS = ("audiodatarate", "audiosamplerate", "audiosamplesize", "stereo", "audiochannels")
_TRACK_MAPS = ("videoTrackIdInfoMap", "audioTrackIdInfoMap")


class Sink(Protocol):
    """Where a publisher's tags go: raw RTMP payloads in (TrackSplit), or one
    source's single-track tags (ingest.rtmp.feed.RtmpFeed)."""

    def rtmp_started(self) -> None: ...

    def rtmp_media(self, type_id: int, timestamp: int, payload: bytes) -> None: ...

    def rtmp_ended(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Route:
    video: int  # E-RTMP track id, 0 for OBS's main picture
    audio: int
    sink: Sink
    source: str = ""  # its source's id, for the log


class TrackSplit:
    """A stream name's raw messages, demultiplexed into each route's tracks."""

    def __init__(self, routes: Iterable[Route], stream: str = "") -> None:
        self.routes = list(routes)
        self.stream = stream
        self._seen: set[tuple[int, int]] = set()  # (type id, track id) of this publish

    def rtmp_started(self) -> None:
        self._seen.clear()
        for route in self.routes:
            route.sink.rtmp_started()

    def rtmp_ended(self) -> None:
        for route in self.routes:
            route.sink.rtmp_ended()

    def rtmp_media(self, type_id: int, timestamp: int, payload: bytes) -> None:
        if type_id in (AUDIO, VIDEO):
            for track in track_ids(type_id, payload):
                if (type_id, track) not in self._seen:
                    self._seen.add((type_id, track))
                    self._log_track(type_id, track)
        for route, out in split(self.routes, type_id, payload):
            route.sink.rtmp_media(type_id, timestamp, out)

    def _log_track(self, type_id: int, track: int) -> None:
        """Which tracks a publish carries and which source takes each: what a
        multitrack setup is configured from."""
        kind = "video" if type_id == VIDEO else "audio"
        takers = [
            r.source or "?"
            for r in self.routes
            if (r.video if type_id == VIDEO else r.audio) == track
        ]
        log.info(
            "built-in ingest: %s carries %s track %d (%s)",
            self.stream,
            kind,
            track,
            f"source {', '.join(takers)}"
            if takers
            else f"no source takes it: see ingest.sources[].{kind}_track",
        )


def split(routes: list[Route], type_id: int, payload: bytes) -> list[tuple[Route, bytes]]:
    """Each route's payload for one message (routes that get nothing left out);
    each track is taken out once, however many routes share it."""
    done: dict[tuple[int, int], bytes | None] = {}
    out: list[tuple[Route, bytes]] = []
    for route in routes:
        if type_id == VIDEO:
            key = (route.video, -1)
        elif type_id == AUDIO:
            key = (-1, route.audio)
        else:
            key = (route.video, route.audio)
        if key not in done:
            done[key] = _one(type_id, payload, route.video, route.audio)
        got = done[key]
        if got:
            out.append((route, got))
    return out


def _one(type_id: int, payload: bytes, video: int, audio: int) -> bytes | None:
    if type_id == VIDEO:
        return video_track(payload, video)
    if type_id == AUDIO:
        return audio_track(payload, audio)
    if type_id == DATA_AMF0:
        return track_metadata(payload, video, audio)
    return payload


def track_metadata(payload: bytes, video: int, audio: int) -> bytes:
    """onMetaData for one video and one audio track: track 0's as it is; for
    another, that track's entry of the E-RTMP v2 info maps, or the common
    properties only (the picture's size is then read from its codec header)."""
    if video == 0 and audio == 0:
        return payload
    try:
        values = amf0.decode_all(payload)
    except amf0.AmfError:
        return payload
    if len(values) < 2 or not isinstance(values[1], amf0.EcmaArray | dict):
        return payload
    props = dict(values[1].items if isinstance(values[1], amf0.EcmaArray) else values[1])
    for track, names, info_map in (
        (video, _VIDEO_PROPS, "videoTrackIdInfoMap"),
        (audio, _AUDIO_PROPS, "audioTrackIdInfoMap"),
    ):
        if track == 0:
            continue
        for name in names:
            props.pop(name, None)
        props.update(_track_info(props.get(info_map), track))
    for name in _TRACK_MAPS:
        props.pop(name, None)  # a single-track stream has no other tracks
    try:
        return amf0.encode(values[0], amf0.EcmaArray(props), *values[2:])
    except amf0.AmfError:
        return payload


def _track_info(info_map: Any, track: int) -> dict[str, Any]:
    """The plain numbers, strings and booleans a track info map gives one track."""
    if isinstance(info_map, amf0.EcmaArray):
        info_map = info_map.items
    if not isinstance(info_map, dict):
        return {}
    info = info_map.get(str(track))
    if isinstance(info, amf0.EcmaArray):
        info = info.items
    if not isinstance(info, dict):
        return {}
    return {k: v for k, v in info.items() if isinstance(v, int | float | str | bool)}


def stream_sinks(routes: Iterable[tuple[str, str, int, int, Sink]]) -> dict[str, Sink]:
    """'app/name' -> the Sink the server hands that stream name's raw messages,
    from each source's (stream, source id, video track, audio track, sink)."""
    by_stream: dict[str, list[Route]] = {}
    for stream, source, video, audio, sink in routes:
        by_stream.setdefault(stream, []).append(Route(video, audio, sink, source))
    return {stream: TrackSplit(r, stream) for stream, r in by_stream.items()}
