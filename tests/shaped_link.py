"""Platforms behind a slow link: each an nginx-rtmp server in its own network
namespace, reached from this (root) namespace over two veth pairs:

- the data link, which relays push to: its egress on this side is shaped with
  `tc ... tbf` (rate, burst, queue), changed or removed at run time;
- the control link, never shaped: the stat page and viewers, so measuring the
  platform neither waits behind nor takes from the shaped data.

Only the namespaces made here and their veth addresses are used; the address
block is 10.<N>.0.0/16 with N chosen from this process's id and checked to be
unused here, namespace and device names carry the pid, and everything is
removed afterwards, whatever happened. Needs root, iproute2 and tc."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from mqttrelay.ingest.nginx.conf import RTMP_MODULE, NginxSettings, render_nginx_conf

from .support import NginxRtmp, require_tool

RTMP_PORT, HTTP_PORT = 1935, 8080  # each namespace has its own ports

# tbf: the bucket holds 10 full-size frames. Smaller than rate/HZ (500 bytes at
# 1 Mbit/s with HZ=250) the link could not reach its rate; larger lets bursts
# through at veth speed. 15 kB is 0.12 s of 1 Mbit/s, so the rate holds over
# any window longer than that (0.97 Mbit/s measured for a bulk TCP sender).
TBF_BURST_BYTES = 15000
# The queue holds 100 ms of the rate on top of the burst, like a modest home
# uplink: a deeper one only adds delay the sender's TCP sees as round-trip
# time, a much shallower one makes CUBIC lose throughput to drops.
TBF_LATENCY_MS = 100


def _run(*argv: str) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=20)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {done.stderr.strip()}")


def tbf_argv(device: str, rate_kbit: int) -> list[str]:
    """Shape device's egress to rate_kbit (replaces any shaping there)."""
    return [
        "tc", "qdisc", "replace", "dev", device, "root", "tbf", "rate", f"{rate_kbit}kbit",
        "burst", str(TBF_BURST_BYTES), "latency", f"{TBF_LATENCY_MS}ms",
    ]  # fmt: skip


def used_second_octets() -> set[int]:
    """N of every 10.N.x.y address in this namespace."""
    out = subprocess.run(
        ["ip", "-o", "-4", "addr", "show"], capture_output=True, text=True, timeout=10
    ).stdout
    used = set()
    for line in out.splitlines():
        words = line.split()
        if "inet" in words:
            address = words[words.index("inet") + 1]
            octets = address.split("/")[0].split(".")
            if octets[0] == "10":
                used.add(int(octets[1]))
    return used


def pick_block(pid: int, used: set[int]) -> int:
    """A second octet for 10.N.0.0/16 from the pid, skipping those in use
    (tests/netns.py takes 10.253 and 10.254)."""
    first = 100 + pid % 100
    for step in range(100):
        n = 100 + (first - 100 + step) % 100
        if n not in used:
            return n
    raise RuntimeError("no free 10.N.0.0/16 block between 10.100 and 10.199")


@dataclass
class ShapedPlatform(NginxRtmp):
    """An nginx-rtmp "platform" in namespace `ns`: relays push to `address`
    (over the shaped link), the stat page and viewers use `control`."""

    ns: str = ""
    address: str = ""
    control: str = ""
    device: str = ""  # this side of the data link: where tbf sits
    rate_kbit: int | None = None  # None: not shaped

    def url(self, name: str) -> str:
        return f"rtmp://{self.address}:{self.rtmp_port}/{self.app}/{name}"

    def viewer_url(self, name: str) -> str:
        return f"rtmp://{self.control}:{self.rtmp_port}/{self.app}/{name}"

    @property
    def stat_url(self) -> str:
        return f"http://{self.control}:{self.http_port}/stat"

    def shape(self, rate_kbit: int) -> None:
        _run(*tbf_argv(self.device, rate_kbit))
        self.rate_kbit = rate_kbit

    def unshape(self) -> None:
        if self.rate_kbit is not None:
            _run("tc", "qdisc", "del", "dev", self.device, "root")
            self.rate_kbit = None

    def qdisc_stats(self) -> str:
        """tc's counters for the data link (sent, dropped, overlimits, backlog)."""
        return subprocess.run(
            ["tc", "-s", "qdisc", "show", "dev", self.device],
            capture_output=True, text=True, timeout=10,
        ).stdout.strip()  # fmt: skip


def _wait_tcp(host: str, port: int, deadline_s: float = 15.0) -> None:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        with socket.socket() as sock:
            sock.settimeout(1)
            if sock.connect_ex((host, port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {host}:{port}")


def _platform_conf(prefix: Path, data_peer: str, control_peer: str, control: str) -> str:
    settings = NginxSettings(
        prefix=str(prefix), rtmp_port=RTMP_PORT, http_port=HTTP_PORT, app="dest",
        listen_host="0.0.0.0",  # inside the namespace: its two veth addresses only
        fast_start=False, publish_from=(data_peer,), play_from=(control_peer, data_peer),
        run_as_root=os.geteuid() == 0,
    )  # fmt: skip
    return render_nginx_conf(settings).replace(
        f"listen 127.0.0.1:{HTTP_PORT};", f"listen {control}:{HTTP_PORT};", 1
    )


def _remove(ns: str, devices: list[str]) -> None:
    for device in devices:  # one end of a veth pair takes the other with it
        subprocess.run(["ip", "link", "del", device], capture_output=True, timeout=10)
    pids = subprocess.run(
        ["ip", "netns", "pids", ns], capture_output=True, text=True, timeout=10
    ).stdout.split()
    for pid in pids:  # only what runs inside the namespace made here
        subprocess.run(["kill", "-9", pid], capture_output=True, timeout=10)
    subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=10)


@contextmanager
def shaped_platforms(folder: Path, count: int) -> Iterator[list[ShapedPlatform]]:
    """count platforms, not shaped yet (call shape()); gone afterwards."""
    require_tool("ip")
    require_tool("tc")
    nginx = require_tool("nginx")
    if os.geteuid() != 0:
        message = "network namespaces and tc need root"
        pytest.fail(message) if os.environ.get("CI") else pytest.skip(message)
    if not Path(RTMP_MODULE).exists():
        message = f"{RTMP_MODULE} missing (install libnginx-mod-rtmp)"
        pytest.fail(message) if os.environ.get("CI") else pytest.skip(message)
    pid = os.getpid()
    block = pick_block(pid, used_second_octets())
    made: list[tuple[str, list[str]]] = []  # (namespace, devices here)
    platforms: list[ShapedPlatform] = []
    try:
        for i in range(1, count + 1):
            ns = f"mqr-sl{pid}-{i}"
            data, ctl = f"sl{pid}d{i}", f"sl{pid}c{i}"  # under 16 characters
            data_peer, control_peer = f"10.{block}.{2 * i}.1", f"10.{block}.{2 * i + 1}.1"
            address, control = f"10.{block}.{2 * i}.2", f"10.{block}.{2 * i + 1}.2"
            _run("ip", "netns", "add", ns)
            made.append((ns, [data, ctl]))
            _run("ip", "-n", ns, "link", "set", "lo", "up")
            for here, there, mine, theirs in (
                (data, f"{data}n", data_peer, address),
                (ctl, f"{ctl}n", control_peer, control),
            ):
                _run("ip", "link", "add", here, "type", "veth", "peer", there, "netns", ns)
                _run("ip", "addr", "add", f"{mine}/24", "dev", here)
                _run("ip", "link", "set", here, "up")
                _run("ip", "-n", ns, "addr", "add", f"{theirs}/24", "dev", there)
                _run("ip", "-n", ns, "link", "set", there, "up")
            prefix = folder / f"platform{i}"
            prefix.mkdir(parents=True, exist_ok=True)
            conf = prefix / "nginx.conf"
            conf.write_text(_platform_conf(prefix, data_peer, control_peer, control))
            proc = subprocess.Popen(
                ["ip", "netns", "exec", ns, nginx, "-p", str(prefix), "-c", str(conf)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            platform = ShapedPlatform(
                RTMP_PORT, HTTP_PORT, "dest", proc, prefix, True,
                ns=ns, address=address, control=control, device=data,
            )  # fmt: skip
            platforms.append(platform)
            try:
                _wait_tcp(address, RTMP_PORT)
                _wait_tcp(control, HTTP_PORT)
            except TimeoutError:
                log = prefix / "error.log"
                message = log.read_text() if log.exists() else "nginx did not start"
                raise RuntimeError(message) from None
        yield platforms
    finally:
        for platform in platforms:
            platform.stop()
        for ns, devices in made:
            _remove(ns, devices)
