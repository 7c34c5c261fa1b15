"""nginx/ holds what the renderer makes for the sample config.yaml; this keeps the
two in step, and nginx itself accepts the example. After changing the renderer:
    .venv/bin/python -m tests.test_nginx_examples     (rewrites the examples)"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from mqttrelay.config import load_config
from mqttrelay.ingest.nginx.conf import (
    NginxSettings,
    render_include,
    render_nginx_conf,
    settings_from_config,
)

from .support import require_tool

ROOT = Path(__file__).resolve().parent.parent
PREFIX = "/var/lib/mqttrelay/nginx"
HOOK_SECRET = "HOOK-SECRET-made-by-mqttrelay-nginx-conf"  # the real one is per install


def example_settings() -> NginxSettings:
    keys = {
        name: "unused" for name in ("FACEBOOK_KEY", "YOUTUBE_KEY", "TIKTOK_KEY", "ONESTREAM_KEY")
    }
    config = load_config(ROOT / "config.yaml", env=keys)
    return settings_from_config(config.ingest, config.api, PREFIX, hook_secret=HOOK_SECRET)


def examples() -> dict[Path, str]:
    settings = example_settings()
    return {
        ROOT / "nginx" / "nginx.conf.example": render_nginx_conf(settings),
        ROOT / "nginx" / "mqttrelay-rtmp.conf.example": render_include(settings),
    }


def test_examples_are_what_the_renderer_makes() -> None:
    for path, text in examples().items():
        assert path.read_text() == text, f"{path} is stale: python -m tests.test_nginx_examples"


def test_nginx_accepts_the_shipped_example(tmp_path: Path) -> None:
    nginx = require_tool("nginx")
    text = (ROOT / "nginx" / "nginx.conf.example").read_text().replace(PREFIX, str(tmp_path))
    if os.geteuid() == 0:  # as the README says: nginx started by root needs a user
        text = text.replace("daemon off;", "user root;\ndaemon off;", 1)
    conf = tmp_path / "nginx.conf"
    conf.write_text(text)
    result = subprocess.run(
        [nginx, "-t", "-p", str(tmp_path), "-c", str(conf)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr


if __name__ == "__main__":
    for path, text in examples().items():
        path.write_text(text)
        print(f"wrote {path}")
