"""The Home Assistant add-on's files against the Supervisor's documented format
(developers.home-assistant.io, "Add-on configuration"): required keys and types,
options that match their schema, and what ties them to mqttrelay itself (the
version, the options `mqttrelay container` reads, the ingress port, one Dockerfile)."""

from __future__ import annotations

import re
import struct
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from mqttrelay import __version__
from mqttrelay.container.options import ENV_OPTIONS, PAGE_PORT, ContainerOptions, parse_options

ROOT = Path(__file__).resolve().parent.parent
ADDON = ROOT / "addon"

ARCHES = {"armhf", "armv7", "aarch64", "amd64", "i386"}
REQUIRED = {"name": str, "version": str, "slug": str, "description": str, "arch": list}
# the documented optional keys, with their types
OPTIONAL: dict[str, type | tuple[type, ...]] = {
    "machine": list, "url": str, "startup": str, "webui": str, "boot": str, "ports": dict,
    "ports_description": dict, "host_network": bool, "host_ipc": bool, "host_dbus": bool,
    "host_pid": bool, "host_uts": bool, "devices": list, "homeassistant": str,
    "hassio_role": str, "hassio_api": bool, "homeassistant_api": bool, "docker_api": bool,
    "privileged": list, "full_access": bool, "apparmor": (bool, str), "map": list,
    "environment": dict, "audio": bool, "video": bool, "gpio": bool, "usb": bool,
    "uart": bool, "udev": bool, "devicetree": bool, "kernel_modules": bool, "stdin": bool,
    "legacy": bool, "options": dict, "schema": (dict, bool), "image": str, "codenotary": str,
    "timeout": int, "tmpfs": bool, "discovery": list, "services": list, "auth_api": bool,
    "ingress": bool, "ingress_port": int, "ingress_entry": str, "ingress_stream": bool,
    "panel_icon": str, "panel_title": str, "panel_admin": bool, "backup": str,
    "backup_pre": str, "backup_post": str, "backup_exclude": list, "advanced": bool,
    "stage": str, "init": bool, "watchdog": str, "realtime": bool, "journald": bool,
    "breaking_versions": list, "ulimits": dict,
}  # fmt: skip
STARTUP = {"initialize", "system", "services", "application", "once"}
BOOT = {"auto", "manual", "manual_only"}
MAP_TYPES = {
    "homeassistant_config", "addon_config", "ssl", "addons", "backup", "share", "media",
    "all_addon_configs", "data",
}  # fmt: skip
_RANGE = r"(\((-?[\d.]*),(-?[\d.]*)\))?"
SCHEMA_TYPE = re.compile(
    rf"^(str{_RANGE}|bool|int{_RANGE}|float{_RANGE}|email|url|password|port"
    r"|match\(.+\)|list\([^|()]+(\|[^|()]+)*\)|device(\(.+\))?)\??$"
)


def load(name: str) -> Any:
    return yaml.safe_load((ADDON / name).read_text("utf-8"))


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    data = load("config.yaml")
    assert isinstance(data, dict)
    return data


def value_fits(value: Any, kind: str) -> bool:
    """Does an options value fit a schema type string (without the '?')."""
    kind = kind.rstrip("?")
    if kind.startswith("match("):
        return isinstance(value, str) and re.fullmatch(kind[6:-1], value) is not None
    if kind.startswith("list("):
        return value in kind[5:-1].split("|")
    base = kind.split("(")[0]
    checks = {
        "str": lambda v: isinstance(v, str),
        "password": lambda v: isinstance(v, str),
        "email": lambda v: isinstance(v, str) and "@" in v,
        "url": lambda v: isinstance(v, str) and "://" in v,
        "bool": lambda v: isinstance(v, bool),
        "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "port": lambda v: isinstance(v, int) and 0 < v < 65536,
        "float": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    }
    return checks[base](value)


def schema_types(schema: Any, depth: int = 0) -> list[str]:
    """Every type string of an option's schema, checking that lists and mappings
    nest two deep at most (a list of mappings, as Mosquitto's `logins`)."""
    if isinstance(schema, str):
        return [schema]
    assert depth < 2, "options nest two levels at most"
    if isinstance(schema, list):
        assert len(schema) == 1, "a list schema has one element type"
        return schema_types(schema[0], depth + 1)
    assert isinstance(schema, dict)
    return [t for value in schema.values() for t in schema_types(value, depth + 1)]


def test_required_keys_and_types(config: dict[str, Any]) -> None:
    for key, kind in REQUIRED.items():
        assert isinstance(config.get(key), kind), f"{key} must be a {kind.__name__}"
    for key, value in config.items():
        if key in REQUIRED:
            continue
        assert key in OPTIONAL, f"{key} is not a documented add-on option"
        assert isinstance(value, OPTIONAL[key]) or value is None, f"{key}: wrong type"
    assert set(config["arch"]) <= ARCHES and config["arch"]
    assert re.fullmatch(r"[a-z0-9_]+", config["slug"]), "slug: URI friendly"
    assert config["startup"] in STARTUP and config["boot"] in BOOT


def test_version_is_the_package_version(config: dict[str, Any]) -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert config["version"] == __version__ == project["version"]
    assert f"## {__version__}" in (ADDON / "CHANGELOG.md").read_text()


def test_ports_services_map_ingress_and_watchdog(config: dict[str, Any]) -> None:
    ports = config["ports"]
    for port, host in ports.items():
        assert re.fullmatch(r"\d+/(tcp|udp)", port) and (host is None or isinstance(host, int))
    assert ports["1935/tcp"] == 1935, "OBS publishes to Home Assistant's port 1935"
    assert set(config["ports_description"]) <= set(ports)
    for service in config["services"]:
        assert re.fullmatch(r"(mqtt|mysql):(provide|want|need)", service)
    assert "mqtt:want" in config["services"]
    for entry in config["map"]:
        kind = entry if isinstance(entry, str) else entry["type"]
        assert kind.split(":")[0] in MAP_TYPES
    assert config["ingress"] is True and config["ingress_port"] == PAGE_PORT
    assert re.fullmatch(r"mdi:[a-z0-9-]+", config["panel_icon"])
    assert config["init"] is False, "the image's own init (tini) is PID 1"
    watched = re.fullmatch(r"(https?|tcp)://\[HOST\]:\[PORT:(\d+)\].*", config["watchdog"])
    assert watched and f"{watched.group(2)}/tcp" in ports


def test_options_match_the_schema_and_what_mqttrelay_reads(config: dict[str, Any]) -> None:
    options, schema = config["options"], config["schema"]
    for kind in (t for value in schema.values() for t in schema_types(value)):
        assert SCHEMA_TYPE.match(kind), f"not a schema type: {kind}"
    assert set(options) <= set(schema)
    for key, value in options.items():
        if isinstance(value, list):
            assert isinstance(schema[key], list)
        else:
            assert value_fits(value, schema[key]), f"option {key}={value!r} vs {schema[key]}"
    # optional ones carry '?' and no default (a default makes them required)
    for key, kind in schema.items():
        if isinstance(kind, str) and kind.endswith("?"):
            assert key not in options
    assert set(schema) == set(ContainerOptions.model_fields)
    # what the Supervisor writes to /data/options.json, from defaults and a user's entries
    entry = {"id": "youtube", "name": "YouTube", "url": "rtmp://a.example/live2", "key": "k-123456"}
    for field, kind in schema["destinations"][0].items():
        assert value_fits(entry[field], kind)
    filled = {**options, "destinations": [entry], "mqtt_port": 1884, "obs_key": "o"}
    assert parse_options(filled, "options").destinations[0].id == "youtube"
    assert parse_options(options, "options") == ContainerOptions()


def test_translations_name_real_options_and_ports(config: dict[str, Any]) -> None:
    english = load("translations/en.yaml")
    assert set(english["configuration"]) <= set(config["schema"])
    assert {k.lower() for k in english["network"]} <= set(config["ports"])


def test_build_file_repository_and_images() -> None:
    build = load("build.yaml")
    assert set(build["build_from"]) == set(load("config.yaml")["arch"])
    for image in build["build_from"].values():
        assert re.fullmatch(r"ghcr\.io/home-assistant/[a-z0-9]+-base-debian:bookworm", image)
    repository = yaml.safe_load((ROOT / "repository.yaml").read_text())
    assert isinstance(repository["name"], str) and repository["url"].startswith("https://")
    assert (ADDON / "Dockerfile").read_bytes() == (ROOT / "Dockerfile").read_bytes(), (
        "addon/Dockerfile is a copy of the root's: cp Dockerfile addon/Dockerfile"
    )
    for name, size in (("icon.png", (128, 128)), ("logo.png", (250, 100))):
        head = (ADDON / name).read_bytes()[:24]
        assert head[:8] == b"\x89PNG\r\n\x1a\n"
        assert struct.unpack(">II", head[16:24]) == size, name
    for name in ("DOCS.md", "README.md"):
        assert (ADDON / name).read_text().startswith("# ")


def test_the_compose_example_sets_what_the_container_reads() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    service = compose["services"]["mqttrelay"]
    assert service["build"] == "."
    assert "1935:1935" in service["ports"] and f"{PAGE_PORT}:{PAGE_PORT}" in service["ports"]
    assert any(volume.endswith(":/data") for volume in service["volumes"])
    names = {name.lower() for name in service["environment"]} - {"tz"}
    assert names <= set(ENV_OPTIONS), names - set(ENV_OPTIONS)
