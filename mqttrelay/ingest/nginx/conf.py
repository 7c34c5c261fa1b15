"""nginx-rtmp configuration for the ingest, rendered as text (pure)."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

from mqttrelay.config import (
    ApiConfig,
    IngestConfig,
    StreamConfig,
    ingest_app_and_stream,
    is_loopback,
)
from mqttrelay.lib.redact import display_url

RTMP_MODULE = "/usr/lib/nginx/modules/ngx_rtmp_module.so"
_PLAIN_TOKEN = re.compile(r"[A-Za-z0-9_./:@%?=&+,~*\[\]-]+")
LAN_RANGES = ("127.0.0.1", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")


@dataclass(frozen=True)
class NginxSettings:
    prefix: str  # folder for pid, logs and temp files
    rtmp_port: int
    http_port: int | None  # the stat page, on 127.0.0.1; None: no stat page
    app: str = "live"
    listen_host: str = "127.0.0.1"
    fast_start: bool = True  # wait_key, wait_video and idle_streams as below
    idle_streams: bool = True
    publish_from: tuple[str, ...] = ("127.0.0.1",)
    play_from: tuple[str, ...] = ("127.0.0.1",)  # the tap; nobody else watches the raw feed
    on_publish_url: str | None = None
    on_publish_done_url: str | None = None
    run_as_root: bool = False
    module_path: str = RTMP_MODULE
    push: tuple[tuple[str, str], ...] = ()  # (comment, url) pairs for the old push mode
    # Idle connections (issue 26): 300 that never sent a byte took all of 256
    # worker_connections for nginx-rtmp's default 60 s and OBS was reset. Now they
    # are closed after rtmp_timeout_s, RTMP takes at most max_connections, and
    # worker_connections keeps room above that for the hooks and the stat page.
    worker_connections: int = 4096
    max_connections: int = 1024
    rtmp_timeout_s: int = 5


def render_rtmp_block(s: NginxSettings, *, own_nginx: bool = False) -> str:
    """The `rtmp {}` block alone: what an nginx the user already runs includes.
    own_nginx: for the complete nginx.conf, which keeps no access log: nginx-rtmp's
    default is the packaged /var/log/nginx/access.log, which only root may open,
    and nothing would rotate one in the prefix (a line per connection, floods too)."""
    app_lines = ["live on;", "record off;"]
    if s.fast_start:
        # A player (the tap) then starts at a keyframe with its sequence headers,
        # and stays connected while OBS is away, so it is there for the very
        # first keyframe when OBS comes back (benchmarks/RESULTS.md, outage).
        idle = "on" if s.idle_streams else "off"
        app_lines += ["wait_key on;", "wait_video on;", f"idle_streams {idle};"]
    app_lines += [f"allow publish {addr};" for addr in s.publish_from]
    app_lines.append("deny publish all;")
    app_lines += [f"allow play {addr};" for addr in s.play_from]
    app_lines.append("deny play all;")
    if s.on_publish_url:
        app_lines.append(f"on_publish {quoted(s.on_publish_url)};")
    if s.on_publish_done_url:
        app_lines.append(f"on_publish_done {quoted(s.on_publish_done_url)};")
    if s.push:
        app_lines += [
            "# Push mode (the old rtmp_streams.conf): nginx sends to every platform below",
            "# by itself. A change here needs an nginx RESTART, which cuts every stream:",
            "# 'nginx -s reload' leaves a running publisher's pushes as they were.",
        ]
        for comment, url in s.push:
            app_lines.append(f"# {comment}" if not url else f"push {quoted(url)};  # {comment}")
    app_block = "\n".join(f"            {line}" for line in app_lines)
    access_log = "    access_log off;\n" if own_nginx else ""
    return f"""rtmp {{
{access_log}    # RTMP connections at most, OBS and the tap included; a flood past it is refused
    max_connections {s.max_connections};
    server {{
        listen {_listen_address(s.listen_host)}:{s.rtmp_port};
        chunk_size 4096;
        # closes a connection that sends no handshake in this time (the default is 60 s);
        # also how long a player that takes no data is waited for
        timeout {s.rtmp_timeout_s}s;
        application {s.app} {{
{app_block}
        }}
    }}
}}
"""


def render_include(s: NginxSettings) -> str:
    """An include file for the main context of an existing nginx.conf."""
    return f"""# mqttrelay's ingest for an nginx you already run. In its nginx.conf, at the top:
#     load_module {quoted(s.module_path)};
# and in the main context (outside http {{}}):
#     include /etc/nginx/mqttrelay-rtmp.conf;
# with worker_connections in its events {{}} well above max_connections below
# (mqttrelay's own nginx has {s.worker_connections}).
{render_rtmp_block(s)}"""


def render_nginx_conf(s: NginxSettings) -> str:
    """A complete nginx.conf that runs in the foreground with one rtmp application."""
    user = "user root;\n" if s.run_as_root else ""
    http = ""
    if s.http_port is not None:
        http = f"""
http {{
    access_log off;
    client_body_temp_path {quoted(s.prefix + "/client_body")};
    proxy_temp_path {quoted(s.prefix + "/proxy")};
    fastcgi_temp_path {quoted(s.prefix + "/fastcgi")};
    uwsgi_temp_path {quoted(s.prefix + "/uwsgi")};
    scgi_temp_path {quoted(s.prefix + "/scgi")};
    server {{
        listen 127.0.0.1:{s.http_port};
        location /stat {{
            rtmp_stat all;
        }}
    }}
}}
"""
    return f"""# nginx-rtmp ingest for mqttrelay; runs in the foreground: nginx -c <this file>
load_module {quoted(s.module_path)};
{user}daemon off;
master_process on;
worker_processes 1;
# a descriptor for each connection, and one more for each hook call it makes
worker_rlimit_nofile {2 * s.worker_connections};
pid {quoted(s.prefix + "/nginx.pid")};
error_log {quoted(s.prefix + "/error.log")} warn;

events {{
    worker_connections {s.worker_connections};
}}

{render_rtmp_block(s, own_nginx=True)}{http}"""


def _listen_address(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def quoted(value: str) -> str:
    """A value as one nginx token, whatever it holds (spaces, ';', braces); quoted
    only when it needs to be, so the usual config reads as people write it."""
    if _PLAIN_TOKEN.fullmatch(value):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def hooks_base_url(api_host: str, api_port: int) -> str:
    """Where nginx on this machine reaches the API: its own address, or loopback
    when it listens on every address."""
    host = api_host.strip("[]")
    if host in ("0.0.0.0", ""):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{api_port}/api/hooks"


def _play_from(listen_host: str) -> tuple[str, ...]:
    """Loopback, and the ingest's own address: the tap connects from it."""
    try:
        address = ipaddress.ip_address(listen_host)
    except ValueError:
        return ("127.0.0.1",)
    if address.is_loopback or address.is_unspecified or address.version != 4:
        return ("127.0.0.1",)
    return ("127.0.0.1", str(address))


def settings_from_config(
    ingest_cfg: IngestConfig,
    api: ApiConfig,
    prefix: str,
    *,
    hook_secret: str | None = None,
    run_as_root: bool = False,
    push: Sequence[StreamConfig] = (),
    show_keys: bool = False,
) -> NginxSettings:
    """The ingest's nginx settings, from config.yaml's `ingest` and `api` (where
    the hooks go); the hook URLs carry hook_secret (hook_secret.load_hook_secret).
    `push`: streams nginx pushes to itself (nginx-conf --push)."""
    ingest = urlsplit(ingest_cfg.url)
    host = ingest.hostname or "127.0.0.1"
    app, _ = ingest_app_and_stream(ingest_cfg.url)
    stat_port = urlsplit(ingest_cfg.stat_url).port if ingest_cfg.stat_url else None
    hooks = hooks_base_url(api.host, api.port)
    query = f"?secret={quote(hook_secret, safe='')}" if hook_secret else ""
    pushes: list[tuple[str, str]] = []
    if push:
        for stream in push:
            if not stream.url.lower().startswith("rtmp://"):
                scheme = stream.url.split(":", 1)[0]
                pushes.append((f"{stream.id}: nginx-rtmp cannot push {scheme}://", ""))
                continue
            url = stream.target if show_keys else display_url(stream.url, stream.key)
            pushes.append((stream.id, url))
    return NginxSettings(
        prefix=prefix,
        rtmp_port=ingest.port or 1935,
        http_port=stat_port or None,
        app=app or "live",
        listen_host=host,
        publish_from=("127.0.0.1",) if is_loopback(host) else LAN_RANGES,
        play_from=_play_from(host),
        on_publish_url=f"{hooks}/on_publish{query}",
        on_publish_done_url=f"{hooks}/on_publish_done{query}",
        run_as_root=run_as_root,
        push=tuple(pushes),
    )
