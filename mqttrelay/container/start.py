"""The container's start: read the options, ask the Supervisor for MQTT, write
config.yaml (0600) and show it with its secrets masked; `mqttrelay container`
then runs it as `mqttrelay run` would.

Add-on: /data/options.json exists; config.yaml lives in /config (the add-on's
config folder, `map: addon_config`) when it is there, else in /data.
Docker: options come from environment variables; config.yaml is /data/config.yaml."""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx

from mqttrelay.config import ConfigError, parse_config
from mqttrelay.container.options import (
    RTMP_PORT,
    ContainerOptions,
    MqttService,
    OptionsError,
    first_config,
    mqtt_from_service,
    options_from_env,
    parse_options,
    settle_config,
)
from mqttrelay.lib.files import read_private, write_atomic
from mqttrelay.lib.redact import mask

OWNED_FILE = "container-destinations.json"


@dataclass(frozen=True)
class Prepared:
    config_path: Path
    log_level: str


@dataclass(frozen=True)
class Places:
    data: Path
    config: Path
    addon: bool


def places(env: Mapping[str, str]) -> Places:
    data = Path(env.get("MQTTRELAY_DATA", "/data"))
    addon = (data / "options.json").is_file()
    default = Path("/config/config.yaml") if addon and Path("/config").is_dir() else None
    config = Path(env.get("MQTTRELAY_CONFIG", "") or default or data / "config.yaml")
    return Places(data, config, addon)


def read_options(where: Places, env: Mapping[str, str]) -> ContainerOptions:
    if not where.addon:
        return options_from_env(env)
    path = where.data / "options.json"
    try:
        raw = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise OptionsError([f"{path}: cannot be read as JSON ({exc})"]) from None
    return parse_options(raw, "add-on options")


def fetch_mqtt_service(
    env: Mapping[str, str], say: Callable[[str], None], timeout_s: float = 10.0
) -> MqttService | None:
    """The Supervisor's MQTT service, or None (no token, no broker, no answer)."""
    token = env.get("SUPERVISOR_TOKEN")
    if not token:
        return None
    base = env.get("SUPERVISOR_API", "http://supervisor").rstrip("/")
    try:
        answer = httpx.get(
            f"{base}/services/mqtt",
            headers={"Authorization": f"Bearer {token}"},
            timeout=timeout_s,
        )
    except httpx.HTTPError as exc:
        say(f"the Supervisor did not answer for MQTT ({type(exc).__name__}); going on without")
        return None
    if answer.status_code != 200:
        return None  # no MQTT broker installed: 400 from the Supervisor
    try:
        return mqtt_from_service(answer.json())
    except ValueError as exc:
        say(f"{exc}; going on without")
        return None


def _owned(where: Places) -> list[str]:
    text = read_private(where.data / OWNED_FILE)
    try:
        ids = json.loads(text) if text else []
    except ValueError:
        return []
    return [i for i in ids if isinstance(i, str)] if isinstance(ids, list) else []


def prepare(env: Mapping[str, str], say: Callable[[str], None]) -> Prepared:
    """Write config.yaml from the options; raises OptionsError naming what is wrong."""
    where = places(env)
    options = read_options(where, env)
    existing = read_private(where.config)
    if existing is None:
        # random secrets; settle_config then sets the ones the options give
        existing = first_config(
            state_file=str(where.data / "state.json"),
            obs_key=secrets.token_urlsafe(18),
            token=secrets.token_urlsafe(24),
        )
        say(f"first start: made {where.config}")
    service = fetch_mqtt_service(env, say) if where.addon else None
    settled = settle_config(
        existing,
        options,
        service=service,
        addon=where.addon,
        timezone=env.get("TZ") or None,
        owned=_owned(where),
    )
    try:
        config = parse_config(settled.text, base_dir=where.config.parent)
    except ConfigError as exc:
        raise OptionsError([f"{where.config}: {p}" for p in exc.problems]) from None
    write_atomic(where.config, settled.text)
    write_atomic(where.data / OWNED_FILE, json.dumps(settled.owned))
    for note in settled.notes:
        say(note)
    say(f"{where.config}, as mqttrelay runs it (secrets masked):")
    for line in mask(settled.text, config.secrets).splitlines():
        say(f"  {line}")
    if not options.obs_key:
        say(
            f"OBS: server rtmp://<this host>:{RTMP_PORT}/live, stream key "
            f"stream?key=<publish_key>, with ingest.publish_key from {where.config} "
            "(or set obs_key in the options)"
        )
    return Prepared(where.config, options.log_level)
