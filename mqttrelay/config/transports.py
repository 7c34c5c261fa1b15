"""config.yaml's `mqtt` and `api` sections: how Home Assistant and people
reach mqttrelay (pure)."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from mqttrelay.config.checks import (
    MIN_TOKEN_LENGTH,
    Section,
    check_host_name,
    is_loopback,
)


class MqttConfig(Section):
    """The MQTT broker, and Home Assistant's discovery."""

    enabled: bool = Field(default=True, description="`false` runs without MQTT")
    host: str = Field(
        default="127.0.0.1", description="the broker (e.g. Home Assistant's Mosquitto add-on)"
    )
    port: Annotated[int, Field(ge=1, le=65535, description="the broker's port")] = 1883
    username: str | None = Field(default=None, description="broker login")
    password: str | None = Field(default=None, description="broker password; `${VAR}` works")
    tls: bool = Field(default=False, description="TLS to the broker (port 8883 usually)")
    ca_certs: Path | None = Field(
        default=None, description="a CA file when the broker's certificate is not public"
    )
    base_topic: str = Field(
        default="streamrelay", description="prefix of every topic (`B` in the MQTT section)"
    )
    discovery_prefix: str = Field(
        default="homeassistant", description="Home Assistant's discovery prefix"
    )
    node_id: Annotated[
        str,
        Field(
            pattern=r"^[A-Za-z0-9_-]+$",
            description="unique per mqttrelay host: client ids `mqttrelay-<node_id>` and "
            "`mqttrelay-<node_id>-status`, the `B/host/<node_id>/...` topics, the Home "
            "Assistant device, unique and entity ids",
        ),
    ] = "studio"

    @field_validator("base_topic", "discovery_prefix")
    @classmethod
    def _topic(cls, value: str) -> str:
        if not value or any(c in value for c in "#+\x00") or value.startswith("/"):
            raise ValueError("must be a non-empty MQTT topic without wildcards or a leading '/'")
        return value.rstrip("/")


class ApiConfig(Section):
    """The web page and HTTP API."""

    host: str = Field(
        default="127.0.0.1",
        description="where the web page and API listen. Anything but a loopback address "
        "needs `api.token`, or mqttrelay refuses to start",
    )
    port: Annotated[int, Field(ge=0, le=65535, description="the page's and API's port")] = 8088
    token: str | None = Field(
        default=None,
        description="when set, every `/api` route, `/metrics`, `/api/docs` and "
        "`/openapi.json` need `Authorization: Bearer <token>`; the page asks for it once and "
        'keeps it in the browser until "Sign out". Use 16 characters or more: a shorter '
        "one is refused (`check`, `run`, the container's `page_token`) when `api.host` is not "
        "loopback; on loopback `check` fails on it and `run` warns; `${VAR}` works",
    )
    allowed_hosts: list[str] = Field(
        default=[],
        description="host names the page is reached by, besides IP addresses, `localhost`, "
        "`api.host` and this machine's name (`<hostname>` and `<hostname>.local`); "
        "`*.example.net` allows a domain's names. A request with any other `Host` is "
        "refused (400), against DNS rebinding",
    )
    frame_ancestors: list[str] = Field(
        default=[],
        description="origins that may show the page in a frame (e.g. "
        "`http://homeassistant.local:8123`); by default no site may frame it",
    )
    ingress_proxy: str | None = Field(
        default=None,
        description="the address of Home Assistant's ingress proxy (`172.30.32.2`, set by "
        "the add-on). A request from that address carrying `X-Ingress-Path` needs no token "
        "(Home Assistant signed the user in) and the page may be framed by its own origin; "
        "from any other address the header counts for nothing. The page's URLs are all "
        "relative, so it works under the ingress path",
    )

    @field_validator("host")
    @classmethod
    def _host(cls, value: str) -> str:
        return check_host_name(value, "api.host")

    @model_validator(mode="after")
    def _token_for_the_lan(self) -> ApiConfig:
        short = self.token is not None and len(self.token) < MIN_TOKEN_LENGTH
        if short and not is_loopback(self.host):
            raise ValueError(
                f"token is {len(self.token or '')} characters, too easy to guess for a page "
                f"other machines reach (host {self.host}); use {MIN_TOKEN_LENGTH} or more"
            )
        return self

    @field_validator("ingress_proxy")
    @classmethod
    def _ingress_proxy(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            return str(ipaddress.ip_address(value))
        except ValueError:
            raise ValueError(
                f"ingress_proxy must be an IP address (e.g. 172.30.32.2), not '{value[:40]}'"
            ) from None

    @field_validator("allowed_hosts")
    @classmethod
    def _allowed_hosts(cls, value: list[str]) -> list[str]:
        for name in value:
            check_host_name(name.removeprefix("*."), f"allowed_hosts entry '{name[:40]}'")
        return [name.lower() for name in value]

    @field_validator("frame_ancestors")
    @classmethod
    def _frame_ancestors(cls, value: list[str]) -> list[str]:
        for origin in value:
            parts = urlsplit(origin)
            if parts.scheme not in ("http", "https") or parts.path or parts.query:
                raise ValueError(f"'{origin[:60]}' is not an origin like http://homeassistant:8123")
            check_host_name(parts.hostname or "", "a frame_ancestors host")
        return value
