"""Is a publisher there whose video never reaches us? (pure)

OBS set to HEVC or AV1 publishes Enhanced RTMP. nginx-rtmp accepts it, then
hands its players audio only, or nothing with `wait_video on`: without this
mqttrelay would only show the ingest idle and every destination waiting.
The hub (cached mode, ingest/video_watch.py) and the stat page poll (direct
mode, ingest/nginx/direct.py) both ask this.
"""

from __future__ import annotations

UNREADABLE_VIDEO = (
    "OBS is publishing, but its video cannot be read: HEVC/AV1 over Enhanced RTMP is not "
    "carried by nginx-rtmp: choose H.264 in OBS's output settings"
)
# No video this long after a publisher came: a healthy one's first keyframe
# reaches a waiting tap at once, a tap that connects late has it within one
# keyframe interval (2 s in OBS's streaming presets).
NO_VIDEO_AFTER_S = 6.0
# With a sign that no video will come (the tap reads audio only; nginx's stat
# page names a codec that is not H.264, as it does for Enhanced RTMP): sooner,
# yet not at once, as the sign may come just before the video does.
SIGN_AFTER_S = 2.0


def wait_for_video_s(no_video_sign: bool) -> float:
    """How long a publisher's video may take before it counts as unreadable."""
    return SIGN_AFTER_S if no_video_sign else NO_VIDEO_AFTER_S


def video_problem(
    publisher_since: float | None, video_seen: bool, no_video_sign: bool, now: float
) -> str | None:
    """The reason to show, or None. publisher_since: when the publisher came (or
    when its last session ended and the wait began again), None while there is
    none; video_seen: any of its video reached us since; no_video_sign: see
    SIGN_AFTER_S."""
    if publisher_since is None or video_seen:
        return None
    if now - publisher_since < wait_for_video_s(no_video_sign):
        return None
    return UNREADABLE_VIDEO
