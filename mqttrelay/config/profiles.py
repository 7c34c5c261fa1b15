"""config.yaml's `profiles`: how a destination's picture is re-encoded (pure)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

ENCODERS = ("libx264", "h264_nvenc", "h264_vaapi", "h264_qsv")
PROFILE_NAME_PATTERN = r"^[a-z0-9_-]+$"


class ProfileConfig(BaseModel):
    """One encode shared by every destination naming it (`streams[].profile`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    width: Annotated[int, Field(ge=16, le=7680, description="an even number, 16 to 7680")]
    height: Annotated[int, Field(ge=16, le=4320, description="an even number, 16 to 4320")]
    fit: Literal["scale", "crop", "pad"] = Field(
        default="scale",
        description="`scale`: the picture inside the box, aspect ratio kept (an edge can be "
        "shorter); `crop`: fill the box, cut the sides (9:16 from 16:9); `pad`: fill the box "
        "with black bars",
    )
    fps: Annotated[float, Field(gt=0, le=120)] | None = Field(
        default=None, description="frames per second; none: OBS's"
    )
    video_bitrate_kbps: Annotated[
        int,
        Field(
            ge=100,
            le=100_000,
            description="the cap (`-b:v`, `-maxrate`, with a 2-second buffer)",
        ),
    ]
    audio_bitrate_kbps: Annotated[int, Field(ge=16, le=512)] | None = Field(
        default=None, description="AAC at this rate; none: OBS's audio is copied"
    )
    encoder: Literal["libx264", "h264_nvenc", "h264_vaapi", "h264_qsv"] = Field(
        default="libx264",
        description="`libx264`, `h264_nvenc`, `h264_vaapi` (`/dev/dri/renderD128`) or "
        "`h264_qsv`; checked with `ffmpeg -encoders` at start, which refuses to start with one "
        "line naming what is missing",
    )
    preset: Annotated[str, Field(pattern=r"^[a-z0-9]+$", max_length=16)] | None = Field(
        default=None,
        description="the encoder's preset; none: `veryfast` (libx264, h264_qsv), `p4` "
        "(h264_nvenc), the driver's (h264_vaapi)",
    )
    keyframe_s: Annotated[
        float, Field(gt=0, le=10, description="a keyframe this often (platforms ask for 2 s)")
    ] = 2.0

    @field_validator("width", "height")
    @classmethod
    def _even(cls, value: int) -> int:
        if value % 2:
            raise ValueError(f"{value} is odd; H.264 needs an even width and height")
        return value
