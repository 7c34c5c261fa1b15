"""Edits to config.yaml's text that keep its comments, order and formatting
(ruamel.yaml's round trip), for destinations and settings changed from the
page or the API (pure: text in, text out). The caller validates the result
with parse_config before it writes anything."""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import YAMLError

# the fields of a destination the API may set, in the order they are written
STREAM_FIELDS = ("id", "name", "url", "key", "enabled", "profile", "source")


class EditError(Exception):
    """The file cannot be edited as asked; the message says why."""


def _yaml() -> YAML:
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.width = 4096  # a long URL stays on its line
    yaml.indent(mapping=2, sequence=4, offset=2)
    # `key: null` stays `key: null` (ruamel would write an empty value)
    yaml.representer.add_representer(
        type(None), lambda rep, _: rep.represent_scalar("tag:yaml.org,2002:null", "null")
    )
    return yaml


def _load(text: str) -> CommentedMap:
    try:
        doc = _yaml().load(text)
    except YAMLError as exc:
        raise EditError(f"config file is not valid YAML: {exc}") from None
    if doc is None:
        doc = CommentedMap()
    if not isinstance(doc, CommentedMap):
        raise EditError("config file's top level is not a mapping of settings")
    return doc


def _dump(doc: CommentedMap) -> str:
    out = io.StringIO()
    _yaml().dump(doc, out)
    return out.getvalue()


def _streams(doc: CommentedMap) -> CommentedSeq:
    streams = doc.get("streams")
    if streams is None:
        streams = CommentedSeq()
        doc["streams"] = streams
    if not isinstance(streams, CommentedSeq):
        raise EditError("config file's 'streams' is not a list")
    streams.fa.set_block_style()  # `streams: []` grows as a block list
    return streams


def _index(streams: CommentedSeq, stream_id: str) -> int:
    for n, entry in enumerate(streams):
        if isinstance(entry, Mapping) and entry.get("id") == stream_id:
            return n
    raise EditError(f"unknown stream '{stream_id}'")


def add_stream(text: str, fields: Mapping[str, Any]) -> str:
    """Append a destination to `streams`."""
    doc = _load(text)
    entry = CommentedMap()
    for name in STREAM_FIELDS:
        if fields.get(name) is not None:
            entry[name] = fields[name]
    streams = _streams(doc)
    if streams and isinstance(streams[-1], CommentedMap) and streams[-1]:
        # what follows the last entry (a blank line, the next section's comment)
        # then follows the new one
        last = streams[-1]
        tail_key = list(last)[-1]
        tail = last.ca.items.get(tail_key)
        token = tail[2] if tail and len(tail) > 2 else None
        if token is not None and str(token.value).lstrip(" ").startswith("\n"):
            entry.ca.items[list(entry)[-1]] = last.ca.items.pop(tail_key)  # no comment of its own
    streams.append(entry)
    return _dump(doc)


def update_stream(text: str, stream_id: str, changes: Mapping[str, Any]) -> str:
    """Set (or, with None, remove) fields of one destination; the others, and
    a `${VAR}` key that is not changed, stay as written."""
    doc = _load(text)
    streams = _streams(doc)
    entry = streams[_index(streams, stream_id)]
    for name, value in changes.items():
        if name not in STREAM_FIELDS or name == "id":
            raise EditError(f"'{name}' cannot be changed")
        if value is None:
            entry.pop(name, None)
        else:
            entry[name] = value
    return _dump(doc)


def remove_stream(text: str, stream_id: str) -> str:
    doc = _load(text)
    streams = _streams(doc)
    del streams[_index(streams, stream_id)]
    return _dump(doc)


def update_section(text: str, section: str, changes: Mapping[str, Any]) -> str:
    """Set keys of a top-level section (e.g. ffmpeg.path), making it if absent."""
    doc = _load(text)
    part = doc.get(section)
    if part is None:
        part = CommentedMap()
        doc[section] = part
    if not isinstance(part, CommentedMap):
        raise EditError(f"config file's '{section}' is not a mapping")
    for name, value in changes.items():
        part[name] = value
    return _dump(doc)


def schedules_naming(text: str, stream_id: str) -> list[int]:
    """Indexes of the schedules that switch this stream."""
    schedules = _load(text).get("schedules") or []
    if not isinstance(schedules, list):
        return []
    return [
        n
        for n, entry in enumerate(schedules)
        if isinstance(entry, Mapping) and entry.get("stream") == stream_id
    ]


def set_top_level(text: str, name: str, value: Any) -> str:
    """Set a top-level scalar setting (e.g. timezone), keeping the rest."""
    doc = _load(text)
    doc[name] = value
    return _dump(doc)


def stream_ids_in(text: str) -> list[str]:
    return [
        str(entry["id"])
        for entry in _streams(_load(text))
        if isinstance(entry, Mapping) and "id" in entry
    ]
