"""Who may talk to the page and the API: known host names only (DNS rebinding),
no cross-site state changes, and headers that keep the page out of others' frames.

The checks are pure functions of the request's headers; RequestGuard applies
them to every request before any route runs, and adds the headers to every answer.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import json
import re
import socket
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
DOCS_PATH = "/api/docs"
# FastAPI's Swagger page loads its script and style from this CDN
_DOCS_CDN = "https://cdn.jsdelivr.net"
_API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"


def host_name(host_header: str) -> str:
    """The name in a Host header, without port or brackets, lower case."""
    host = host_header.strip().lower()
    if host.startswith("["):
        return host[1:].partition("]")[0]
    if host.count(":") == 1:
        host = host.partition(":")[0]
    return host.rstrip(".")


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class HostPolicy:
    """IP addresses always pass (a rebinding page has a name of its own), as do
    localhost, the names listed and '*.suffix' patterns."""

    names: frozenset[str]
    suffixes: tuple[str, ...] = ()

    @classmethod
    def build(cls, api_host: str, allowed: Iterable[str], machine: str | None = None) -> HostPolicy:
        machine = (machine if machine is not None else socket.gethostname()).lower()
        names = {api_host.lower(), "localhost"}
        if machine:
            names |= {machine, f"{machine}.local"}
        suffixes = []
        for entry in allowed:
            if entry.startswith("*."):
                suffixes.append(entry[1:].lower())
            else:
                names.add(entry.lower())
        return cls(frozenset(names), tuple(suffixes))

    def allows(self, host_header: str | None) -> bool:
        if not host_header:
            return False
        name = host_name(host_header)
        if _is_ip(name) or name in self.names or name.endswith(".localhost"):
            return True
        return any(name.endswith(suffix) for suffix in self.suffixes)


def cross_site_reason(
    method: str, headers: Mapping[str, str], trusted_origins: Iterable[str] = ()
) -> str | None:
    """Why a state-changing request comes from another site, or None.

    Browsers mark every request with Sec-Fetch-Site and a POST with Origin;
    scripts and curl send neither and are judged by the token alone."""
    if method in SAFE_METHODS:
        return None
    site = headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        return f"refused a {site} request (Sec-Fetch-Site)"
    origin = headers.get("origin")
    if origin is None:
        return None
    if origin.rstrip("/") in {o.rstrip("/") for o in trusted_origins}:
        return None
    if origin == "null" or urlsplit(origin).netloc.lower() != headers.get("host", "").lower():
        return "refused a request from another site (Origin)"
    return None


INGRESS_SCOPE_KEY = "mqttrelay.ingress_path"
_INGRESS_PATH = re.compile(r"/[A-Za-z0-9_./-]{0,300}")


def ingress_path(client: str | None, headers: Mapping[str, str], proxy: str | None) -> str | None:
    """The X-Ingress-Path of a request from Home Assistant's ingress proxy, or None.

    The header counts only from the proxy's own address: anyone can send it."""
    if proxy is None or client is None:
        return None
    try:
        if ipaddress.ip_address(client) != ipaddress.ip_address(proxy):
            return None
    except ValueError:
        return None
    path = headers.get("x-ingress-path", "")
    return path if _INGRESS_PATH.fullmatch(path) else None


def _inline_hashes(html: str, tag: str) -> list[str]:
    found = re.findall(rf"<{tag}>(.*?)</{tag}>", html, flags=re.DOTALL)
    return [
        "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"
        for text in found
    ]


def page_csp(html: str, frame_ancestors: Iterable[str] = ()) -> str:
    """The page's policy: its own inline script and style (by hash), calls to
    itself, nothing from elsewhere; framed only by the origins listed."""
    ancestors = " ".join(frame_ancestors) or "'none'"
    return (
        "default-src 'none'; "
        f"script-src {' '.join(_inline_hashes(html, 'script'))}; "
        f"style-src {' '.join(_inline_hashes(html, 'style'))}; "
        "connect-src 'self'; img-src 'self' data: blob:; "
        f"base-uri 'none'; form-action 'none'; frame-ancestors {ancestors}"
    )


def response_headers(path: str, page_policy: str, page_framable: bool) -> list[tuple[str, str]]:
    headers = [
        ("x-content-type-options", "nosniff"),
        ("referrer-policy", "no-referrer"),
        ("cross-origin-resource-policy", "same-origin"),
    ]
    if path == "/":
        headers.append(("content-security-policy", page_policy))
    elif path == DOCS_PATH:
        headers.append(
            (
                "content-security-policy",
                f"default-src 'none'; script-src {_DOCS_CDN} 'unsafe-inline'; "
                f"style-src {_DOCS_CDN}; img-src 'self' data:; connect-src 'self'; "
                "frame-ancestors 'none'",
            )
        )
    else:
        headers.append(("content-security-policy", _API_CSP))
    if not (path == "/" and page_framable):
        headers.append(("x-frame-options", "DENY"))
    return headers


ASGIApp = Callable[[dict[str, Any], Any, Any], Awaitable[None]]


class RequestGuard:
    """ASGI middleware: 400 for an unknown Host, 403 for a cross-site state
    change, and the security headers on every answer, errors included."""

    def __init__(
        self,
        app: ASGIApp,
        hosts: HostPolicy,
        page_html: str,
        frame_ancestors: tuple[str, ...] = (),
        ingress_proxy: str | None = None,
    ) -> None:
        self.app = app
        self.hosts = hosts
        self.page_policy = page_csp(page_html, frame_ancestors)
        # Home Assistant shows an ingress page in a frame of its own origin
        self.ingress_page_policy = page_csp(page_html, ("'self'", *frame_ancestors))
        self.frame_ancestors = frame_ancestors
        self.ingress_proxy = ingress_proxy

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = scope_headers(scope)
        client = scope.get("client")
        ingress = ingress_path(client[0] if client else None, headers, self.ingress_proxy)
        scope[INGRESS_SCOPE_KEY] = ingress
        policy = self.page_policy if ingress is None else self.ingress_page_policy
        framable = bool(self.frame_ancestors) or ingress is not None
        extra = [
            (k.encode(), v.encode()) for k, v in response_headers(scope["path"], policy, framable)
        ]

        async def send_with_headers(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        # behind ingress the Host is Home Assistant's, and the proxy is no rebinding page
        if ingress is None and not self.hosts.allows(headers.get("host")):
            await plain_error(
                send_with_headers,
                400,
                "unknown host name: add it to api.allowed_hosts to reach mqttrelay by it",
            )
            return
        reason = cross_site_reason(scope["method"], headers, self.frame_ancestors)
        if reason is not None:
            await plain_error(send_with_headers, 403, reason)
            return
        await self.app(scope, receive, send_with_headers)


def scope_headers(scope: Mapping[str, Any]) -> dict[str, str]:
    """An ASGI request's headers by lower-case name (the last of a repeated one)."""
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}


async def plain_error(send: Any, status: int, detail: str) -> None:
    """A JSON error answered before any route runs."""
    body = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", b"%d" % len(body)),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
