"""The error mapping as plain values: stderr that ffmpeg 5.1 (Debian 12) and
stunnel 5.68 printed against real servers, captured once by hand with the
relay's argv (FLV on stdin, -loglevel error), key SECRETKEY, and masked here
the way the relay masks every line it reads."""

from __future__ import annotations

from pathlib import Path
from typing import get_args

import pytest

from mqttrelay.lib.redact import display_url, mask
from mqttrelay.relays.relay_errors import (
    DROPPED_AFTER_S,
    ErrorKind,
    RelayError,
    exited,
    other,
    stalled,
    timed_out,
    where,
)

KEY = "SECRETKEY"

# rtmp://127.0.0.1:1/x/KEY: nothing listens
REFUSED = """\
[tcp @ 0x56080a99b040] Connection to tcp://127.0.0.1:1?tcp_nodelay=1 failed: Connection refused
[rtmp @ 0x56080a9b5100] Cannot open connection tcp://127.0.0.1:1?tcp_nodelay=1
rtmp://127.0.0.1:1/x/SECRETKEY: Connection refused"""
# rtmp://nosuch.invalid/x/KEY, the resolver answering NXDOMAIN (a DNS server in a netns)
NXDOMAIN = """\
[tcp @ 0x55cb742c4040] Failed to resolve hostname nosuch.invalid: Name or service not known
[rtmp @ 0x55cb742de100] Cannot open connection tcp://nosuch.invalid:1935?tcp_nodelay=1
rtmp://nosuch.invalid/x/SECRETKEY: Input/output error"""
# the same with no DNS server reachable (a netns without network)
NO_DNS = """\
[tcp @ 0x558568a01040] Failed to resolve hostname nosuch.invalid: Temporary failure in name resolution
[rtmp @ 0x558568a1b100] Cannot open connection tcp://nosuch.invalid:1935?tcp_nodelay=1
rtmp://nosuch.invalid/x/SECRETKEY: Input/output error"""  # noqa: E501
# rtmp://10.1.2.3/x/KEY from a netns without a route
UNREACHABLE = """\
[tcp @ 0x55a8206a5040] Connection to tcp://10.1.2.3:1935?tcp_nodelay=1 failed: Network is unreachable
[rtmp @ 0x55a8206bf100] Cannot open connection tcp://10.1.2.3:1935?tcp_nodelay=1
rtmp://10.1.2.3/x/SECRETKEY: Network is unreachable"""  # noqa: E501
# nginx-rtmp, `application deny { live on; deny publish all; }`; also what a
# stream that ran for a while and lost its server (nginx stopped) ends with
DENY_PUBLISH = """\
av_interleaved_write_frame(): Broken pipe
Error writing trailer of rtmp://127.0.0.1:41935/deny/SECRETKEY: Broken pipe
Error closing file rtmp://127.0.0.1:41935/deny/SECRETKEY: Broken pipe"""
# the same, seen by a relay of `mqttrelay run` (tests/test_errors_live.py)
DENY_PUBLISH_RESET = """\
av_interleaved_write_frame(): Connection reset by peer
Error writing trailer of rtmp://127.0.0.1:41305/dest/SECRETKEY: Connection reset by peer
Error closing file rtmp://127.0.0.1:41305/dest/SECRETKEY: Broken pipe"""
# nginx-rtmp, an application it does not have
WRONG_APP = "rtmp://127.0.0.1:41935/wrongapp/SECRETKEY: Input/output error"
# nginx-rtmp, a second publisher on the same key
ALREADY_PUBLISHING = """\
[rtmp @ 0x5586a3a4d100] Server error: Already publishing
rtmp://127.0.0.1:41935/ok/SAME: Operation not permitted"""
# ffmpeg's own TLS against `openssl s_server -Verify 1 -verify_return_error` (TLS 1.3)
TLS_CERT_REQUIRED = """\
[tls @ 0x56333e470c00] A TLS fatal alert has been received.
[rtmps @ 0x56333e473140] Cannot read RTMP handshake response
rtmps://127.0.0.1:41443/x/SECRETKEY: Input/output error"""
# ffmpeg's own TLS against a server answering in plain text
TLS_NOT_TLS = """\
[tls @ 0x55adfe057c00] An unexpected TLS packet was received.
[rtmps @ 0x55adfe05a140] Cannot open connection tls://127.0.0.1:41445
rtmps://127.0.0.1:41445/x/SECRETKEY: Input/output error"""
# through the local stunnel (tls_tunnel.py): ffmpeg only sees its loopback end
# reset; stunnel's lines (debug = 4) say why
TUNNEL_FFMPEG = """\
[rtmp @ 0x563840703380] Cannot read RTMP handshake response
rtmp://127.0.0.1:41500/x/SECRETKEY: Connection reset by peer"""
STUNNEL_START = """\
2026.12.06 18:55:43 LOG3[ui]: No trusted certificates found
2026.12.06 18:55:43 LOG4[ui]: Service [rtmps] needs authentication to prevent MITM attacks"""
STUNNEL_ALERT = (
    "2026.12.06 18:55:43 LOG3[0]: SSL_read: ../ssl/record/rec_layer_s3.c:1601: "
    "error:0A00045C:SSL routines::tlsv13 alert certificate required"
)
STUNNEL_HANDSHAKE = (
    "2026.12.06 18:55:43 LOG3[0]: SSL_connect: ../ssl/record/rec_layer_s3.c:1601: "
    "error:0A000410:SSL routines::sslv3 alert handshake failure"
)
STUNNEL_PLAIN = (
    "2026.12.06 18:55:44 LOG3[0]: SSL_connect: ../ssl/record/ssl3_record.c:350: "
    "error:0A00010B:SSL routines::wrong version number"
)
STUNNEL_REFUSED = """\
2026.12.06 18:55:45 LOG3[0]: s_connect: connect 127.0.0.1:1: Connection refused (111)
2026.12.06 18:55:45 LOG3[0]: No more addresses to connect"""
STUNNEL_NXDOMAIN = """\
2026.12.06 18:55:45 LOG3[0]: Error resolving "nosuch.invalid": Neither nodename nor servname known (EAI_NONAME)
2026.12.06 18:55:45 LOG3[0]: No remote host resolved"""  # noqa: E501


def lines(*texts: str) -> list[str]:
    """As the relay keeps them: each line masked."""
    return [mask(line, [KEY]) for text in texts for line in text.splitlines()]


def url(base: str) -> str:
    return display_url(base, KEY)


def test_where_names_host_and_port_with_the_schemes_defaults() -> None:
    assert where(url("rtmp://live.example.com/app")) == "live.example.com:1935"
    assert where(url("rtmps://live.example.com/app")) == "live.example.com:443"
    assert where(url("rtmp://live.example.com:1936/app")) == "live.example.com:1936"
    assert where(url("srt://user:pw@[::1]:9000")) == "[::1]:9000"
    assert where(url("srt://host.example")) == "host.example"


def test_refused() -> None:
    error = exited(lines(REFUSED), 1, url("rtmp://127.0.0.1:1/x"))
    assert error == RelayError(
        "refused",
        "Can't reach 127.0.0.1:1 (connection refused)",
        "is the server address right?",
        "\n".join(lines(REFUSED)),
    )
    assert error.headline == (
        "Can't reach 127.0.0.1:1 (connection refused): is the server address right?"
    )
    assert error.detail.endswith("rtmp://127.0.0.1:1/x/****: Connection refused")


def test_name_not_found_and_no_dns() -> None:
    error = exited(lines(NXDOMAIN), 1, url("rtmp://nosuch.invalid/x"))
    assert (error.kind, error.reason) == ("dns", "Name not found: nosuch.invalid")
    assert error.hint == "is the server address right?"
    error = exited(lines(NO_DNS), 1, url("rtmp://nosuch.invalid/x"))
    assert error.kind == "dns"
    assert error.reason == "Can't look up nosuch.invalid (temporary failure in name resolution)"
    assert "online" in error.hint


def test_unreachable() -> None:
    error = exited(lines(UNREACHABLE), 1, url("rtmp://10.1.2.3/x"))
    assert (error.kind, error.reason) == (
        "unreachable",
        "Can't reach 10.1.2.3:1935 (network is unreachable)",
    )


@pytest.mark.parametrize("text", [DENY_PUBLISH, DENY_PUBLISH_RESET])
def test_closed_right_after_the_key_is_a_rejection_later_a_drop(text: str) -> None:
    assert exited(lines(text), 1, url("rtmp://127.0.0.1:41935/deny")).kind == "rejected"
    error = exited(lines(DENY_PUBLISH), 1, url("rtmp://127.0.0.1:41935/deny"), live_s=0.8)
    assert error.kind == "rejected"
    assert error.headline == (
        "The platform closed the connection right after the stream key was sent: "
        "check the stream key (TikTok keys change every broadcast)"
    )
    assert "/deny/****: Broken pipe" in error.detail and KEY not in error.detail
    error = exited(lines(DENY_PUBLISH), 1, url("rtmp://127.0.0.1:41935/deny"), DROPPED_AFTER_S)
    assert error.kind == "dropped"
    assert error.reason == "The platform closed the connection after 5 s of streaming"


def test_wrong_application_and_server_error_are_rejections() -> None:
    error = exited(lines(WRONG_APP), 1, url("rtmp://127.0.0.1:41935/wrongapp"))
    assert error.kind == "rejected" and "before the stream started" in error.reason
    error = exited(lines(ALREADY_PUBLISHING), 1, url("rtmp://127.0.0.1:41935/ok"))
    assert error.kind == "rejected"
    assert error.reason == "The platform refused the stream (Already publishing)"


@pytest.mark.parametrize(
    ("text", "what", "not_tls"),
    [
        (TLS_CERT_REQUIRED, "A TLS fatal alert has been received", False),
        (TLS_NOT_TLS, "An unexpected TLS packet was received", True),
    ],
)
def test_tls_with_ffmpegs_own_tls(text: str, what: str, not_tls: bool) -> None:
    error = exited(lines(text), 1, url("rtmps://127.0.0.1:41443/x"))
    assert error.kind == "tls"
    assert error.reason == f"TLS failed with 127.0.0.1:41443 ({what})"
    assert ("does not speak TLS" in error.hint) is not_tls


TLS_FAILED = "TLS failed with live.example.com:443"


@pytest.mark.parametrize(
    ("stunnel", "kind", "reason"),
    [
        (STUNNEL_ALERT, "tls", f"{TLS_FAILED} (tlsv13 alert certificate required)"),
        (STUNNEL_HANDSHAKE, "tls", f"{TLS_FAILED} (sslv3 alert handshake failure)"),
        (STUNNEL_PLAIN, "tls", f"{TLS_FAILED} (wrong version number)"),
        (STUNNEL_REFUSED, "refused", "Can't reach live.example.com:443 (connection refused)"),
        (STUNNEL_NXDOMAIN, "dns", "Name not found: nosuch.invalid"),
    ],
)  # fmt: skip
def test_through_the_tunnel_stunnels_lines_explain_the_reset(
    stunnel: str, kind: str, reason: str
) -> None:
    error = exited(
        lines(STUNNEL_START, stunnel, TUNNEL_FFMPEG), 1, url("rtmps://live.example.com/x")
    )
    assert (error.kind, error.reason) == (kind, reason)
    assert error.detail.endswith("rtmp://127.0.0.1:41500/x/****: Connection reset by peer")


def test_anything_else_keeps_ffmpegs_last_line() -> None:
    error = exited(lines(TUNNEL_FFMPEG), 1, url("rtmps://live.example.com/x"))
    assert error.kind == "ffmpeg"
    assert error.headline == (
        "ffmpeg exited with code 1: rtmp://127.0.0.1:41500/x/****: Connection reset by peer"
    )
    error = exited([], 255, url("rtmp://h/x"))
    assert (error.kind, error.headline, error.detail) == (
        "ffmpeg",
        "ffmpeg exited with code 255: no error output",
        "no error output",
    )


def test_the_relays_own_verdicts() -> None:
    error = timed_out(10, url("rtmps://live.example.com/x"))
    assert error.kind == "timeout"
    assert error.reason == "live.example.com:443 did not answer within 10 s"
    error = stalled(6, url("rtmp://live.example.com/x"))
    assert error.kind == "stalled" and error.reason.startswith("No output to live.example.com")
    error = other("cannot start ffmpeg: No such file or directory")
    assert (error.kind, error.headline) == ("ffmpeg", error.detail)


def test_detail_keeps_the_newest_lines_only() -> None:
    many = [f"line {i}" for i in range(30)] + lines(REFUSED)
    error = exited(many, 1, url("rtmp://127.0.0.1:1/x"))
    assert error.detail.splitlines() == many[-6:]


def test_the_readme_tells_every_kind() -> None:
    readme = (Path(__file__).resolve().parent.parent / "docs" / "http.md").read_text()
    for kind in get_args(ErrorKind):
        assert f"\n| `{kind}` |" in readme, kind
