"""What the container makes of its options (pure): the add-on's options.json or,
under plain Docker, environment variables; the Supervisor's MQTT service; and the
config.yaml they give, written at the first start and settled at each start.

Only what the options name is set; everything else in config.yaml stays as the
user or the page left it (destinations added on the page included)."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from mqttrelay.config import MIN_TOKEN_LENGTH, StreamConfig, split_listen
from mqttrelay.config.edit import (
    EditError,
    add_stream,
    remove_stream,
    schedules_naming,
    set_top_level,
    stream_ids_in,
    update_section,
    update_stream,
)
from mqttrelay.config.file import format_validation_error

SUPERVISOR_PROXY = "172.30.32.2"  # where Home Assistant's ingress calls an add-on from
RTMP_PORT = 1935
PAGE_PORT = 8088  # the add-on's ingress_port, and the image's EXPOSE


class OptionsError(Exception):
    def __init__(self, problems: Sequence[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = list(problems)


class Destination(StreamConfig):
    """A destination in the add-on's options: checked as config.yaml's streams
    are, so that a bad entry is named as an option; an empty key means none (the
    add-on's `password` fields are strings)."""

    @field_validator("key", mode="before")
    @classmethod
    def _empty_key(cls, value: object) -> object:
        return None if value == "" else value


class ContainerOptions(BaseModel):
    """The add-on's options (addon/config.yaml `schema`), all optional."""

    model_config = ConfigDict(extra="forbid")
    destinations: list[Destination] = []
    obs_key: str = ""  # OBS's stream key is then `stream?key=<obs_key>`
    page_token: str = ""  # the token for the page's own port, when exposed
    mqtt_host: str = ""  # empty: the Supervisor's MQTT service (add-on)
    mqtt_port: int = Field(default=0, ge=0, le=65535)  # 0: the service's, or 1883
    mqtt_username: str = ""
    mqtt_password: str = ""
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    # the built-in ingest on this <address>:<port> (ingest.listen, nginx off); empty:
    # config.yaml's ingest as it is (a first start makes the built-in one on 0.0.0.0:1935)
    ingest_listen: str = ""

    @field_validator("ingest_listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        if value:
            split_listen(value)  # its ValueError names ingest.listen's form
        return value

    @field_validator("page_token")
    @classmethod
    def _long_token(cls, value: str) -> str:
        if value and len(value) < MIN_TOKEN_LENGTH:
            raise ValueError(
                f"page_token is {len(value)} characters; the page's port is reachable from "
                f"other machines, so use {MIN_TOKEN_LENGTH} or more"
            )
        return value

    @field_validator("destinations")
    @classmethod
    def _unique(cls, value: list[Destination]) -> list[Destination]:
        ids = [d.id for d in value]
        twice = sorted({i for i in ids if ids.count(i) > 1})
        if twice:
            raise ValueError(f"destination id listed twice: {', '.join(twice)}")
        return value


def parse_options(raw: Any, where: str) -> ContainerOptions:
    if not isinstance(raw, dict):
        raise OptionsError([f"{where}: must be a mapping of options"])
    try:
        return ContainerOptions.model_validate(raw)
    except ValidationError as exc:
        raise OptionsError([f"{where}: {p}" for p in format_validation_error(exc)]) from None


# plain Docker: the same options, as upper-case environment variables
ENV_OPTIONS = (
    "obs_key",
    "page_token",
    "mqtt_host",
    "mqtt_port",
    "mqtt_username",
    "mqtt_password",
    "ingest_listen",
)


def options_from_env(env: Mapping[str, str]) -> ContainerOptions:
    raw: dict[str, Any] = {name: env[name.upper()] for name in ENV_OPTIONS if name.upper() in env}
    if "LOG_LEVEL" in env:
        raw["log_level"] = env["LOG_LEVEL"].lower()
    return parse_options(raw, "environment")


@dataclass(frozen=True)
class MqttService:
    """The broker the Supervisor hands to add-ons that want MQTT."""

    host: str
    port: int
    username: str | None
    password: str | None
    tls: bool


def mqtt_from_service(payload: Any) -> MqttService:
    """`GET /services/mqtt`'s answer: {"result": "ok", "data": {host, port, ssl, ...}}."""
    data = payload.get("data") if isinstance(payload, dict) else None
    if not isinstance(data, dict) or not isinstance(data.get("host"), str) or not data["host"]:
        raise ValueError("the Supervisor's MQTT service answer has no broker host")
    port = data.get("port", 1883)
    if not isinstance(port, int) or not 0 < port < 65536:
        raise ValueError(f"the Supervisor's MQTT service gave a bad port: {str(port)[:20]}")
    return MqttService(
        host=data["host"],
        port=port,
        username=data.get("username") or None,
        password=data.get("password") or None,
        tls=bool(data.get("ssl", False)),
    )


def first_config(*, state_file: str, obs_key: str, token: str) -> str:
    """config.yaml of a first start: mqttrelay's built-in ingest on every address
    of the container (OBS publishes to rtmp://<host>:1935/live with stream key
    stream?key=<obs key>): no nginx and no tap, and OBS's HEVC and AV1 are carried
    (docs/ingest.md, "Which ingest"). Installs made before keep their nginx."""
    return f"""\
# Made by the mqttrelay container at its first start. Edit it freely: the page
# edits it too, and what the add-on's options name is set again at each start.
# The ingest is mqttrelay's own (listen); for nginx-rtmp instead, replace
# `listen: ...` with `manage: true`.
state_file: {json.dumps(state_file)}
ingest:
  url: rtmp://0.0.0.0:{RTMP_PORT}/live/stream
  listen: 0.0.0.0:{RTMP_PORT}
  publish_key: {json.dumps(obs_key)}
api:
  host: 0.0.0.0
  port: {PAGE_PORT}
  token: {json.dumps(token)}
mqtt:
  enabled: false
streams: []
"""


@dataclass(frozen=True)
class Settled:
    text: str
    owned: list[str]  # destination ids the options added, to remove when unlisted
    notes: list[str]  # what the log should say about it


def settle_config(
    text: str,
    options: ContainerOptions,
    *,
    service: MqttService | None,
    addon: bool,
    timezone: str | None,
    owned: Sequence[str],
) -> Settled:
    """Set in config.yaml's text what the options and the Supervisor say."""
    notes: list[str] = []
    try:
        text = _settle_sections(text, options, service, addon, timezone, notes)
        text, now_owned = _settle_destinations(text, options.destinations, owned, notes)
    except EditError as exc:
        raise OptionsError([f"config.yaml: {exc}"]) from None
    return Settled(text, now_owned, notes)


def _settle_sections(
    text: str,
    options: ContainerOptions,
    service: MqttService | None,
    addon: bool,
    timezone: str | None,
    notes: list[str],
) -> str:
    if options.mqtt_host:
        mqtt: dict[str, Any] = {
            "enabled": True,
            "host": options.mqtt_host,
            "port": options.mqtt_port or 1883,
        }
        if options.mqtt_username:
            mqtt |= {"username": options.mqtt_username, "password": options.mqtt_password or None}
        text = update_section(text, "mqtt", mqtt)
        notes.append(f"MQTT: {options.mqtt_host}, from the options")
    elif service is not None:
        text = update_section(
            text,
            "mqtt",
            {
                "enabled": True,
                "host": service.host,
                "port": options.mqtt_port or service.port,
                "username": service.username,
                "password": service.password,
                "tls": service.tls,
            },
        )
        notes.append(f"MQTT: {service.host}:{service.port}, the Supervisor's MQTT service")
    elif addon:
        notes.append(
            "MQTT: no broker (install the Mosquitto broker add-on, or set mqtt_host); "
            "config.yaml's mqtt section is used as it is"
        )
    if addon:
        # ingress reaches the add-on on its own address and port, from the Supervisor
        text = update_section(
            text, "api", {"host": "0.0.0.0", "port": PAGE_PORT, "ingress_proxy": SUPERVISOR_PROXY}
        )
    if options.page_token:
        text = update_section(text, "api", {"token": options.page_token})
    if options.ingest_listen:
        port = split_listen(options.ingest_listen)[1]
        if addon and port != RTMP_PORT:
            raise OptionsError(
                [
                    f"ingest_listen: the add-on's ingest port is {RTMP_PORT} (what Home "
                    "Assistant maps and its watchdog checks); choose the port OBS uses in "
                    "the add-on's Network settings instead"
                ]
            )
        # `manage` off: the built-in ingest and nginx cannot both take OBS
        text = update_section(text, "ingest", {"listen": options.ingest_listen, "manage": False})
        notes.append(f"ingest: the built-in one on {options.ingest_listen}, from the options")
    if options.obs_key:
        if _builtin_ingest(text) and not re.fullmatch(r"[A-Za-z0-9_-]{16,}", options.obs_key):
            # the built-in ingest answers each guess itself: config.yaml would be refused
            raise OptionsError(
                [
                    f"obs_key is {len(options.obs_key)} characters; mqttrelay's built-in "
                    "ingest needs 16 or more letters, digits, '_' or '-'"
                ]
            )
        text = update_section(text, "ingest", {"publish_key": options.obs_key})
    if timezone:
        text = set_top_level(text, "timezone", timezone)
    return text


def _builtin_ingest(text: str) -> bool:
    """Does config.yaml's text turn the built-in ingest on (ingest.listen)?"""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError:
        return False  # parse_config names what is wrong with the file
    ingest = doc.get("ingest") if isinstance(doc, dict) else None
    return isinstance(ingest, dict) and bool(ingest.get("listen"))


def _settle_destinations(
    text: str, listed: Sequence[Destination], owned: Sequence[str], notes: list[str]
) -> tuple[str, list[str]]:
    present = set(stream_ids_in(text))
    now_owned: list[str] = []
    for dest in listed:
        fields = {"name": dest.name, "url": dest.url, "key": dest.key}
        if dest.id in present:
            text = update_stream(text, dest.id, fields)
        else:
            text = add_stream(text, {"id": dest.id, **fields})
        now_owned.append(dest.id)
    for stream_id in owned:
        if stream_id in now_owned or stream_id not in present:
            continue
        if schedules_naming(text, stream_id):
            notes.append(f"kept destination {stream_id}: a schedule in config.yaml names it")
            now_owned.append(stream_id)
            continue
        text = remove_stream(text, stream_id)
        notes.append(f"removed destination {stream_id}: no longer in the options")
    return text, now_owned
