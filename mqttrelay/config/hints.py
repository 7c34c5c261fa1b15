"""What `check` adds to pydantic's errors (pure): the nearest known key for an
unknown one, and "quote it" for an on/off that YAML read as a boolean."""

from __future__ import annotations

import difflib
import types
from collections.abc import Iterable, Sequence
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel


def nearest_key(unknown: str, known: Iterable[str]) -> str | None:
    """The known key `unknown` is most likely a typo of, or None."""
    known = list(known)
    lowered = {k.lower(): k for k in known}
    if unknown.lower() in lowered:  # `Hold_S`
        return lowered[unknown.lower()]
    found = difflib.get_close_matches(unknown.lower(), list(lowered), n=1, cutoff=0.6)
    return lowered[found[0]] if found else None


def _inner(annotation: Any, step: int | str) -> Any:
    """What a value at `step` below `annotation` is: a field of a model, an item
    of a list, a value of a dict (Optional unwrapped on the way)."""
    if get_origin(annotation) in (Union, types.UnionType):
        for arg in get_args(annotation):
            found = _inner(arg, step)
            if found is not None:
                return found
        return None
    args = get_args(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        field = annotation.model_fields.get(step) if isinstance(step, str) else None
        return field.annotation if field is not None else None
    if get_origin(annotation) is list and args and isinstance(step, int):
        return args[0]
    if get_origin(annotation) is dict and len(args) == 2 and isinstance(step, str):
        return args[1]
    return None


def _model(annotation: Any) -> type[BaseModel] | None:
    if get_origin(annotation) in (Union, types.UnionType):
        return next(filter(None, (_model(a) for a in get_args(annotation))), None)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def known_keys(model: type[BaseModel], where: Sequence[int | str]) -> list[str]:
    """The keys allowed in the mapping at `where` (a pydantic error's loc without
    its last part): ("streams", 0) -> a stream's keys."""
    annotation: Any = model
    for step in where:
        annotation = _inner(annotation, step)
        if annotation is None:
            return []
    found = _model(annotation)
    return list(found.model_fields) if found else []


def unknown_key_message(model: type[BaseModel] | None, loc: Sequence[int | str]) -> str:
    if model is None or not loc or not isinstance(loc[-1], str):
        return "unknown key"
    near = nearest_key(loc[-1], known_keys(model, loc[:-1]))
    return f"unknown key; did you mean '{near}'?" if near else "unknown key"


def boolean_hint(error_type: str, value: Any, expected: Any, message: str) -> str | None:
    """YAML 1.1 reads a bare on/off/yes/no as true/false: where text was expected
    (`action: on`), say to quote it; None when that is not the problem."""
    if not isinstance(value, bool):
        return None
    if error_type == "literal_error" and get_origin(expected) is Literal:
        word = "on" if value else "off"
        if word in get_args(expected):
            return (
                f'YAML reads an unquoted {word} as {str(value).lower()}; write "{word}" in quotes'
            )
    if error_type in ("literal_error", "string_type", "string_pattern_mismatch"):
        return f"{message} (YAML reads an unquoted on, off, yes or no as true or false: quote it)"
    return None


def expected_annotation(model: type[BaseModel] | None, loc: Sequence[int | str]) -> Any:
    """The annotation of the value at `loc`, or None."""
    annotation: Any = model
    for step in loc:
        if annotation is None:
            return None
        annotation = _inner(annotation, step)
    return annotation
