"""config.yaml's `profiles`: how a destination's picture is re-encoded (pure)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

ENCODERS = ("libx264", "h264_nvenc", "h264_vaapi", "h264_qsv")
PROFILE_NAME_PATTERN = r"^[a-z0-9_-]+$"


class ProfileConfig(BaseModel):
    """One encode shared by every destination naming it (`streams[].profile`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    width: Annotated[int, Field(ge=16, le=7680)]
    height: Annotated[int, Field(ge=16, le=4320)]
    # scale: keep the aspect ratio inside the box; crop: fill it and cut the
    # sides (9:16 from 16:9); pad: letterbox
    fit: Literal["scale", "crop", "pad"] = "scale"
    fps: Annotated[float, Field(gt=0, le=120)] | None = None  # none: OBS's
    video_bitrate_kbps: Annotated[int, Field(ge=100, le=100_000)]
    audio_bitrate_kbps: Annotated[int, Field(ge=16, le=512)] | None = None  # none: copied
    encoder: Literal["libx264", "h264_nvenc", "h264_vaapi", "h264_qsv"] = "libx264"
    # none: veryfast (libx264, h264_qsv), p4 (h264_nvenc), the driver's (h264_vaapi)
    preset: Annotated[str, Field(pattern=r"^[a-z0-9]+$", max_length=16)] | None = None
    keyframe_s: Annotated[float, Field(gt=0, le=10)] = 2.0  # platforms ask for 2 s

    @field_validator("width", "height")
    @classmethod
    def _even(cls, value: int) -> int:
        if value % 2:
            raise ValueError(f"{value} is odd; H.264 needs an even width and height")
        return value
