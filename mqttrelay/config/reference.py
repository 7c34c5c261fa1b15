"""docs/config.md and config.yaml's JSON Schema, made from the config model's
field descriptions (pure): the reference cannot drift from what `check` accepts.
scripts/config-docs writes both files; tests/test_config_reference.py compares."""

from __future__ import annotations

import json
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from mqttrelay.config.model import Config

SCHEMA_FILE = "docs/config.schema.json"
# The YAML extension of VS Code validates with draft-07; newer drafts only warn there.
SCHEMA_DIALECT = "http://json-schema.org/draft-07/schema#"

_INTRO = f"""\
# config.yaml reference

<!-- Made from the config model (mqttrelay/config/model.py, profiles.py) by
scripts/config-docs; edit the field descriptions there, not this file. -->

`config.yaml` at the root of the repository is a commented example that runs as
it is. Every key is optional except the ones marked *required*; unknown keys are
errors (`mqttrelay check` names the nearest known one). `${{NAME}}` in a stream
`key`, `mqtt.password`, `api.token`, `ingest.publish_key` or
`ingest.hook_secret` is read from the environment; an unset variable is an
error naming the field.

`mqttrelay check --config config.yaml` validates a file: one line per problem
(field path and reason), or `OK`.

## Completion and checks in your editor

`mqttrelay schema` prints config.yaml's JSON Schema (keys, types, ranges,
choices and these descriptions); `{SCHEMA_FILE}` in the repository is the
same, made by scripts/config-docs. With the YAML extension of VS Code (Red Hat;
other editors using yaml-language-server alike), one comment at the top of
`config.yaml` gives completion, hover help and red underlines while you type:

```yaml
# yaml-language-server: $schema=docs/config.schema.json
```

The path is relative to the YAML file (the repository's example has this line),
so for a config elsewhere write the schema beside it
(`mqttrelay schema > config.schema.json`, then `$schema=config.schema.json`)
or give an absolute path. `${{NAME}}` references are valid wherever they are
allowed: those fields are text. The schema checks shapes only; `mqttrelay
check` also checks URLs, hosts, cron lines, time zones and what refers to what.

## Keys
"""


def _section(annotation: Any) -> tuple[type[BaseModel], str] | None:
    """The model a field holds, and how its keys are written below it:
    `ingest.url`, `streams[].url`, `profiles.<name>.width`."""
    if get_origin(annotation) in (Union, types.UnionType):
        parts = [a for a in get_args(annotation) if a is not type(None)]
        return _section(parts[0]) if len(parts) == 1 else None
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation, "."
    args = get_args(annotation)
    if get_origin(annotation) is list and args:
        inner = _section(args[0])
        return (inner[0], "[].") if inner else None
    if get_origin(annotation) is dict and len(args) == 2:
        inner = _section(args[1])
        return (inner[0], ".<name>.") if inner else None
    return None


def _default(info: FieldInfo) -> str:
    if info.default is PydanticUndefined and info.default_factory is None:
        return "*required*"
    value = info.get_default(call_default_factory=True)
    if value is None:
        return "none"
    if isinstance(value, BaseModel):
        return ""  # a section: its keys have their own
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, float):
        return f"`{value:g}`"
    if isinstance(value, Path):
        return f"`{value}`"
    if isinstance(value, str):
        return f"`{value}`" if value else '`""`'
    return f"`{json.dumps(value)}`"


def rows(model: type[BaseModel] = Config, prefix: str = "") -> Iterator[tuple[str, str, str]]:
    """(key, default, meaning) for every key, sections before their keys."""
    for name, info in model.model_fields.items():
        key = prefix + name
        yield key, _default(info), info.description or ""
        inner = _section(info.annotation)
        if inner is not None:
            yield from rows(inner[0], key + inner[1])


def missing_descriptions(model: type[BaseModel] = Config) -> list[str]:
    """Keys without a description: each must say what it does."""
    return [key for key, _, meaning in rows(model) if not meaning.strip()]


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def render_reference(model: type[BaseModel] = Config) -> str:
    """docs/config.md: the top-level keys, then a table per section, in the model's order."""
    tables: dict[str, list[str]] = {"Top level": []}
    for key, default, meaning in rows(model):
        head, dot, _ = key.partition(".")
        row = f"| `{key}` | {default} | {_cell(meaning)} |"
        tables.setdefault(f"`{head}`" if dot else "Top level", []).append(row)
    out = [_INTRO.rstrip("\n")]
    for heading, lines in tables.items():
        out += ["", f"### {heading}", "", "| key | default | meaning |", "|---|---|---|", *lines]
    return "\n".join(out) + "\n"


def json_schema(model: type[BaseModel] = Config) -> dict[str, Any]:
    """config.yaml's JSON Schema, as draft-07 spells it (`definitions`)."""
    schema = _without_formats(model.model_json_schema(ref_template="#/definitions/{model}"))
    definitions = schema.pop("$defs", {})
    return {
        "$schema": SCHEMA_DIALECT,
        **schema,
        "title": "mqttrelay config.yaml",
        "definitions": definitions,
    }


def _without_formats(node: Any) -> Any:
    """No `format`: editors check date-time strictly (an `at` without an offset is
    fine here) and know no `path`."""
    if isinstance(node, dict):
        return {
            k: _without_formats(v)
            for k, v in node.items()
            if not (k == "format" and isinstance(v, str))  # not a property named format
        }
    if isinstance(node, list):
        return [_without_formats(v) for v in node]
    return node


def render_schema(model: type[BaseModel] = Config) -> str:
    return json.dumps(json_schema(model), indent=2, ensure_ascii=False) + "\n"
