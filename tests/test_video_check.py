"""A publisher whose video never arrives (OBS set to HEVC or AV1): the pure rule,
the stat page reading (direct mode) and the hub's watch, as plain values."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest

from mqttrelay.control.views import IngestState
from mqttrelay.ingest import video_watch
from mqttrelay.ingest.nginx.direct import StatReading, parse_stat
from mqttrelay.ingest.video_watch import VideoWatch
from mqttrelay.lib import video_check
from mqttrelay.lib.flv import FlvHeader, FlvTag, TagType
from mqttrelay.lib.video_check import (
    NO_VIDEO_AFTER_S,
    SIGN_AFTER_S,
    UNREADABLE_VIDEO,
    video_problem,
)
from mqttrelay.transports.mqtt.picture import ingest_info

REASON = (
    "OBS is publishing, but its video cannot be read: HEVC/AV1 over Enhanced RTMP is not "
    "carried by nginx-rtmp: choose H.264 in OBS's output settings"
)
AUDIO = FlvTag(TagType.AUDIO, 0, b"\xaf\x01\x00")
VIDEO = FlvTag(TagType.VIDEO, 0, b"\x17\x01\x00\x00\x00")


def test_the_reason_is_the_issues_text() -> None:
    assert UNREADABLE_VIDEO == REASON


@pytest.mark.parametrize(
    ("since", "video", "sign", "now", "expected"),
    [
        (None, False, False, 100.0, None),  # no publisher
        (None, False, True, 100.0, None),
        (10.0, True, False, 100.0, None),  # its video arrived
        (10.0, True, True, 100.0, None),
        (10.0, False, False, 10.0 + NO_VIDEO_AFTER_S - 0.01, None),  # still starting
        (10.0, False, False, 10.0 + NO_VIDEO_AFTER_S, REASON),
        (10.0, False, True, 10.0 + SIGN_AFTER_S - 0.01, None),
        (10.0, False, True, 10.0 + SIGN_AFTER_S, REASON),  # audio only: sooner
    ],
)
def test_video_problem(
    since: float | None, video: bool, sign: bool, now: float, expected: str | None
) -> None:
    assert video_problem(since, video, sign, now) == expected


def test_a_sign_shortens_the_wait_and_both_fit_in_ten_seconds() -> None:
    assert SIGN_AFTER_S < NO_VIDEO_AFTER_S
    assert NO_VIDEO_AFTER_S + 2.0 <= 10.0  # the hook, the check, MQTT: within 10 s


def _stat(codec: str | None, publishing: bool = True) -> str:
    meta = f"<meta><video><codec>{codec}</codec></video></meta>" if codec is not None else ""
    pub = "<publishing/>" if publishing else ""
    return (
        "<rtmp><server><application><name>live</name><live><stream><name>stream</name>"
        f"<bw_in>812000</bw_in>{meta}{pub}</stream></live></application></server></rtmp>"
    )


def test_the_stat_page_tells_enhanced_rtmp_from_h264() -> None:
    # nginx-rtmp names Enhanced RTMP's coded frames (packet type 1) "Jpeg"
    hevc = parse_stat(_stat("Jpeg"), "live", "stream")
    assert hevc == StatReading(True, 812.0, "Jpeg")
    assert hevc.video_misread and not hevc.video_readable
    h264 = parse_stat(_stat("H264"), "live", "stream")
    assert h264.video_readable and not h264.video_misread
    before_video = parse_stat(_stat(None), "live", "stream")
    assert before_video.video_codec is None and not before_video.video_misread
    assert parse_stat(_stat(""), "live", "stream").video_codec is None
    assert parse_stat(_stat("H264"), "live", "other") == StatReading(False, 0.0)
    assert parse_stat("<not xml", "live", "stream") == StatReading(False, 0.0)


@pytest.fixture
def fast(monkeypatch: pytest.MonkeyPatch) -> None:
    """The rule's waits, shortened so the watch's timer runs in a unit test."""
    monkeypatch.setattr(video_check, "NO_VIDEO_AFTER_S", 0.3)
    monkeypatch.setattr(video_check, "SIGN_AFTER_S", 0.1)


class Changes:
    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> None:
        self.count += 1


async def test_watch_says_it_once_and_clears_when_video_arrives(
    fast: None, caplog: pytest.LogCaptureFixture
) -> None:
    changes = Changes()
    watch = VideoWatch(changes)
    caplog.set_level(logging.INFO, "mqttrelay.ingest.video_watch")
    watch.publisher_started()
    await asyncio.sleep(0.15)
    assert watch.problem is None  # still within the wait
    await asyncio.sleep(0.4)
    assert watch.problem == REASON and changes.count == 1
    watch.session_ended()  # the tap gave up and starts again: said once only
    await asyncio.sleep(0.5)
    assert watch.problem == REASON and changes.count == 1
    watch.tag(VIDEO)
    assert watch.problem is None and changes.count == 2
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert [r.getMessage() for r in warnings] == [f"ingest: {REASON}"]
    watch.stop()


async def test_watch_h264_publisher_never_has_a_problem(fast: None) -> None:
    changes = Changes()
    watch = VideoWatch(changes)
    watch.publisher_started()
    watch.header(FlvHeader(audio=True, video=True))
    watch.tag(VIDEO)
    watch.session_ended()  # OBS paused: its codec was read in this publish session
    await asyncio.sleep(0.6)
    assert watch.problem is None and changes.count == 0
    watch.stop()


async def test_watch_publisher_leaving_clears(fast: None) -> None:
    changes = Changes()
    watch = VideoWatch(changes)
    watch.publisher_started()
    await asyncio.sleep(0.5)
    assert watch.problem == REASON
    watch.publisher_stopped()
    assert watch.problem is None and changes.count == 2
    await asyncio.sleep(0.5)
    assert watch.problem is None  # its timer went with it
    watch.stop()


async def test_watch_audio_only_without_a_hook_is_said_sooner(fast: None) -> None:
    """No hooks configured: the tap's audio-only header and tags show the publisher."""
    watch = VideoWatch(Changes())
    watch.header(FlvHeader(audio=True, video=False))
    watch.tag(AUDIO)
    await asyncio.sleep(0.2)  # SIGN_AFTER_S, not NO_VIDEO_AFTER_S
    assert watch.problem == REASON
    watch.session_ended()  # the tap ended and no hook says a publisher is there
    assert watch.problem is None
    watch.stop()


async def test_watch_tags_stopping_without_a_hook_is_the_publisher_leaving(
    fast: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """nginx without idle_streams keeps the tap connected after OBS left: the
    tags stopping is all that tells."""
    monkeypatch.setattr(video_watch, "TAGS_GONE_S", 0.3)
    monkeypatch.setattr(video_watch, "LOOK_AGAIN_S", 0.05)
    watch = VideoWatch(Changes())
    watch.header(FlvHeader(audio=True, video=False))
    for _ in range(6):  # audio goes on: the reason stays
        watch.tag(AUDIO)
        await asyncio.sleep(0.1)
    assert watch.problem == REASON
    await asyncio.sleep(0.6)
    assert watch.problem is None
    watch.stop()


async def test_watch_a_second_publisher_while_live_is_no_problem(fast: None) -> None:
    watch = VideoWatch(Changes())
    watch.publisher_started()
    watch.tag(VIDEO)
    watch.publisher_started(video_flowing=True)  # nginx turns the second one away
    await asyncio.sleep(0.5)
    assert watch.problem is None
    watch.stop()


def test_home_assistant_reads_it_from_the_ingest_info_json() -> None:
    idle = IngestState(mode="cached", live=False, bitrate_kbps=0.0, last_error=None)
    assert json.loads(ingest_info(idle))["problem"] is None
    stuck = IngestState("cached", False, 120.0, None, problem=REASON)
    info = json.loads(ingest_info(stuck))
    assert info["problem"] == REASON and info["resolution"] is None
