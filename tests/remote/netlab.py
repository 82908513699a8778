"""Machines on one machine: network namespaces joined by veth pairs through a bridge.

``NetLab(["sup", "w1", "w2"])`` makes one namespace per name; the first
holds a bridge at 10.77.0.1/24 (the "supervisor's machine"), every other is
joined to it by its own veth pair at 10.77.0.<2+i>. The bridge port of a
namespace can be cut (``cut``) and restored, and its link impaired
(``impair``: ``tc netem`` delay and loss on both ends of its veth pair).
A namespace listed in ``relayed`` is joined by two TAP devices and the
userspace relay of ``wire_relay.py`` instead of a veth pair: the same delay
and loss per packet, for kernels without netem (and the same ``cut``).
Everything is removed by :meth:`close` (the namespaces take their veth
ends with them), also after a failure; names carry this process's pid, so
labs of concurrent runs never collide and a lab left by a killed run is
found and removed by the next (:func:`prune`).

Needs root (``ip netns``); :func:`unavailable` says why a lab cannot be
made here, for a test's skip reason.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from collections.abc import Collection, Sequence
from pathlib import Path

__all__ = ["NetLab", "netem_unavailable", "prune", "unavailable"]

SUBNET = "10.77.0"
_PREFIX = "vat"


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check,
                          timeout=20)


def unavailable() -> str | None:
    """Why network namespaces cannot be made here, or None if they can."""
    if shutil.which("ip") is None:
        return "`ip` (iproute2) is not installed; scripts/bootstrap.sh installs it"
    if os.geteuid() != 0:
        return "network namespaces need root (ip netns add)"
    name = f"{_PREFIX}probe{os.getpid()}"
    made = _ip("netns", "add", name, check=False)
    if made.returncode != 0:
        return f"the kernel refuses network namespaces: {made.stderr.strip()}"
    try:
        veth = _ip("link", "add", f"{name[:10]}a", "type", "veth", "peer", "name",
                   f"{name[:10]}b", check=False)
        if veth.returncode != 0:
            return f"the kernel refuses veth pairs: {veth.stderr.strip()}"
        _ip("link", "del", f"{name[:10]}a", check=False)
    finally:
        _ip("netns", "del", name, check=False)
    return None


def netem_unavailable() -> str | None:
    """Why ``tc qdisc ... netem`` cannot be used here, or None if it can."""
    if shutil.which("tc") is None:
        return "`tc` (iproute2) is not installed; scripts/bootstrap.sh installs it"
    name = f"{_PREFIX}nq{os.getpid() % 100000}"
    if _ip("link", "add", name, "type", "veth", "peer", "name", f"{name}b",
           check=False).returncode != 0:
        return "cannot create a veth pair to probe netem"
    try:
        probe = subprocess.run(["tc", "qdisc", "add", "dev", name, "root", "netem", "delay",
                                "1ms"], capture_output=True, text=True, timeout=10)
        if probe.returncode != 0:
            return (f"this kernel has no netem qdisc (sch_netem): `tc qdisc add ... netem` "
                    f"answers {probe.stderr.strip()!r}")
        return None
    finally:
        _ip("link", "del", name, check=False)


def prune() -> None:
    """Remove namespaces of labs whose process is gone."""
    listed = _ip("netns", "list", check=False).stdout.split()
    for name in listed:
        if not name.startswith(_PREFIX) or "-" not in name:
            continue
        pid = name[len(_PREFIX):].partition("-")[0]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            _ip("netns", "del", name, check=False)


class NetLab:
    """Namespaces joined through a bridge in the first one (see the module docstring)."""

    _serial = 0

    def __init__(self, names: Sequence[str], relayed: Collection[str] = ()) -> None:
        if len(names) < 2:
            raise ValueError("a lab needs at least two namespaces")
        prune()
        NetLab._serial += 1
        self.serial = NetLab._serial % 10
        self.tag = f"{_PREFIX}{os.getpid()}-{self.serial}"
        self.names = list(names)
        self.ns = {n: f"{self.tag}-{n}" for n in names}
        self.address = {n: f"{SUBNET}.{i + 1}" for i, n in enumerate(names)}
        self._ports: dict[str, tuple[str, str]] = {}
        self._made: list[str] = []
        self._relayed = set(relayed)
        self._relays: dict[str, subprocess.Popen[str]] = {}
        try:
            self._build()
        except BaseException:
            self.close()
            raise

    def _build(self) -> None:
        hub = self.names[0]
        for name in self.names:
            _ip("netns", "add", self.ns[name])
            self._made.append(self.ns[name])
            _ip("-n", self.ns[name], "link", "set", "lo", "up")
        _ip("-n", self.ns[hub], "link", "add", "br0", "type", "bridge")
        _ip("-n", self.ns[hub], "addr", "add", f"{self.address[hub]}/24", "dev", "br0")
        _ip("-n", self.ns[hub], "link", "set", "br0", "up")
        for i, name in enumerate(self.names[1:], start=1):
            # Interface names: at most 15 characters, unique in the root namespace.
            stem = f"v{os.getpid() % 100000}{self.serial}"
            host, peer = f"{stem}h{i}", f"{stem}p{i}"
            if name in self._relayed:
                self._relay(name, host, peer)
            else:
                _ip("link", "add", host, "type", "veth", "peer", "name", peer)
            _ip("link", "set", host, "netns", self.ns[hub])
            _ip("link", "set", peer, "netns", self.ns[name])
            _ip("-n", self.ns[hub], "link", "set", host, "master", "br0", "up")
            _ip("-n", self.ns[name], "addr", "add", f"{self.address[name]}/24", "dev", peer)
            _ip("-n", self.ns[name], "link", "set", peer, "up")
            self._ports[name] = (host, peer)

    def _relay(self, name: str, host: str, peer: str) -> None:
        relay = subprocess.Popen([sys.executable, str(Path(__file__).with_name("wire_relay.py")),
                                  host, peer], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                 text=True)
        self._relays[name] = relay
        assert relay.stdout is not None
        line = relay.stdout.readline()
        if line.strip() != "ready":
            raise RuntimeError(f"the wire relay for {name} did not start ({line!r})")

    def argv(self, name: str, command: Sequence[str]) -> list[str]:
        """``command`` run inside namespace ``name``."""
        return ["ip", "netns", "exec", self.ns[name], *command]

    def cut(self, name: str) -> None:
        """Take the link of ``name`` down (its bridge port on the hub's side)."""
        _ip("-n", self.ns[self.names[0]], "link", "set", self._ports[name][0], "down")

    def restore(self, name: str) -> None:
        """Bring the link of ``name`` back."""
        _ip("-n", self.ns[self.names[0]], "link", "set", self._ports[name][0], "up")

    def impair(self, name: str, delay_ms: float, loss_percent: float) -> None:
        """``tc netem delay D loss L`` on both ends of the link of ``name`` (or its relay)."""
        relay = self._relays.get(name)
        if relay is not None:
            self._tell(relay, f"delay {delay_ms:g} loss {loss_percent:g}")
            return
        host, peer = self._ports[name]
        for ns, dev in ((self.ns[self.names[0]], host), (self.ns[name], peer)):
            subprocess.run(["tc", "-n", ns, "qdisc", "replace", "dev", dev, "root", "netem",
                            "delay", f"{delay_ms:g}ms", "loss", f"{loss_percent:g}%"],
                           check=True, capture_output=True, text=True, timeout=10)

    def unimpair(self, name: str) -> None:
        """Remove the impairment of ``name``'s link."""
        relay = self._relays.get(name)
        if relay is not None:
            self._tell(relay, "delay 0 loss 0")
            return
        host, peer = self._ports[name]
        for ns, dev in ((self.ns[self.names[0]], host), (self.ns[name], peer)):
            subprocess.run(["tc", "-n", ns, "qdisc", "del", "dev", dev, "root"],
                           capture_output=True, text=True, timeout=10)

    @staticmethod
    def _tell(relay: subprocess.Popen[str], line: str) -> None:
        assert relay.stdin is not None and relay.stdout is not None
        relay.stdin.write(line + "\n")
        relay.stdin.flush()
        relay.stdout.readline()  # the relay confirms

    def close(self) -> None:
        """Remove every namespace (and with them the veth pairs and the bridge)."""
        for relay in self._relays.values():
            with contextlib.suppress(OSError, ValueError):
                assert relay.stdin is not None
                relay.stdin.close()
            try:
                relay.wait(5)
            except subprocess.TimeoutExpired:
                relay.kill()
                relay.wait(5)
        self._relays.clear()
        for ns in reversed(self._made):
            with contextlib.suppress(subprocess.SubprocessError, OSError):
                _ip("netns", "del", ns, check=False)
        self._made.clear()

    def __enter__(self) -> NetLab:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
