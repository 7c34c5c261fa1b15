"""Destinations and settings changed from the page or the API, kept in
config.yaml itself: one source of truth that a restart, a reload and a hand
edit all read. Each change edits the file's text (comments kept), is checked
exactly as a config file is, is written atomically (0600: it may hold keys),
and is then applied to the running service as a reload would."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

from mqttrelay.config import Config, ConfigError, IngestMode, parse_config
from mqttrelay.config.edit import (
    EditError,
    add_stream,
    remove_stream,
    schedules_naming,
    update_section,
    update_stream,
)
from mqttrelay.config.urls import server_of
from mqttrelay.lib.files import write_atomic

log = logging.getLogger(__name__)


class Refusal(Enum):
    """Why a change was not made; each transport says it in its own terms."""

    UNKNOWN = "unknown"  # no such destination
    CONFLICT = "conflict"  # it clashes with what is there (an id, schedules, a broken file)
    INVALID = "invalid"  # what was asked is not a valid config
    UNAVAILABLE = "unavailable"  # the file could not be read or written


class EditRefused(Exception):
    """A change not made: `reason` says which kind, `detail` says it in words."""

    def __init__(self, reason: Refusal, detail: str | list[str], field: str | None = None) -> None:
        super().__init__(detail if isinstance(detail, str) else "; ".join(detail))
        self.reason = reason
        self.detail = detail
        self.field = field  # the request's field it is about, if one


@dataclass(frozen=True)
class Settings:
    ffmpeg_path: str
    ingest_mode: IngestMode


Apply = Callable[[Config], Awaitable[object]]
CheckFfmpeg = Callable[[str], Awaitable[str | None]]


class ConfigEditor:
    def __init__(self, path: Path, apply: Apply, check_ffmpeg: CheckFfmpeg) -> None:
        """`apply`: makes the running service follow a new config (streams,
        schedules, ffmpeg.path, ingest.mode)."""
        self.path = path.resolve()  # a link is followed: the file it names is edited
        self._apply = apply
        self._check_ffmpeg = check_ffmpeg
        self._lock = asyncio.Lock()

    def _read(self) -> str:
        try:
            return self.path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise EditRefused(Refusal.UNAVAILABLE, f"cannot read {self.path}: {exc}") from None

    async def _change(self, edit: Callable[[str], str]) -> Config:
        # the file's round trip (ruamel.yaml, pydantic, fsync) takes ~1 ms a
        # destination: off the loop, so relays, MQTT and the page keep going
        config = await asyncio.to_thread(self._edit_file, edit)
        await self._apply(config)
        return config

    def _edit_file(self, edit: Callable[[str], str]) -> Config:
        text = self._read()
        try:
            new_text = edit(text)
        except EditError as exc:
            raise EditRefused(Refusal.INVALID, str(exc)) from None
        try:
            config = parse_config(new_text, base_dir=self.path.parent)
        except ConfigError as exc:
            raise EditRefused(Refusal.INVALID, exc.problems) from None
        try:
            write_atomic(self.path, new_text)
        except OSError as exc:
            raise EditRefused(
                Refusal.UNAVAILABLE,
                f"cannot write {self.path}: {exc.strerror or exc} (nothing was changed)",
            ) from None
        return config

    async def _config(self) -> Config:
        return await asyncio.to_thread(self._parse)

    def _parse(self) -> Config:
        try:
            return parse_config(self._read(), base_dir=self.path.parent)
        except ConfigError as exc:
            problems = ["config file has problems; fix it first", *exc.problems]
            raise EditRefused(Refusal.CONFLICT, problems) from None

    # -- destinations --------------------------------------------------------
    async def add(self, fields: Mapping[str, Any]) -> None:
        async with self._lock:
            stream_id = str(fields["id"])
            if (await self._config()).stream(stream_id) is not None:
                raise EditRefused(
                    Refusal.CONFLICT, f"a stream with id '{stream_id}' exists already"
                )
            await self._change(lambda text: add_stream(text, fields))
            log.info("%s: destination added", stream_id)

    async def update(self, stream_id: str, changes: Mapping[str, Any]) -> None:
        async with self._lock:
            old = (await self._config()).stream(stream_id)
            if old is None:
                raise EditRefused(Refusal.UNKNOWN, f"unknown stream '{stream_id}'")
            url = changes.get("url")
            moved = bool(url) and server_of(str(url)) != server_of(old.url)
            if moved and old.key is not None and "key" not in changes:
                # the key was issued by the old server; it must not follow the URL
                raise EditRefused(
                    Refusal.INVALID,
                    "the url names another server (scheme, host or port): send that "
                    'server\'s key with it, or "key": null when the url holds everything',
                    field="key",
                )
            if changes:
                await self._change(lambda text: update_stream(text, stream_id, changes))
                log.info("%s: destination changed (%s)", stream_id, ", ".join(sorted(changes)))

    async def remove(self, stream_id: str) -> None:
        async with self._lock:
            if (await self._config()).stream(stream_id) is None:
                raise EditRefused(Refusal.UNKNOWN, f"unknown stream '{stream_id}'")
            schedules = schedules_naming(await asyncio.to_thread(self._read), stream_id)
            if schedules:
                where = ", ".join(f"schedules[{n}]" for n in schedules)
                raise EditRefused(
                    Refusal.CONFLICT,
                    f"'{stream_id}' is switched by {where} in {self.path.name}: remove them first",
                )
            await self._change(lambda text: remove_stream(text, stream_id))
            log.info("%s: destination removed", stream_id)

    # -- settings ------------------------------------------------------------
    async def settings(self) -> Settings:
        config = await self._config()
        return Settings(ffmpeg_path=config.ffmpeg.path, ingest_mode=config.ingest.mode)

    async def update_settings(
        self, ffmpeg_path: str | None, ingest_mode: IngestMode | None
    ) -> Settings:
        async with self._lock:
            if ffmpeg_path is not None:
                problem = await self._check_ffmpeg(ffmpeg_path)
                if problem is not None:
                    raise EditRefused(Refusal.INVALID, f"ffmpeg_path: {problem}")

            def edit(text: str) -> str:
                if ffmpeg_path is not None:
                    text = update_section(text, "ffmpeg", {"path": ffmpeg_path})
                if ingest_mode is not None:
                    text = update_section(text, "ingest", {"mode": ingest_mode})
                return text

            config = await self._change(edit)
            log.info("settings: ffmpeg %s, ingest mode %s", config.ffmpeg.path, config.ingest.mode)
            return Settings(ffmpeg_path=config.ffmpeg.path, ingest_mode=config.ingest.mode)
