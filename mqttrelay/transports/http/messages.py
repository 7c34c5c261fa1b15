"""Validation errors in words a streamer reads (pure): `url: Value error, url must
start with rtmp://, rtmps://, srt://` becomes `The server address must start with
rtmp://, rtmps:// or srt://`. The 422's `detail` keeps its shape; each entry gains
`message`, and the answer a `message` joining them."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

LABELS = {
    "id": "The id",
    "name": "The name",
    "url": "The server address",
    "key": "The stream key",
    "profile": "The output profile",
    "enabled": "On/off",
    "version": "The version",
    "ffmpeg_path": "The ffmpeg program",
    "ingest_mode": "The ingest mode",
    "action": "The action",
    "in_s": "The delay",
    "at": "The time",
    "held": '"Be right back"',
}
_BY_TYPE = {
    "missing": "{label} is missing",
    "string_pattern_mismatch": "{label} may only hold lowercase letters, digits, - and _",
    "extra_forbidden": "{field} is not something this form takes",
    "json_invalid": "The request is not valid JSON",
    "bool_type": "{label} must be true or false",
    "bool_parsing": "{label} must be true or false",
    "string_type": "{label} must be text",
    "model_attributes_type": "The request must be a JSON object",
    "dict_type": "The request must be a JSON object",
}
_SCHEMES = re.compile(r"((?:\w+://, )+)(\w+://)")  # "a://, b://, c://" -> "a://, b:// or c://"


def _field(loc: Sequence[Any]) -> str:
    named = [str(part) for part in loc if isinstance(part, str) and part != "body"]
    return named[-1] if named else ""


def readable(loc: Sequence[Any], msg: str, kind: str = "") -> str:
    """One error in plain words, naming the field as the page does."""
    field = _field(loc)
    label = LABELS.get(field, field.replace("_", " ").capitalize() or "The request")
    if kind in _BY_TYPE:
        return _BY_TYPE[kind].format(label=label, field=field or "this")
    text = msg.removeprefix("Value error, ").removeprefix("Assertion failed, ")
    text = _SCHEMES.sub(lambda m: m.group(1).removesuffix(", ") + " or " + m.group(2), text)
    if field and text.startswith(field + " "):
        text = label + text[len(field) :]
    elif text[:1].isupper():  # pydantic's own: "String should have at most 64 characters"
        text = f"{label}: {text[0].lower()}{text[1:]}"
    else:
        text = f"{label}: {text}"
    return text


def with_messages(errors: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """A 422's body: `detail` as FastAPI shapes it (without the input), plus words."""
    detail = [
        {
            "loc": list(e["loc"]),
            "msg": e["msg"],
            "type": e["type"],
            "message": readable(e["loc"], e["msg"], e["type"]),
        }
        for e in errors
    ]
    return {"detail": detail, "message": ". ".join(d["message"] for d in detail)}
