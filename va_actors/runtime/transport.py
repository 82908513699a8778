"""Transports: ipc on one machine, tcp with CurveZMQ between machines.

Every socket the runtime binds or connects goes through one :class:`Transport`
(one per ZeroMQ context), so the rules live here and nowhere else:

* ``ipc://`` (the run directory, mode 0700) and ``inproc://`` are used as
  they are: the file system already keeps other users out.
* ``tcp://`` always uses CurveZMQ: the binding side is the Curve server (this
  machine's key pair), the connecting side a Curve client that must know the
  server's public key (:attr:`TransportSpec.peers`, by host). A ZAP
  authenticator (``zmq.auth``'s thread authenticator, so a plugin blocking
  its loop never stalls a handshake) accepts only the public keys in
  :attr:`TransportSpec.allow`. An unknown key, a plaintext peer or a peer
  with the wrong server key is refused during the handshake: it delivers
  nothing, and a socket monitor counts it (:attr:`Transport.refused`), which
  heartbeats and ``va-launch status`` report.
* Plaintext tcp only with ``insecure = true`` and loopback addresses.

Link settings for tcp (docs/runtime.md, "Transport"): ZMTP heartbeats every
second, a peer silent for 3 s is dropped (:data:`HEARTBEAT_TIMEOUT_MS`),
which also drops what was queued for it, so a cut link never delivers
seconds-old media when it comes back; reconnects start after 100 ms and back
off to 2 s; connecting PUSH and DEALER sockets set ``ZMQ_IMMEDIATE``, so
nothing is queued for a peer that is not connected (a send fails at once and
is counted).

Keys: z85 certificate files (``zmq.auth.create_certificates``: ``NAME.key``
public, ``NAME.key_secret`` secret, mode 0600), or the environment
(:data:`ENV_SECRET_KEY`, :data:`ENV_KEY_FILE`). A secret key is never
written to a spec, a manifest or a log.
"""

from __future__ import annotations

import contextlib
import enum
import ipaddress
import logging
import os
import threading
import time
import weakref
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator
from zmq.utils import z85
from zmq.utils.monitor import parse_monitor_message

__all__ = [
    "ENV_KEY_FILE",
    "ENV_SECRET_KEY",
    "HEARTBEAT_IVL_MS",
    "HEARTBEAT_TIMEOUT_MS",
    "RECONNECT_IVL_MAX_MS",
    "RECONNECT_IVL_MS",
    "EndpointKind",
    "KeyPair",
    "Transport",
    "TransportError",
    "TransportSpec",
    "create_keypair",
    "endpoint_host",
    "endpoint_kind",
    "endpoint_port",
    "is_loopback",
    "keypair_from_env",
    "load_keypair",
    "public_keys",
    "tcp_endpoint",
]

logger = logging.getLogger("va_actors.runtime.transport")

ENV_SECRET_KEY = "VA_CURVE_SECRET_KEY"
"""z85 secret key of this machine (the public key is derived from it)."""
ENV_KEY_FILE = "VA_CURVE_KEY_FILE"
"""Path of this machine's secret certificate file (``NAME.key_secret``)."""

HEARTBEAT_IVL_MS = 1000
"""A ZMTP PING on every tcp connection each second (also keeps NAT and conntrack open)."""
HEARTBEAT_TIMEOUT_MS = 3000
"""No traffic for 3 s: the connection is dropped with what was queued on it."""
HEARTBEAT_TTL_MS = 3000
"""Asks the peer to drop us after 3 s of silence too (both ends agree)."""
RECONNECT_IVL_MS = 100
"""First reconnect attempt after a drop."""
RECONNECT_IVL_MAX_MS = 2000
"""Reconnect backoff cap: a restored link is used again within about 2 s."""
HANDSHAKE_IVL_MS = 5000
"""A tcp handshake not finished in 5 s is abandoned (default 30 s)."""

_KEY_CHARS = 40
"""A z85 Curve key is 40 characters (32 bytes)."""

_MONITOR_EVENTS = (zmq.EVENT_HANDSHAKE_FAILED_AUTH | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
                   | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL)


_FAILURES = {zmq.EVENT_HANDSHAKE_FAILED_AUTH: "auth",
             zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL: "protocol",
             zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL: "other"}


_QUEUEING = frozenset({zmq.PUSH, zmq.DEALER, zmq.REQ})
"""Connecting sockets that would queue sends for a peer that is not there. Not SUB:
with ZMQ_IMMEDIATE a SUB never sends its subscriptions (libzmq 4.3)."""


class TransportError(ValueError):
    """An endpoint, key or security setting is wrong; the message names it."""


class EndpointKind(enum.StrEnum):
    """How an endpoint is reached."""

    IPC = "ipc"
    TCP = "tcp"
    INPROC = "inproc"


def endpoint_kind(endpoint: str) -> EndpointKind:
    """The kind of ``endpoint``; TransportError for any other scheme."""
    scheme, sep, _ = endpoint.partition("://")
    try:
        if not sep:
            raise ValueError
        return EndpointKind(scheme)
    except ValueError:
        raise TransportError(f"endpoint {endpoint!r}: expected ipc://PATH or tcp://HOST:PORT"
                             ) from None


def _split_tcp(endpoint: str) -> tuple[str, str]:
    if endpoint_kind(endpoint) is not EndpointKind.TCP:
        raise TransportError(f"endpoint {endpoint!r} is not a tcp endpoint")
    rest = endpoint.partition("://")[2]
    host, colon, port = rest.rpartition(":")
    if not colon or not host or not port:
        raise TransportError(f"endpoint {endpoint!r}: expected tcp://HOST:PORT")
    return host.strip("[]"), port


def endpoint_host(endpoint: str) -> str:
    """The host of ``tcp://HOST:PORT`` (brackets of an IPv6 address removed)."""
    return _split_tcp(endpoint)[0]


def endpoint_port(endpoint: str) -> int:
    """The port of ``tcp://HOST:PORT``; TransportError if it is not a number."""
    port = _split_tcp(endpoint)[1]
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise TransportError(f"endpoint {endpoint!r}: port {port!r} is not in 1..65535")
    return int(port)


def tcp_endpoint(host: str, port: int) -> str:
    """``tcp://host:port`` (an IPv6 address in brackets)."""
    return f"tcp://[{host}]:{port}" if ":" in host else f"tcp://{host}:{port}"


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and the loopback networks (127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# -- keys ----------------------------------------------------------------------------
@dataclass(frozen=True)
class KeyPair:
    """A Curve key pair as z85 text; the secret never appears in a repr."""

    public: str
    secret: str = field(repr=False)


def check_key(text: str, what: str) -> str:
    """``text`` if it is a z85 Curve key (40 characters), else TransportError."""
    if not isinstance(text, str) or len(text) != _KEY_CHARS:
        raise TransportError(f"{what}: a Curve key is {_KEY_CHARS} z85 characters, got "
                             f"{len(text) if isinstance(text, str) else type(text).__name__}")
    try:
        z85.decode(text.encode("ascii"))
    except (ValueError, UnicodeError, KeyError):
        raise TransportError(f"{what}: not a z85 Curve key") from None
    return text


def load_keypair(path: str | os.PathLike[str]) -> KeyPair:
    """The key pair in a secret certificate file (``NAME.key_secret``).

    Raises:
        TransportError: the file is missing, unreadable or holds no secret key.
    """
    where = str(path)
    try:
        public, secret = zmq.auth.load_certificate(where)
    except (OSError, ValueError) as exc:
        raise TransportError(f"cannot read Curve key file {where}: {exc}") from None
    if not secret:
        raise TransportError(f"Curve key file {where} holds no secret key (a public .key "
                             "file? give NAME.key_secret)")
    return KeyPair(public.decode("ascii"), secret.decode("ascii"))


def keypair_from_env(environ: Mapping[str, str] | None = None) -> KeyPair | None:
    """This machine's key pair from :data:`ENV_SECRET_KEY` or :data:`ENV_KEY_FILE`, if set."""
    env = os.environ if environ is None else environ
    secret = env.get(ENV_SECRET_KEY, "").strip()
    if secret:
        check_key(secret, f"${ENV_SECRET_KEY}")
        public = zmq.curve_public(secret.encode("ascii")).decode("ascii")
        return KeyPair(public, secret)
    path = env.get(ENV_KEY_FILE, "").strip()
    return load_keypair(path) if path else None


def key_env(keys: KeyPair) -> dict[str, str]:
    """The environment that hands ``keys`` to a child process (never logged)."""
    return {ENV_SECRET_KEY: keys.secret}


def create_keypair(directory: str | os.PathLike[str], name: str) -> tuple[Path, Path]:
    """Write ``NAME.key`` and ``NAME.key_secret`` (mode 0600) into ``directory``.

    Returns:
        The public and the secret certificate paths.
    Raises:
        TransportError: the files exist already (keys are never overwritten).
    """
    folder = Path(directory)
    public, secret = folder / f"{name}.key", folder / f"{name}.key_secret"
    for path in (public, secret):
        if path.exists():
            raise TransportError(f"{path} exists; keys are never overwritten (remove it or "
                                 "pick another name)")
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    old = os.umask(0o077)
    try:
        made_public, made_secret = zmq.auth.create_certificates(folder, name)
    finally:
        os.umask(old)
    Path(made_secret).chmod(0o600)
    return Path(made_public), Path(made_secret)


def public_keys(source: str) -> list[str]:
    """Public keys named by ``source``: a z85 key, a ``.key`` file, or a directory of them.

    Raises:
        TransportError: nothing usable there.
    """
    text = source.strip()
    if len(text) == _KEY_CHARS and not os.path.exists(text):
        return [check_key(text, "public key")]
    path = Path(os.path.expanduser(text))
    files = sorted(path.glob("*.key")) if path.is_dir() else [path]
    keys: list[str] = []
    for file in files:
        try:
            public, _ = zmq.auth.load_certificate(str(file))
        except (OSError, ValueError) as exc:
            raise TransportError(f"cannot read public key file {file}: {exc}") from None
        keys.append(public.decode("ascii"))
    if not keys:
        raise TransportError(f"no public keys in {text} (expected a z85 key, a NAME.key file "
                             "or a directory of them)")
    return keys


# -- what a process is told ----------------------------------------------------------
@dataclass(frozen=True)
class TransportSpec:
    """The public half of a process's transport settings (part of its spec).

    Attributes:
        insecure: plaintext tcp (only to and on loopback addresses).
        allow: client public keys this process's tcp servers accept.
        peers: tcp host -> the public key of the machine that binds there.
    """

    insecure: bool = False
    allow: tuple[str, ...] = ()
    peers: Mapping[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON data."""
        return {"insecure": self.insecure, "allow": list(self.allow),
                "peers": dict(self.peers)}

    @classmethod
    def from_dict(cls, data: object, where: str = "transport") -> TransportSpec:
        """Parse :meth:`to_dict` output; TransportError naming ``where`` when it is wrong."""
        if not isinstance(data, Mapping) or set(data) - {"insecure", "allow", "peers"}:
            raise TransportError(f"{where}: expected an object with insecure, allow, peers")
        insecure, allow, peers = (data.get("insecure", False), data.get("allow", []),
                                  data.get("peers", {}))
        if not isinstance(insecure, bool) or not isinstance(allow, list) or \
                not isinstance(peers, Mapping):
            raise TransportError(f"{where}: insecure must be a bool, allow a list, peers a map")
        return cls(insecure, tuple(check_key(k, f"{where}.allow") for k in allow),
                   {str(h): check_key(k, f"{where}.peers[{h}]") for h, k in peers.items()})


# -- the authenticator ----------------------------------------------------------------
@dataclass
class Refusals:
    """Peers refused during the tcp handshake, by reason, and the last one seen."""

    counts: dict[str, int] = field(default_factory=dict)
    last_key: str | None = None
    last_address: str | None = None
    last_endpoint: str | None = None
    last_at: float | None = None

    def add(self, reason: str) -> None:
        self.counts[reason] = self.counts.get(reason, 0) + 1
        self.last_at = time.time()

    @property
    def total(self) -> int:
        """Every refusal."""
        return sum(self.counts.values())

    def snapshot(self) -> dict[str, Any]:
        """JSON data for heartbeats and metrics (public keys only, never a secret)."""
        return {"counts": dict(self.counts), "total": self.total, "last_key": self.last_key,
                "last_address": self.last_address, "last_endpoint": self.last_endpoint,
                "last_at": self.last_at}


class _Gatekeeper(ThreadAuthenticator):
    """ZAP in its own thread: accepts the allowed keys, remembers who was turned away."""

    def __init__(self, context: zmq.Context[Any], allow: Iterable[str],
                 refusals: Refusals, lock: threading.Lock) -> None:
        super().__init__(context, log=logging.getLogger("va_actors.runtime.transport.zap"))
        self._allow = {k.encode("ascii") for k in allow}
        self._refusals = refusals
        self._lock = lock
        self._address = ""

    def callback(self, domain: str, key: bytes) -> bool:
        """The credentials provider: is this client key allowed?"""
        if key in self._allow:
            return True
        with self._lock:
            self._refusals.last_key = key.decode("ascii", "replace")
            self._refusals.last_address = self._address
        return False

    async def handle_zap_message(self, msg: list[bytes]) -> None:
        if len(msg) > 3:  # [version, request id, domain, address, ...]
            self._address = msg[3].decode("utf-8", "replace")
        await super().handle_zap_message(msg)


# -- one context's transport -----------------------------------------------------------
class Transport:
    """Binds and connects the sockets of one ZeroMQ context by the rules above.

    Args:
        ctx: the context (sync or asyncio) whose sockets this handles.
        spec: allowed keys, peers' keys, insecure; None: ipc only.
        keys: this machine's key pair (needed for Curve over tcp).

    Use from one thread (the one that owns the context's sockets); the
    authenticator runs in a thread of its own.
    """

    def __init__(self, ctx: zmq.Context[Any], spec: TransportSpec | None = None,
                 keys: KeyPair | None = None) -> None:
        self.spec = spec or TransportSpec()
        self.keys = keys
        self.refused = Refusals()
        self._ctx = ctx
        self._peers: dict[str, str] = dict(self.spec.peers)
        self._sync: zmq.Context[zmq.Socket[bytes]] = zmq.Context.shadow(ctx.underlying)
        self._lock = threading.Lock()
        self._gate: _Gatekeeper | None = None
        self._monitors: list[zmq.Socket[bytes]] = []
        self._watched: weakref.WeakSet[zmq.Socket[Any]] = weakref.WeakSet()
        self._serial = 0
        self._roles: dict[str, str] = {}
        """tcp endpoint -> ``refused`` (we bound it) or ``rejected`` (we connected)."""
        self._tcp: weakref.WeakSet[zmq.Socket[Any]] = weakref.WeakSet()

    @classmethod
    def from_env(cls, ctx: zmq.Context[Any], spec: TransportSpec | None,
                 environ: Mapping[str, str] | None = None) -> Transport:
        """A transport with this machine's keys from the environment (if any are set)."""
        return cls(ctx, spec, keypair_from_env(environ))

    def trust_peer(self, host: str, key: str) -> None:
        """Connect to ``host`` as a Curve client of ``key`` from now on (a worker joined)."""
        self._peers[host] = check_key(key, f"public key of {host}")

    @property
    def peers(self) -> dict[str, str]:
        """tcp host -> the public key connections to it expect."""
        return dict(self._peers)

    # -- binding and connecting ----------------------------------------------------------
    def bind(self, sock: zmq.Socket[Any], endpoint: str) -> None:
        """Bind ``sock`` at ``endpoint`` (tcp: as a Curve server, or insecure on loopback).

        Binds of one socket must come ipc first, then tcp (security options
        stay set on the socket once a tcp endpoint needed them).

        Raises:
            TransportError: tcp without keys, or insecure off loopback.
            zmq.ZMQError: the bind itself failed (address in use...).
        """
        if endpoint_kind(endpoint) is not EndpointKind.TCP:
            self._plain(sock, endpoint)
            sock.bind(endpoint)
            return
        host = endpoint_host(endpoint)
        self._tune(sock)
        if self.spec.insecure:
            self._check_loopback(host, endpoint, "bind")
        else:
            keys = self._need_keys(endpoint)
            self._start_gate()
            sock.setsockopt(zmq.CURVE_SERVER, 1)
            sock.setsockopt(zmq.CURVE_SECRETKEY, keys.secret.encode("ascii"))
            sock.setsockopt(zmq.CURVE_PUBLICKEY, keys.public.encode("ascii"))
        self._watch(sock, endpoint, "refused")
        sock.bind(endpoint)

    def connect(self, sock: zmq.Socket[Any], endpoint: str) -> None:
        """Connect ``sock`` to ``endpoint`` (tcp: as a Curve client of the peer's key).

        Raises:
            TransportError: no key known for the peer, tcp without keys, or
                insecure off loopback.
        """
        if endpoint_kind(endpoint) is not EndpointKind.TCP:
            self._plain(sock, endpoint)
            sock.connect(endpoint)
            return
        host = endpoint_host(endpoint)
        self._tune(sock)
        if sock.type in _QUEUEING:
            sock.setsockopt(zmq.IMMEDIATE, 1)
        if self.spec.insecure:
            self._check_loopback(host, endpoint, "connect to")
        else:
            keys = self._need_keys(endpoint)
            server = self._peers.get(host)
            if server is None:
                raise TransportError(f"no public key known for {host} (connecting to "
                                     f"{endpoint}); the supervisor lists every machine's key")
            sock.setsockopt(zmq.CURVE_SERVERKEY, server.encode("ascii"))
            sock.setsockopt(zmq.CURVE_PUBLICKEY, keys.public.encode("ascii"))
            sock.setsockopt(zmq.CURVE_SECRETKEY, keys.secret.encode("ascii"))
        self._watch(sock, endpoint, "rejected")
        sock.connect(endpoint)

    def bind_all(self, sock: zmq.Socket[Any], endpoints: Iterable[str]) -> None:
        """Bind every endpoint, ipc first."""
        for endpoint in _ipc_first(endpoints):
            self.bind(sock, endpoint)

    def connect_all(self, sock: zmq.Socket[Any], endpoints: Iterable[str]) -> None:
        """Connect to every endpoint, ipc first."""
        for endpoint in _ipc_first(endpoints):
            self.connect(sock, endpoint)

    # -- refusals ------------------------------------------------------------------------
    def drain(self) -> Refusals:
        """Count the handshake failures the monitors saw since the last call."""
        for monitor in self._monitors:
            while True:
                try:
                    frames = monitor.recv_multipart(zmq.NOBLOCK)
                except zmq.Again:
                    break
                except zmq.ZMQError:
                    break
                with contextlib.suppress(RuntimeError, ValueError):
                    self._note(parse_monitor_message(frames))
        return self.refused

    def refusals(self) -> dict[str, Any]:
        """:attr:`refused` as JSON data; safe from any thread."""
        with self._lock:
            return self.refused.snapshot()

    def _note(self, event: Mapping[str, Any]) -> None:
        kind = _FAILURES.get(event["event"])
        if kind is None:  # MONITOR_STOPPED when a socket closes
            return
        endpoint = bytes(event["endpoint"]).decode("utf-8", "replace")
        role = self._roles.get(endpoint, "refused")
        with self._lock:
            # Server side: we turned a peer away; client side: a peer turned us away.
            self.refused.add(f"{role}_{kind}")
            self.refused.last_endpoint = endpoint
        logger.debug("handshake failed (%s, %s) on %s", role, kind, endpoint)

    def close(self) -> None:
        """Stop the authenticator and close the monitors (before the context ends)."""
        for monitor in self._monitors:
            monitor.close(linger=0)
        self._monitors.clear()
        if self._gate is not None:
            self._gate.stop()
            self._gate = None

    # -- helpers -------------------------------------------------------------------------
    def _plain(self, sock: zmq.Socket[Any], endpoint: str) -> None:
        if sock.getsockopt(zmq.MECHANISM) != zmq.NULL:
            raise TransportError(f"cannot use {endpoint} on a socket already set up for Curve: "
                                 "bind or connect ipc endpoints before tcp ones")

    def _need_keys(self, endpoint: str) -> KeyPair:
        if self.keys is None:
            raise TransportError(f"{endpoint}: tcp needs this machine's Curve key pair; set "
                                 f"${ENV_SECRET_KEY} or ${ENV_KEY_FILE} (make one with "
                                 "`va-launch keys DIR`), or use insecure = true on loopback")
        return self.keys

    def _check_loopback(self, host: str, endpoint: str, verb: str) -> None:
        if not is_loopback(host):
            raise TransportError(f"refusing to {verb} {endpoint} without CurveZMQ: insecure = "
                                 "true allows plaintext tcp on loopback addresses only")

    def _start_gate(self) -> None:
        if self._gate is None:
            gate = _Gatekeeper(self._ctx, self.spec.allow, self.refused, self._lock)
            gate.start()
            gate.configure_curve_callback("*", credentials_provider=gate)
            self._gate = gate

    def _tune(self, sock: zmq.Socket[Any]) -> None:
        if sock in self._tcp:
            return
        self._tcp.add(sock)
        sock.setsockopt(zmq.HEARTBEAT_IVL, HEARTBEAT_IVL_MS)
        sock.setsockopt(zmq.HEARTBEAT_TIMEOUT, HEARTBEAT_TIMEOUT_MS)
        sock.setsockopt(zmq.HEARTBEAT_TTL, HEARTBEAT_TTL_MS)
        sock.setsockopt(zmq.RECONNECT_IVL, RECONNECT_IVL_MS)
        sock.setsockopt(zmq.RECONNECT_IVL_MAX, RECONNECT_IVL_MAX_MS)
        sock.setsockopt(zmq.HANDSHAKE_IVL, HANDSHAKE_IVL_MS)

    def _watch(self, sock: zmq.Socket[Any], endpoint: str, role: str) -> None:
        self._roles[endpoint] = role
        if sock in self._watched:
            return
        self._watched.add(sock)
        self._serial += 1
        address = f"inproc://va-monitor-{id(self)}-{self._serial}"
        sock.monitor(address, _MONITOR_EVENTS)
        pair = self._sync.socket(zmq.PAIR)
        pair.setsockopt(zmq.LINGER, 0)
        pair.connect(address)
        self._monitors.append(pair)


def _ipc_first(endpoints: Iterable[str]) -> list[str]:
    return sorted(endpoints, key=lambda e: endpoint_kind(e) is EndpointKind.TCP)
