"""The HTTP routes that manage destinations and settings (kept in config.yaml
by control/config_editor.py), the platform presets and the ingest picture."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from functools import cache
from importlib import resources
from typing import Annotated

import yaml
from fastapi import APIRouter, HTTPException, Response, params
from pydantic import BaseModel, ConfigDict, Field, field_validator

from mqttrelay.config import (
    MAIN_SOURCE,
    STREAM_ID_PATTERN,
    IngestMode,
    check_destination_url,
    check_entered_key,
    check_stream_id,
    check_stream_name,
)
from mqttrelay.control.config_editor import ConfigEditor, EditRefused, Refusal
from mqttrelay.control.router import (
    Router,
    StaleVersionError,
    UnknownSourceError,
    UnknownStreamError,
)
from mqttrelay.control.views import StreamState
from mqttrelay.hub.snapshot import SnapshotError
from mqttrelay.transports.http.models import StreamOut


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _StreamFields(_Body):
    """The checks of config.yaml's streams, on what a client sends."""

    @field_validator("name", check_fields=False)
    @classmethod
    def _name(cls, value: str | None) -> str | None:
        return None if value is None else check_stream_name(value)

    @field_validator("url", check_fields=False)
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        check_destination_url(value)
        if (base := key_in_url(value)) is not None:
            raise ValueError(
                f"url goes on past {base}/: that part is the stream key; "
                "put it in the stream key field and keep the address up to there"
            )
        return value

    @field_validator("key", check_fields=False)
    @classmethod
    def _key(cls, value: str | None) -> str | None:
        return None if value is None else check_entered_key(value)


class StreamIn(_StreamFields):
    """A new destination. The key is write-only: answers say only whether one is set."""

    id: Annotated[str, Field(pattern=STREAM_ID_PATTERN, max_length=64)]
    name: str = ""
    url: str
    key: str | None = None
    enabled: bool = False
    profile: str | None = Field(None, description="an output profile of config.yaml")
    source: str = Field("main", description="the ingest source it relays (GET /api/sources)")

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        return check_stream_id(value)


class StreamPatch(_StreamFields):
    """Changed fields only; `"key": null` removes the key. With `version`, the
    change is refused (409) if the destination was edited after that version."""

    name: str | None = None
    url: str | None = None
    key: str | None = None
    profile: str | None = Field(None, description="null: OBS's stream as it is")
    source: str | None = Field(
        None, description="another ingest source: a live relay reconnects once, on its keyframe"
    )
    version: int | None = None


class SettingsPatch(_Body):
    ffmpeg_path: Annotated[str, Field(min_length=1, max_length=4096)] | None = None
    ingest_mode: IngestMode | None = None


class SettingsOut(BaseModel):
    ffmpeg_path: str
    ingest_mode: IngestMode


class ProfileOut(BaseModel):
    profile: str
    running: bool
    destinations: int = Field(description="relays attached to its encoder now")
    pid: int | None
    cpu_percent: float
    speed: float | None = Field(description="media time per wall time; below 1: behind")
    dropped_frames: int
    restarts: int
    last_error: str | None


class PresetOut(BaseModel):
    id: str
    name: str
    url: str
    key_help: str


@cache
def presets() -> list[PresetOut]:
    text = resources.files("mqttrelay.transports.http").joinpath("presets.yaml").read_text("utf-8")
    return [PresetOut(**entry) for entry in yaml.safe_load(text)]


def key_in_url(url: str) -> str | None:
    """A preset's server address with a key pasted after it: that address."""
    for preset in presets():
        base = preset.url.rstrip("/")
        rest = url[len(base) + 1 :] if url.lower().startswith(base.lower() + "/") else ""
        if rest.strip("/"):
            return base
    return None


_STATUS = {
    Refusal.UNKNOWN: 404,
    Refusal.CONFLICT: 409,
    Refusal.INVALID: 422,
    Refusal.UNAVAILABLE: 503,
}


def _refused(exc: EditRefused) -> HTTPException:
    status = _STATUS[exc.reason]
    if exc.field is not None:  # named as a validation error names its field
        return HTTPException(status, [{"loc": ["body", exc.field], "msg": str(exc.detail)}])
    return HTTPException(status, exc.detail)


def destination_routes(
    router: Router, editor: ConfigEditor | None, auth: Sequence[params.Depends]
) -> APIRouter:
    routes = APIRouter(dependencies=list(auth))

    def need_editor() -> ConfigEditor:
        if editor is None:
            raise HTTPException(409, "this instance was not started from a config file")
        return editor

    def out(state: StreamState) -> StreamOut:
        return StreamOut(**asdict(state))

    @routes.post(
        "/api/streams",
        status_code=201,
        responses={409: {}, 422: {}, 503: {}},
    )
    async def add_stream(body: StreamIn) -> StreamOut:
        """Add a destination; it is written to config.yaml and its entities appear."""
        try:
            await need_editor().add(body.model_dump(exclude_defaults=True) | {"id": body.id})
        except EditRefused as exc:
            raise _refused(exc) from None
        return out(router.stream_state(body.id))

    @routes.patch(
        "/api/streams/{stream_id}",
        responses={404: {}, 409: {}, 422: {}},
    )
    async def change_stream(stream_id: str, body: StreamPatch) -> StreamOut:
        """A live relay whose URL or key changed restarts on the new target."""
        changes = {f: getattr(body, f) for f in body.model_fields_set if f != "version"}
        if "url" in changes and changes["url"] is None:
            raise HTTPException(422, "url cannot be removed")
        try:
            if body.version is not None:
                router.check_version(stream_id, body.version)
            await need_editor().update(stream_id, changes)
        except UnknownStreamError as exc:
            raise HTTPException(404, str(exc)) from None
        except StaleVersionError as exc:
            raise HTTPException(409, str(exc)) from None
        except EditRefused as exc:
            raise _refused(exc) from None
        return out(router.stream_state(stream_id))

    @routes.delete("/api/streams/{stream_id}", status_code=204, responses={404: {}, 409: {}})
    async def delete_stream(stream_id: str) -> Response:
        """The relay stops, its timers go, its Home Assistant entities are removed."""
        try:
            await need_editor().remove(stream_id)
        except EditRefused as exc:
            raise _refused(exc) from None
        return Response(status_code=204)

    @routes.get("/api/settings", responses={409: {}})
    async def get_settings() -> SettingsOut:
        try:
            return SettingsOut(**asdict(await need_editor().settings()))
        except EditRefused as exc:
            raise _refused(exc) from None

    @routes.patch("/api/settings", responses={409: {}, 422: {}})
    async def change_settings(body: SettingsPatch) -> SettingsOut:
        """A new ffmpeg is checked first (it runs, it is ffmpeg, it has rtmp, rtmps
        and srt) and used by what starts from then on; a new ingest mode restarts
        the relays that are on, on the new reader."""
        try:
            settings = await need_editor().update_settings(body.ffmpeg_path, body.ingest_mode)
        except EditRefused as exc:
            raise _refused(exc) from None
        return SettingsOut(**asdict(settings))

    @routes.get("/api/profiles")
    async def list_profiles() -> list[ProfileOut]:
        """Each output profile's encoder: running, speed, CPU, dropped frames."""
        return [ProfileOut(**asdict(state)) for state in router.profiles()]

    @routes.get("/api/presets")
    async def list_presets() -> list[PresetOut]:
        """Platforms' server URLs for the "Add destination" form."""
        return presets()

    @routes.get(
        "/api/ingest/snapshot",
        response_class=Response,
        responses={200: {"content": {"image/jpeg": {}}}, 503: {}},
    )
    async def snapshot() -> Response:
        """A JPEG of OBS's current picture (its latest keyframe), at most 1280 wide."""
        return await source_snapshot(MAIN_SOURCE)

    @routes.get(
        "/api/sources/{source_id}/snapshot",
        response_class=Response,
        responses={200: {"content": {"image/jpeg": {}}}, 404: {}, 503: {}},
    )
    async def source_snapshot(source_id: str) -> Response:
        """A JPEG of a source's current picture (its latest keyframe)."""
        try:
            jpeg = await router.ingest_snapshot(source_id)
        except UnknownSourceError as exc:
            raise HTTPException(404, str(exc)) from None
        except SnapshotError as exc:
            raise HTTPException(503, str(exc)) from None
        return Response(jpeg, media_type="image/jpeg", headers={"Cache-Control": "no-store"})

    return routes
