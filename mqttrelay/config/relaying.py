"""config.yaml's `ffmpeg` and `standby` sections: what relays run and send
while OBS is away (pure)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field

from mqttrelay.config.checks import (
    Section,
)


class FfmpegConfig(Section):
    """The programs relays run."""

    path: str = Field(
        default="ffmpeg",
        description="the ffmpeg binary; its `ffprobe` beside it reads a session's shape for "
        "the standby loop",
    )
    stunnel: str | None = Field(
        default="stunnel",
        description="`rtmps://` destinations go through a local stunnel (TLS with "
        "`TCP_NODELAY`; switch-on as fast as RTMP, see docs/how-it-works.md); "
        "`null`, or stunnel not installed (a warning says so): ffmpeg does the TLS itself, "
        "about 0.2 s slower to switch on",
    )
    connect_timeout_s: Annotated[
        float,
        Field(
            ge=1,
            le=120,
            description="a platform that accepts the connection but takes no data for this "
            "long (a hung server, a firewall dropping replies) makes the relay retry with "
            'backoff, `last_error` "live.example.com:1935 did not answer within 10 s: …" '
            "(`error_kind` `timeout`); direct mode adds 15 s for its keyframe wait and probe "
            "(1 to 120)",
        ),
    ] = 10


class StandbyConfig(Section):
    """While OBS is away, relays send this picture with silence (cached mode)."""

    enabled: bool = Field(default=True, description="`false` keeps the section but holds as before")
    image: Path | None = Field(
        default=None,
        description="a PNG or JPEG (at most 20 MB) shown during standby, scaled to fit and "
        "centred on black; relative to the config file's folder. None: a dark card saying "
        '"We\'ll be right back", drawn by ffmpeg (needs `fonts-dejavu-core`, which '
        "`scripts/setup` installs)",
    )
    max_s: Annotated[
        float,
        Field(
            ge=0,
            le=86_400,
            description="how long the platforms get the standby picture; then relays stop as "
            "after `hold_s` (and start again by themselves when OBS is back)",
        ),
    ] = 600
