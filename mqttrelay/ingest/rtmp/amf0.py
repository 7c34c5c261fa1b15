"""AMF0, the encoding of RTMP commands and metadata (pure, no I/O).

Only what publishers send: number, boolean, string, object, null, undefined,
ECMA array, strict array, date and long string. Anything else, a value cut
short or nesting deeper than MAX_DEPTH is an AmfError, never another exception.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

MAX_DEPTH = 32  # deeper nesting is an attack, not a publisher
NUMBER, BOOLEAN, STRING, OBJECT, NULL, UNDEFINED = 0, 1, 2, 3, 5, 6
ECMA_ARRAY, OBJECT_END, STRICT_ARRAY, DATE, LONG_STRING = 8, 9, 10, 11, 12


class AmfError(ValueError):
    """The bytes are not AMF0 this reader takes."""


class Undefined:
    """AMF0 undefined (distinct from null, which decodes to None)."""

    def __repr__(self) -> str:
        return "UNDEFINED"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Undefined)

    def __hash__(self) -> int:
        return 0


UNDEFINED_VALUE = Undefined()


@dataclass(frozen=True, slots=True)
class Date:
    ms: float  # milliseconds since 1970
    tz: int = 0


@dataclass(frozen=True, slots=True)
class EcmaArray:
    """An associative array (onMetaData's body); kept apart from an object so
    that it encodes back as it came."""

    items: dict[str, Any]


def decode_all(data: bytes) -> list[Any]:
    """Every value in data, in order."""
    values: list[Any] = []
    pos = 0
    while pos < len(data):
        value, pos = decode(data, pos)
        values.append(value)
    return values


def decode(data: bytes, pos: int = 0, depth: int = 0) -> tuple[Any, int]:
    """One value at pos; returns it and the position after it."""
    if depth > MAX_DEPTH:
        raise AmfError(f"AMF0 nested deeper than {MAX_DEPTH}")
    marker = _take(data, pos, 1)[0]
    pos += 1
    if marker == NUMBER:
        return struct.unpack(">d", _take(data, pos, 8))[0], pos + 8
    if marker == BOOLEAN:
        return _take(data, pos, 1)[0] != 0, pos + 1
    if marker == STRING:
        return _string(data, pos, 2)
    if marker == LONG_STRING:
        return _string(data, pos, 4)
    if marker == NULL:
        return None, pos
    if marker == UNDEFINED:
        return UNDEFINED_VALUE, pos
    if marker == OBJECT:
        return _properties(data, pos, depth)
    if marker == ECMA_ARRAY:
        _take(data, pos, 4)  # the count is a hint: the end marker ends it
        items, pos = _properties(data, pos + 4, depth)
        return EcmaArray(items), pos
    if marker == STRICT_ARRAY:
        count = struct.unpack(">I", _take(data, pos, 4))[0]
        pos += 4
        if count > len(data) - pos:  # each value takes a byte at least
            raise AmfError(f"AMF0 strict array of {count} values in {len(data) - pos} bytes")
        values = []
        for _ in range(count):
            value, pos = decode(data, pos, depth + 1)
            values.append(value)
        return values, pos
    if marker == DATE:
        ms, tz = struct.unpack(">dh", _take(data, pos, 10))
        return Date(ms, tz), pos + 10
    raise AmfError(f"AMF0 type {marker} is not supported")


def _take(data: bytes, pos: int, n: int) -> bytes:
    if pos + n > len(data):
        raise AmfError("AMF0 value cut short")
    return data[pos : pos + n]


def _string(data: bytes, pos: int, width: int) -> tuple[str, int]:
    size = int.from_bytes(_take(data, pos, width), "big")
    raw = _take(data, pos + width, size)
    return raw.decode("utf-8", errors="replace"), pos + width + size


def _properties(data: bytes, pos: int, depth: int) -> tuple[dict[str, Any], int]:
    items: dict[str, Any] = {}
    while True:
        key, pos = _string(data, pos, 2)
        if not key and _take(data, pos, 1)[0] == OBJECT_END:
            return items, pos + 1
        items[key], pos = decode(data, pos, depth + 1)


def encode(*values: Any) -> bytes:
    return b"".join(_encode_one(v, 0) for v in values)


def _encode_one(value: Any, depth: int) -> bytes:
    if depth > MAX_DEPTH:
        raise AmfError(f"AMF0 nested deeper than {MAX_DEPTH}")
    if value is None:
        return bytes([NULL])
    if isinstance(value, Undefined):
        return bytes([UNDEFINED])
    if isinstance(value, bool):
        return bytes([BOOLEAN, int(value)])
    if isinstance(value, int | float):
        return bytes([NUMBER]) + struct.pack(">d", float(value))
    if isinstance(value, str):
        raw = value.encode()
        if len(raw) <= 0xFFFF:
            return bytes([STRING]) + struct.pack(">H", len(raw)) + raw
        return bytes([LONG_STRING]) + struct.pack(">I", len(raw)) + raw
    if isinstance(value, Date):
        return bytes([DATE]) + struct.pack(">dh", value.ms, value.tz)
    if isinstance(value, EcmaArray):
        body = _encode_properties(value.items, depth)
        return bytes([ECMA_ARRAY]) + struct.pack(">I", len(value.items)) + body
    if isinstance(value, dict):
        return bytes([OBJECT]) + _encode_properties(value, depth)
    if isinstance(value, list | tuple):
        body = b"".join(_encode_one(v, depth + 1) for v in value)
        return bytes([STRICT_ARRAY]) + struct.pack(">I", len(value)) + body
    raise AmfError(f"cannot encode {type(value).__name__} as AMF0")


def _encode_properties(items: dict[str, Any], depth: int) -> bytes:
    out = bytearray()
    for key, value in items.items():
        raw = str(key).encode()[:0xFFFF]
        out += struct.pack(">H", len(raw)) + raw + _encode_one(value, depth + 1)
    return bytes(out) + b"\x00\x00" + bytes([OBJECT_END])
