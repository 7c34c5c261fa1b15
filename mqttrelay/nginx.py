"""nginx-rtmp configuration for the ingest, rendered as text (pure)."""

from __future__ import annotations

from dataclasses import dataclass

RTMP_MODULE = "/usr/lib/nginx/modules/ngx_rtmp_module.so"


@dataclass(frozen=True)
class NginxSettings:
    prefix: str  # folder for pid, logs and temp files
    rtmp_port: int
    http_port: int  # the stat page
    app: str = "live"
    listen_host: str = "127.0.0.1"
    fast_start: bool = True  # wait_key/wait_video/idle_streams off
    publish_from: tuple[str, ...] = ("127.0.0.1",)
    on_publish_url: str | None = None
    on_publish_done_url: str | None = None
    run_as_root: bool = False
    module_path: str = RTMP_MODULE


def render_nginx_conf(s: NginxSettings) -> str:
    """A complete nginx.conf that runs in the foreground with one rtmp application."""
    app_lines = ["live on;", "record off;"]
    if s.fast_start:
        # A player (the tap) then starts at a keyframe with its sequence headers,
        # and is closed when the publisher leaves instead of idling.
        app_lines += ["wait_key on;", "wait_video on;", "idle_streams off;"]
    app_lines += [f"allow publish {addr};" for addr in s.publish_from]
    app_lines += ["deny publish all;", "allow play all;"]
    if s.on_publish_url:
        app_lines.append(f"on_publish {s.on_publish_url};")
    if s.on_publish_done_url:
        app_lines.append(f"on_publish_done {s.on_publish_done_url};")
    app_block = "\n".join(f"            {line}" for line in app_lines)
    user = "user root;\n" if s.run_as_root else ""
    return f"""load_module {s.module_path};
{user}daemon off;
master_process on;
worker_processes 1;
pid {s.prefix}/nginx.pid;
error_log {s.prefix}/error.log warn;

events {{
    worker_connections 256;
}}

rtmp {{
    server {{
        listen {s.listen_host}:{s.rtmp_port};
        chunk_size 4096;
        application {s.app} {{
{app_block}
        }}
    }}
}}

http {{
    access_log off;
    client_body_temp_path {s.prefix}/client_body;
    proxy_temp_path {s.prefix}/proxy;
    fastcgi_temp_path {s.prefix}/fastcgi;
    uwsgi_temp_path {s.prefix}/uwsgi;
    scgi_temp_path {s.prefix}/scgi;
    server {{
        listen 127.0.0.1:{s.http_port};
        location /stat {{
            rtmp_stat all;
        }}
    }}
}}
"""
