"""Network namespaces for tests: a host with a LAN address that no traffic can
leave (an extra address on the namespace's own lo), and a "LAN" namespace joined
to it by a veth pair. Needs root and iproute2; everything is removed afterwards."""

from __future__ import annotations

import os
import secrets
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pytest

from .support import require_tool


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=20)


@dataclass(frozen=True)
class Namespace:
    name: str
    address: str

    def argv(self, *command: str) -> list[str]:
        """command, run inside this namespace."""
        return ["ip", "netns", "exec", self.name, *command]


@contextmanager
def host_and_lan(host_address: str = "10.253.0.2") -> Iterator[tuple[Namespace, Namespace]]:
    """(host, lan): the host has host_address on its lo; the lan namespace reaches
    it through a veth pair (10.253.1.2 -> 10.253.1.1)."""
    require_tool("ip")
    if os.geteuid() != 0:
        message = "network namespaces need root"
        pytest.fail(message) if os.environ.get("CI") else pytest.skip(message)
    tag = secrets.token_hex(3)
    host, lan = f"mqr-host-{tag}", f"mqr-lan-{tag}"
    veth_host, veth_lan = f"mqh{tag}", f"mql{tag}"
    try:
        _ip("netns", "add", host)
        _ip("netns", "add", lan)
        for ns in (host, lan):
            _ip("-n", ns, "link", "set", "lo", "up")
        _ip("-n", host, "addr", "add", f"{host_address}/32", "dev", "lo")
        _ip("link", "add", veth_host, "netns", host, "type", "veth", "peer", veth_lan, "netns", lan)
        _ip("-n", host, "addr", "add", "10.253.1.1/24", "dev", veth_host)
        _ip("-n", lan, "addr", "add", "10.253.1.2/24", "dev", veth_lan)
        _ip("-n", host, "link", "set", veth_host, "up")
        _ip("-n", lan, "link", "set", veth_lan, "up")
        _ip("-n", lan, "route", "add", f"{host_address}/32", "via", "10.253.1.1")
        yield Namespace(host, host_address), Namespace(lan, "10.253.1.2")
    finally:
        for ns in (host, lan):
            pids = subprocess.run(
                ["ip", "netns", "pids", ns], capture_output=True, text=True, timeout=10
            ).stdout.split()
            for pid in pids:
                subprocess.run(["kill", "-9", pid], capture_output=True, timeout=10)
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=10)


@contextmanager
def hosts_beside_this_one(count: int, net: str = "10.254") -> Iterator[list[Namespace]]:
    """count namespaces, each joined to this (root) namespace by a veth pair:
    this side <net>.<i>.1, theirs <net>.<i>.2 (the Namespace's address). Servers
    here reach them only through those addresses; nothing is routed further."""
    require_tool("ip")
    if os.geteuid() != 0:
        message = "network namespaces need root"
        pytest.fail(message) if os.environ.get("CI") else pytest.skip(message)
    tag = secrets.token_hex(3)
    made: list[Namespace] = []
    try:
        for i in range(1, count + 1):
            name, here, there = f"mqr-h{i}-{tag}", f"mqh{i}{tag}", f"mqn{i}{tag}"
            _ip("netns", "add", name)
            made.append(Namespace(name, f"{net}.{i}.2"))
            _ip("-n", name, "link", "set", "lo", "up")
            _ip("link", "add", here, "type", "veth", "peer", there, "netns", name)
            _ip("addr", "add", f"{net}.{i}.1/24", "dev", here)
            _ip("link", "set", here, "up")
            _ip("-n", name, "addr", "add", f"{net}.{i}.2/24", "dev", there)
            _ip("-n", name, "link", "set", there, "up")
        yield made
    finally:
        for ns in made:
            pids = subprocess.run(
                ["ip", "netns", "pids", ns.name], capture_output=True, text=True, timeout=10
            ).stdout.split()
            for pid in pids:
                subprocess.run(["kill", "-9", pid], capture_output=True, timeout=10)
            subprocess.run(["ip", "netns", "del", ns.name], capture_output=True, timeout=10)


def gateway(ns: Namespace) -> str:
    """This namespace's address as seen from ns."""
    return ns.address.rsplit(".", 1)[0] + ".1"
