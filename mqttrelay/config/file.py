"""Reading config.yaml: ${VAR} secrets from the environment, a relative
state_file and standby.image taken from the file's folder, the standby image
checked, and pydantic's errors made into one readable line per problem."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from mqttrelay.config.hints import boolean_hint, expected_annotation, unknown_key_message
from mqttrelay.config.model import Config, ConfigError

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


_SECRET_FIELDS = {
    ("mqtt", "password"),
    ("api", "token"),
    ("ingest", "publish_key"),
    ("ingest", "hook_secret"),
}


def _expand_env(raw: Any, env: Mapping[str, str], problems: list[str]) -> Any:
    """Replace ${VAR} in the secret fields (stream keys, passwords, tokens)."""
    if not isinstance(raw, dict):
        return raw

    def expand(value: Any, where: str) -> Any:
        if not isinstance(value, str):
            return value

        def sub(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in env:
                problems.append(f"{where}: environment variable {name} is not set")
                return ""
            return env[name]

        return _ENV_REF.sub(sub, value)

    for section, field in _SECRET_FIELDS:
        part = raw.get(section)
        if isinstance(part, dict) and field in part:
            part[field] = expand(part[field], f"{section}.{field}")
    streams = raw.get("streams")
    if isinstance(streams, list):
        for n, stream in enumerate(streams):
            if isinstance(stream, dict) and "key" in stream:
                stream["key"] = expand(stream["key"], f"streams[{n}].key")
    return raw


def _loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out or "(top level)"


def format_validation_error(
    exc: ValidationError, model: type[BaseModel] | None = None
) -> list[str]:
    """One line per problem; with the model, an unknown key names the nearest known one."""
    problems = []
    for err in exc.errors(include_url=False):  # the input is looked at, never printed
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = unknown_key_message(model, err["loc"])
        elif model is not None:  # YAML text: a bare on/off became a boolean
            expected = expected_annotation(model, err["loc"])
            msg = boolean_hint(err["type"], err.get("input"), expected, msg) or msg
        problems.append(f"{_loc(err['loc'])}: {msg}")
    return problems


def parse_config(
    text: str, *, base_dir: Path | None = None, env: Mapping[str, str] | None = None
) -> Config:
    """Parse config.yaml text; raise ConfigError listing every problem."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "somewhere"
        reason = getattr(exc, "problem", None) or "not valid YAML"
        raise ConfigError([f"(yaml) {where}: {reason}"]) from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(["(top level): must be a mapping of settings"])
    problems: list[str] = []
    raw = _expand_env(raw, os.environ if env is None else env, problems)
    if problems:
        raise ConfigError(problems)
    try:
        config = Config.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, Config)) from None
    if base_dir is not None and not config.state_file.is_absolute():
        config = config.model_copy(update={"state_file": base_dir / config.state_file})
    standby = config.standby
    if standby is not None and standby.image is not None:
        image = standby.image
        if base_dir is not None and not image.is_absolute():
            image = base_dir / image
            config = config.model_copy(
                update={"standby": standby.model_copy(update={"image": image})}
            )
        problem = image_problem(image)
        if problem:
            raise ConfigError([f"standby.image: {problem}"])
    return config


IMAGE_MAX_BYTES = 20 * 1024 * 1024
_IMAGE_MAGIC = {b"\x89PNG\r\n\x1a\n": "PNG", b"\xff\xd8\xff": "JPEG"}


def image_problem(path: Path) -> str | None:
    """Why this file cannot be the standby card, or None (a PNG or JPEG, at most 20 MB)."""
    try:
        size = path.stat().st_size
        with path.open("rb") as f:
            head = f.read(8)
    except OSError as exc:
        return f"{path}: cannot read: {exc.strerror or exc}"
    if not path.is_file():
        return f"{path}: not a file"
    if size > IMAGE_MAX_BYTES:
        return f"{path}: {size // 2**20} MB; at most {IMAGE_MAX_BYTES // 2**20} MB"
    if not any(head.startswith(magic) for magic in _IMAGE_MAGIC):
        return f"{path}: not a PNG or JPEG image"
    return None


def load_config(path: Path, env: Mapping[str, str] | None = None) -> Config:
    """Read and validate a config file; a relative state_file is taken from its folder."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read: {exc.strerror or exc}"]) from None
    except UnicodeDecodeError:
        raise ConfigError([f"{path}: not UTF-8 text"]) from None
    return parse_config(text, base_dir=path.resolve().parent, env=env)
