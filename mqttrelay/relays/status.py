"""A relay's statuses (pure): the words of MQTT `B/<id>/status`, the API and the page."""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    OFF = "off"
    WAITING = "waiting"
    STARTING = "starting"
    LIVE = "live"
    CONGESTED = "congested"  # live, but the link is too slow: whole groups are dropped
    HOLDING = "holding"
    STANDBY = "standby"  # OBS is away; the platform gets the standby picture
    RETRYING = "retrying"
    FAILED = "failed"
