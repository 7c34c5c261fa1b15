"""MQTT commands a host obeys: a stream's switch (or all of them, `ON`/`OFF`/
`TOGGLE`, with a duration), a new stream key, "be right back". Each goes to
the router (a key to the config editor), as the page's buttons do; bad input
is logged with its reason, never obeyed."""

from __future__ import annotations

import logging
from typing import Any

from mqttrelay.control.config_editor import ConfigEditor, EditRefused
from mqttrelay.control.router import Router, StandbyError, UnknownStreamError
from mqttrelay.lib.ratelimit import RateLimitedLog
from mqttrelay.lib.redact import mask
from mqttrelay.transports.mqtt.commands import CommandError, parse_command, parse_key
from mqttrelay.transports.mqtt.fleet import Fleet
from mqttrelay.transports.mqtt.topics import Topics

log = logging.getLogger(__name__)


class BadInputLog:
    """Logs bad input with its reason, at most once per topic and reason a minute."""

    def __init__(self, period_s: float = 60.0) -> None:
        self._log = RateLimitedLog(log, period_s)

    def warn(self, topic: str, reason: str) -> None:
        key = (topic[:120], reason[:120])
        self._log.warning("ignored MQTT message on %s: %s", *key, key=key)


def payload_bytes(payload: Any) -> bytes:
    if isinstance(payload, bytes | bytearray):
        return bytes(payload)
    if payload is None:
        return b""
    return str(payload).encode()


class CommandHandler:
    def __init__(
        self, router: Router, editor: ConfigEditor | None, topics: Topics, fleet: Fleet
    ) -> None:
        """`fleet`: the other hosts, whose streams' commands are not ours to refuse."""
        self._router = router
        self._editor = editor
        self.topics = topics
        self.fleet = fleet
        self.bad = BadInputLog()

    async def handle(self, topic: str, payload: bytes, retained: bool) -> None:
        """A message on a command topic (set, key, be right back); others are ignored."""
        if topic == self.topics.brb_set:
            self._be_right_back(topic, payload, retained)
            return
        if (key_of := self.topics.stream_of_key_topic(topic)) is not None:
            await self._new_key(topic, key_of, payload, retained)
            return
        stream_id = self.topics.stream_of_set_topic(topic)
        if stream_id is None:
            return
        if retained:
            # A retained ON left on the broker would switch a platform on at every start.
            self.bad.warn(topic, "retained command ignored (publish commands without retain)")
            return
        try:
            command = parse_command(payload)
            if stream_id == "all":
                if command.action == "TOGGLE":
                    raise CommandError("TOGGLE is for one stream; use ON or OFF for all")
                await self._router.set_all(command.action == "ON", command.duration_s)
            elif command.action == "TOGGLE":
                await self._router.toggle(stream_id, command.duration_s)
            else:
                await self._router.set_enabled(
                    stream_id, command.action == "ON", command.duration_s
                )
        except CommandError as exc:
            self.bad.warn(topic, str(exc))
        except UnknownStreamError as exc:
            if self.fleet.owner_of(stream_id) is None:  # another host's stream: not ours
                self.bad.warn(topic, str(exc))

    async def _new_key(self, topic: str, stream_id: str, payload: bytes, retained: bool) -> None:
        """Re-key a destination as the page's "Use this key" does: config.yaml is
        edited and the live relay restarts on the new key. Nothing said about
        it, here or in the editor, ever repeats the key."""
        if retained:
            self.bad.warn(topic, "retained command ignored (publish commands without retain)")
            return
        if stream_id not in self._router.stream_ids:
            if self.fleet.owner_of(stream_id) is None:  # another host's stream: not ours
                self.bad.warn(topic, f"unknown stream '{stream_id}'")
            return
        try:
            key = parse_key(payload)
        except CommandError as exc:
            self.bad.warn(topic, str(exc))
            return
        if self._editor is None:
            self.bad.warn(topic, "keys are kept in config.yaml: start mqttrelay from one")
            return
        try:
            await self._editor.update(stream_id, {"key": key})
        except EditRefused as exc:
            self.bad.warn(topic, mask(str(exc), [key]))

    def _be_right_back(self, topic: str, payload: bytes, retained: bool) -> None:
        if retained:
            self.bad.warn(topic, "retained command ignored (publish commands without retain)")
            return
        try:
            command = parse_command(payload)
            held = self._router.ingest_state().standby_held
            self._router.hold_standby(
                not held if command.action == "TOGGLE" else command.action == "ON"
            )
        except (CommandError, StandbyError) as exc:
            self.bad.warn(topic, str(exc))
