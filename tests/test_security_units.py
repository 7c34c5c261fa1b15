"""Security rules as plain values: host names, cross-site requests, page policy,
masking, log escaping, child environments, private files, config policy."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import logging
import os
import re
from collections import deque
from pathlib import Path

import pytest

from mqttrelay.cli import MaskingFormatter
from mqttrelay.config import Config, ConfigError, parse_config, policy_problems
from mqttrelay.ingest.nginx.conf import (
    hooks_base_url,
    quoted,
    render_nginx_conf,
    settings_from_config,
)
from mqttrelay.ingest.nginx.hook_secret import hook_secret_path, load_hook_secret
from mqttrelay.lib import process
from mqttrelay.lib.files import UnsafeFolderError, private_dir, write_atomic
from mqttrelay.lib.process import OWNER_ENV, child_environment
from mqttrelay.lib.redact import Redactor, display_url, escape_control
from mqttrelay.transports.http.events import EventTickets
from mqttrelay.transports.http.guard import (
    HostPolicy,
    cross_site_reason,
    page_csp,
    response_headers,
)
from mqttrelay.transports.http.server import uvicorn_config


def test_host_policy_accepts_addresses_and_known_names_only() -> None:
    policy = HostPolicy.build("192.168.1.20", ["studio.lan", "*.example.net"], machine="box")
    for good in (
        "127.0.0.1:8088",
        "localhost:8088",
        "LOCALHOST",
        "[::1]:8088",
        "192.168.1.20:8088",
        "10.0.0.7",  # any IP literal: a rebinding page always has a name of its own
        "box:8088",
        "box.local",
        "studio.lan",
        "cam.example.net:80",
        "app.localhost",
    ):
        assert policy.allows(good), good
    for bad in ("rebind.example.com", "evil.com:8088", "studio.lan.evil.com", "", None):
        assert not policy.allows(bad), bad


def test_cross_site_state_changes_are_refused() -> None:
    host = {"host": "127.0.0.1:8088"}
    assert cross_site_reason("POST", host) is None  # curl, scripts: no browser headers
    assert cross_site_reason("GET", {**host, "origin": "http://evil.example"}) is None
    same = {**host, "origin": "http://127.0.0.1:8088", "sec-fetch-site": "same-origin"}
    assert cross_site_reason("PUT", same) is None
    assert cross_site_reason("POST", {**host, "origin": "http://evil.example"})
    assert cross_site_reason("POST", {**host, "origin": "null"})
    assert cross_site_reason("DELETE", {**host, "sec-fetch-site": "cross-site"})
    assert cross_site_reason("POST", {**host, "sec-fetch-site": "same-site"})
    # an origin allowed to frame the page may call it (Home Assistant's)
    framed = {**host, "origin": "http://ha.local:8123"}
    assert cross_site_reason("POST", framed, ["http://ha.local:8123"]) is None


def _sha(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


def test_page_policy_allows_only_the_page_own_inline_code() -> None:
    html = "<style>a{}</style><script>go()</script>"
    csp = page_csp(html)
    assert f"script-src {_sha('go()')};" in csp and f"style-src {_sha('a{}')};" in csp
    assert "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
    assert "frame-ancestors http://ha:8123" in page_csp(html, ["http://ha:8123"])
    page = dict(response_headers("/", csp, page_framable=False))
    assert page["x-frame-options"] == "DENY" and page["referrer-policy"] == "no-referrer"
    assert page["x-content-type-options"] == "nosniff"
    framable = dict(response_headers("/", csp, page_framable=True))
    assert "x-frame-options" not in framable
    api = dict(response_headers("/api/streams", csp, page_framable=True))
    assert (
        api["x-frame-options"] == "DENY" and "default-src 'none'" in api["content-security-policy"]
    )


def test_urls_never_show_user_info_or_query_values_even_with_a_key() -> None:
    shown = display_url("srt://user:pw@host:9000?passphrase=PP", "KEY")
    assert shown == "srt://****@host:9000?****/****"
    assert display_url("rtmps://h:443/rtmp/", "K") == "rtmps://h:443/rtmp/****"


def test_control_characters_are_escaped() -> None:
    assert (
        escape_control("x\n2026 ERROR forged\r\x1b[31m") == "x\\x0a2026 ERROR forged\\x0d\\x1b[31m"
    )


def test_log_lines_mask_secrets_added_later_and_cannot_be_forged() -> None:
    redactor = Redactor(["config-SECRET-1"])
    formatter = MaskingFormatter("%(name)s: %(message)s", redactor)
    redactor.add(["reload-added-SECRET-99"])  # a reload, after logging was set up
    message = "x\nERROR forged reload-added-SECRET-99 config-SECRET-1"
    record = logging.LogRecord(
        "mqttrelay.api", logging.WARNING, __file__, 1, "%s", (message,), None
    )
    line = formatter.format(record)
    assert "\n" not in line and "SECRET" not in line and line.count("****") == 2


def test_one_redactor_adds_removes_and_masks() -> None:
    redactor = Redactor(["short", None, "", "a-much-longer-short-key"])
    assert redactor.secrets == ("a-much-longer-short-key", "short")  # longest first
    assert redactor.mask("a-much-longer-short-key, short, shorter") == "****, ****, shorter"
    redactor.add(["short"])  # known already: nothing changes
    redactor.remove(["short", "never-known"])
    assert list(redactor.secrets) == ["a-much-longer-short-key"]
    assert redactor.mask("short rtmp://h/app/KEY") == "short rtmp://h/app/****"


async def test_a_secret_added_while_ffmpeg_runs_is_masked_from_its_next_line() -> None:
    """The reader of a running ffmpeg holds the service's redactor, not a copy."""
    redactor = Redactor(["first-key-0123"])
    stderr = asyncio.StreamReader()
    tail: deque[str] = deque(maxlen=5)
    first_line = asyncio.Event()
    reading = asyncio.create_task(
        process.read_stderr(stderr, redactor, tail, lambda _: first_line.set())
    )
    stderr.feed_data(b"open first-key-0123\n")
    await asyncio.wait_for(first_line.wait(), 10)
    redactor.add(["added-key-4567"])
    stderr.feed_data(b"open added-key-4567 first-key-0123\n")
    stderr.feed_eof()
    await asyncio.wait_for(reading, 10)
    assert list(tail) == ["open ****", "open **** ****"]


def test_uvicorn_logs_through_the_masking_handler() -> None:
    uvicorn_config(lambda *a: None)  # installs uvicorn's logging as run() does
    assert not logging.getLogger("uvicorn.error").handlers
    assert logging.getLogger("uvicorn.error").propagate
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    redactor = Redactor(["uvicorn-canary-SECRET"])
    handler.setFormatter(MaskingFormatter("%(name)s: %(message)s", redactor))
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        logging.getLogger("uvicorn.error").error("bad request rtmp://h/app/uvicorn-canary-SECRET")
    finally:
        root.removeHandler(handler)
    assert "uvicorn.error" in out.getvalue() and "uvicorn-canary-SECRET" not in out.getvalue()


def test_children_get_a_minimal_environment() -> None:
    parent = {
        "PATH": "/usr/bin",
        "LANG": "C.UTF-8",
        "LC_ALL": "C",
        "API_TOKEN": "t",
        "FACEBOOK_KEY": "k",
        "MQTT_PASSWORD": "p",
        "HOME": "/root",
    }
    env = child_environment(parent, "/srv/state.json")
    assert env == {
        "PATH": "/usr/bin",
        "LANG": "C.UTF-8",
        "LC_ALL": "C",
        OWNER_ENV: "/srv/state.json",
    }


def test_private_dir_refuses_links_and_other_users(tmp_path: Path) -> None:
    made = private_dir(tmp_path / "ngx")
    assert made.stat().st_mode & 0o777 == 0o700
    (tmp_path / "loose").mkdir(mode=0o755)
    assert private_dir(tmp_path / "loose").stat().st_mode & 0o777 == 0o700
    (tmp_path / "link").symlink_to(tmp_path / "ngx")
    with pytest.raises(UnsafeFolderError, match="not a folder"):
        private_dir(tmp_path / "link")
    if os.geteuid() == 0:
        other = tmp_path / "other"
        other.mkdir()
        os.chown(other, 65534, 65534)
        with pytest.raises(UnsafeFolderError, match="belongs to user id 65534"):
            private_dir(other)


def test_write_atomic_replaces_a_planted_link_instead_of_following_it(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("keep")
    (tmp_path / "nginx.conf").symlink_to(victim)
    write_atomic(tmp_path / "nginx.conf", "mine")
    assert victim.read_text() == "keep"
    assert not (tmp_path / "nginx.conf").is_symlink()
    assert (tmp_path / "nginx.conf").stat().st_mode & 0o777 == 0o600


def test_hook_secret_is_made_once_and_kept_private(tmp_path: Path) -> None:
    config = Config.model_validate({"state_file": str(tmp_path / "state.json")})
    first = load_hook_secret(config.ingest.hook_secret, config.state_file)
    assert (
        len(first) >= 16 and load_hook_secret(config.ingest.hook_secret, config.state_file) == first
    )
    assert hook_secret_path(config.state_file).stat().st_mode & 0o777 == 0o600
    fixed = Config.model_validate({"ingest": {"hook_secret": "x" * 20}})
    assert load_hook_secret(fixed.ingest.hook_secret, fixed.state_file) == "x" * 20


def _problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(text, env={})
    return info.value.problems


def test_lan_ingest_needs_a_publish_key_and_names_are_safe() -> None:
    (problem,) = _problems("ingest: {url: 'rtmp://192.168.1.10:1935/live/stream'}")
    assert problem.startswith("ingest: ") and "set ingest.publish_key" in problem
    parse_config("ingest: {url: 'rtmp://192.168.1.10:1935/live/stream', publish_key: k}", env={})
    assert "/<application>/<stream name>" in _problems("ingest: {url: 'rtmp://h/live;deny/s'}")[0]
    assert "host name" in _problems("api: {host: '127.0.0.1;x'}")[0]
    assert "host name" in _problems("api: {allowed_hosts: ['a b']}")[0]
    assert "origin" in _problems("api: {frame_ancestors: ['http://ha/x']}")[0]


def test_short_token_is_a_policy_problem() -> None:
    short = Config.model_validate({"api": {"token": "abc"}})
    (problem,) = policy_problems(short)
    assert problem.startswith("api.token: 3 characters") and "16 or more" in problem
    assert policy_problems(Config.model_validate({"api": {"token": "x" * 16}})) == []


def test_hooks_reach_the_api_where_it_listens() -> None:
    assert hooks_base_url("127.0.0.1", 8088) == "http://127.0.0.1:8088/api/hooks"
    assert hooks_base_url("192.168.1.20", 8088) == "http://192.168.1.20:8088/api/hooks"
    assert hooks_base_url("0.0.0.0", 8088) == "http://127.0.0.1:8088/api/hooks"
    assert hooks_base_url("::1", 8088) == "http://[::1]:8088/api/hooks"
    assert hooks_base_url("::", 8088) == "http://[::1]:8088/api/hooks"


def test_rendered_values_cannot_break_out_of_their_line(tmp_path: Path) -> None:
    assert quoted("/srv/state") == "/srv/state"
    assert quoted('/srv/my "state";x') == '"/srv/my \\"state\\";x"'
    config = Config.model_validate(
        {
            "ingest": {"url": "rtmp://10.1.2.3:1935/live/stream", "publish_key": "pk"},
            "api": {"host": "10.1.2.3", "token": "t" * 16},
            "streams": [{"id": "yt", "url": "rtmp://a.example/app", "key": "K;}{x-1234"}],
        }
    )
    settings = settings_from_config(
        config.ingest,
        config.api,
        "/srv/a b;c",
        hook_secret="s" * 20,
        push=config.streams,
        show_keys=True,
    )
    text = render_nginx_conf(settings)
    assert 'pid "/srv/a b;c/nginx.pid";' in text
    assert 'push "rtmp://a.example/app/K;}{x-1234";' in text
    assert (
        f"on_publish http://10.1.2.3:{config.api.port}/api/hooks/on_publish?secret={'s' * 20};"
        in text
    )
    play = re.findall(r"(allow|deny) play ([^;]+);", text)
    assert play == [("allow", "127.0.0.1"), ("allow", "10.1.2.3"), ("deny", "all")]


def test_event_tickets_are_single_use_and_expire() -> None:
    now = [100.0]
    tickets = EventTickets(clock=lambda: now[0])
    first = tickets.issue()
    assert tickets.redeem(first) and not tickets.redeem(first)
    late = tickets.issue()
    now[0] += 31
    assert not tickets.redeem(late) and not tickets.redeem("")


def test_rtmps_goes_through_a_loopback_tunnel_with_the_platform_tcurl() -> None:
    from mqttrelay.ffmpeg import build_relay_argv
    from mqttrelay.relays.tls_tunnel import stunnel_conf, through_tunnel

    url, tcurl = through_tunnel("rtmps://live-api-s.facebook.com:443/rtmp/FB-KEY", 40001)
    assert url == "rtmp://127.0.0.1:40001/rtmp/FB-KEY"
    assert tcurl == "rtmps://live-api-s.facebook.com:443/rtmp"
    argv = build_relay_argv("ffmpeg", url, "cached", "rtmp://127.0.0.1/live/s", tcurl)
    assert argv[argv.index("-rtmp_tcurl") + 1] == tcurl
    assert argv[-3:] == ["-tcp_nodelay", "1", url]
    conf = stunnel_conf(40001, "live-api-s.facebook.com", 443)
    assert "client = yes" in conf and "accept = 127.0.0.1:40001" in conf
    assert "connect = live-api-s.facebook.com:443" in conf
    assert "socket = l:TCP_NODELAY=1" in conf and "socket = r:TCP_NODELAY=1" in conf
