"""A network of simulated hosts on this machine: Linux network namespaces joined by veth links.

    hub namespace:   bridge br0, 10.77.0.1/24 (the relay listens here: Redis, PostgreSQL, provider)
    host namespaces: eth0 10.77.0.11, .12, ... each a veth link whose other end is on br0

Nothing is added to the machine's own namespace: every address lives in a namespace this
module made, so the network is private to one run, and several runs can coexist (each has its
own hub). Names carry the pid of the process that made them; ``remove_leftovers`` deletes the
networks of processes that are gone (a crashed run). Cutting a host sets its eth0 down: its
open connections hang as on a pulled cable, the other hosts keep working.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass

PREFIX = "llmd-fleet"
HUB_ADDRESS = "10.77.0.1"
_NAME = re.compile(rf"^{PREFIX}-(\d+)-")


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check)


@dataclass(frozen=True)
class Host:
    name: str  # also its hostname, so workers' ids and the workers table name it
    netns: str
    address: str

    def command(self, argv: list[str]) -> list[str]:
        """``argv`` run inside this host: its network namespace and its own hostname."""
        return ["ip", "netns", "exec", self.netns, "unshare", "--uts",
                "sh", "-c", 'hostname "$0" && exec "$@"', self.name, *argv]


class FleetNetwork:
    """The hub and ``hosts`` host namespaces of one run; ``setup``, ``cut``, ``teardown``."""

    def __init__(self, hosts: int = 3, tag: str | None = None):
        self.tag = f"{PREFIX}-{tag or os.getpid()}"  # the owner's pid: see remove_leftovers
        self.hub = f"{self.tag}-hub"
        self.hosts = [Host(f"host{i}", f"{self.tag}-host{i}", f"10.77.0.{10 + i}") for i in range(1, hosts + 1)]

    def host(self, name: str) -> Host:
        return next(host for host in self.hosts if host.name == name)

    def setup(self) -> None:
        self.teardown()
        ip("netns", "add", self.hub)
        ip("-n", self.hub, "link", "set", "lo", "up")
        ip("-n", self.hub, "link", "add", "br0", "type", "bridge")
        ip("-n", self.hub, "addr", "add", f"{HUB_ADDRESS}/24", "dev", "br0")
        ip("-n", self.hub, "link", "set", "br0", "up")
        for host in self.hosts:
            ip("netns", "add", host.netns)
            ip("-n", host.netns, "link", "set", "lo", "up")
            ip("-n", self.hub, "link", "add", host.name, "type", "veth", "peer", "name", "eth0", "netns", host.netns)
            ip("-n", self.hub, "link", "set", host.name, "master", "br0", "up")
            ip("-n", host.netns, "addr", "add", f"{host.address}/24", "dev", "eth0")
            ip("-n", host.netns, "link", "set", "eth0", "up")

    def cut(self, name: str) -> None:
        ip("-n", self.host(name).netns, "link", "set", "eth0", "down")

    def restore(self, name: str) -> None:
        ip("-n", self.host(name).netns, "link", "set", "eth0", "up")

    def kill_processes(self, name: str) -> None:
        """SIGKILL what runs on the host (the fleet run's workers): a machine lost for good."""
        kill_all_in(self.host(name).netns, (signal.SIGKILL,))

    def teardown(self) -> None:
        """Kill what runs in this run's namespaces and delete them; safe to call again."""
        for netns in [self.hub, *(host.netns for host in self.hosts)]:
            remove_netns(netns)


def existing_netns() -> list[str]:
    listed = ip("netns", "list", check=False).stdout
    return [line.split()[0] for line in listed.splitlines() if line.strip()]


def kill_all_in(netns: str, signals: tuple[int, ...] = (signal.SIGTERM, signal.SIGKILL)) -> None:
    """Signal every process inside ``netns`` (ones a fleet run started there), by pid; each
    signal is given 5 s to work before the next."""
    for sig in signals:
        pids = [int(pid) for pid in ip("netns", "pids", netns, check=False).stdout.split()]
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 5
        while pids and time.monotonic() < deadline and ip("netns", "pids", netns, check=False).stdout.split():
            time.sleep(0.1)


def remove_netns(netns: str) -> None:
    """Stop the processes inside ``netns``, then delete it."""
    if netns in existing_netns():
        kill_all_in(netns)
        ip("netns", "del", netns, check=False)


def remove_leftovers() -> list[str]:
    """Delete the fleet networks whose owner process is gone; returns their names."""
    removed = []
    for netns in existing_netns():
        match = _NAME.match(netns)
        if match and not os.path.exists(f"/proc/{match.group(1)}"):
            remove_netns(netns)
            removed.append(netns)
    return removed


def unavailable_reason() -> str | None:
    """Why a namespace fleet cannot run here, or None when it can."""
    if os.geteuid() != 0:
        return f"network namespaces need root (running as uid {os.geteuid()})"
    for tool, package in (("ip", "iproute2"), ("unshare", "util-linux")):
        if shutil.which(tool) is None:
            return f"the `{tool}` command is not installed (package {package})"
    probe = f"{PREFIX}-{os.getpid()}-probe"
    try:
        made = ip("netns", "add", probe, check=False)
        if made.returncode != 0:
            return f"`ip netns add` fails here: {made.stderr.strip()}"
        for step in (("link", "add", "br0", "type", "bridge"),
                     ("link", "add", "a0", "type", "veth", "peer", "name", "b0")):
            done = ip("-n", probe, *step, check=False)
            if done.returncode != 0:
                return f"`ip link add ... type {step[4]}` fails in a namespace: {done.stderr.strip()}"
    finally:
        ip("netns", "del", probe, check=False)
    return None
