from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mqttrelay.transports.mqtt.commands import Command, CommandError, parse_command


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (b"ON", Command("ON")),
        (b"on", Command("ON")),
        (b" Off\n", Command("OFF")),
        (b"TOGGLE", Command("TOGGLE")),
        (b"toggle", Command("TOGGLE")),
        (b"1", Command("ON")),
        (b"0", Command("OFF")),
        (b"true", Command("ON")),
        (b"FALSE", Command("OFF")),
        (b'{"state": "ON"}', Command("ON")),
        (b'{"state": "off"}', Command("OFF")),
        (b'{"state": true}', Command("ON")),
        (b'{"state": "ON", "duration_s": 1800}', Command("ON", 1800.0)),
        (b'{"state": "OFF", "duration_s": 2.5}', Command("OFF", 2.5)),
    ],
)
def test_every_payload_form(payload: bytes, expected: Command) -> None:
    assert parse_command(payload) == expected


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"", "empty payload"),
        (b"maybe", "unknown state 'maybe'"),
        (b"\xff\xfe", "not UTF-8"),
        (b"{nope", "not valid JSON"),
        (b"[1]", "unknown state"),
        (b'{"state": "ON", "extra": 1}', "unknown JSON key(s): extra"),
        (b'{"duration_s": 5}', 'needs "state"'),
        (b'{"state": "ON", "duration_s": -1}', "duration_s must be more than 0"),
        (b'{"state": "ON", "duration_s": "5"}', "must be a number"),
        (b'{"state": "ON", "duration_s": true}', "must be a number"),
        (b'{"state": "ON", "duration_s": 1e400}', "duration_s must be"),
        (b"O" * 300, "over 256"),
        (b"[" * 200, "unknown state"),
        (b"{" * 200, "not valid JSON"),
    ],
)
def test_bad_payloads_say_why(payload: bytes, reason: str) -> None:
    with pytest.raises(CommandError) as info:
        parse_command(payload)
    assert reason in str(info.value)


@given(st.binary(max_size=400))
def test_fuzzed_payloads_only_raise_command_error(payload: bytes) -> None:
    try:
        command = parse_command(payload)
    except CommandError as exc:
        assert str(exc)
    else:
        assert command.action in ("ON", "OFF", "TOGGLE")


json_values = st.recursive(
    st.none() | st.booleans() | st.floats() | st.text(max_size=10),
    lambda c: st.lists(c) | st.dictionaries(st.text(max_size=10), c),
    max_leaves=8,
)


@given(json_values)
def test_fuzzed_json_only_raises_command_error(value: object) -> None:
    payload = json.dumps({"state": value, "duration_s": value})[:256].encode()
    try:
        command = parse_command(payload)
    except CommandError as exc:
        assert str(exc)
    else:
        assert command.action in ("ON", "OFF", "TOGGLE")
