"""The transport rules on loopback: tcp is Curve or nothing, refusals are counted.

Real ZeroMQ sockets in this process (no namespaces needed): a server binds
ipc and tcp on one XPUB, clients with the right key, an unknown key, the
wrong server key and no Curve at all connect, and only the first receives.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import zmq

from va_actors.runtime import transport
from va_actors.runtime.transport import (
    KeyPair,
    Transport,
    TransportError,
    TransportSpec,
    create_keypair,
    keypair_from_env,
    load_keypair,
    public_keys,
)


def _pair() -> KeyPair:
    public, secret = zmq.curve_keypair()
    return KeyPair(public.decode(), secret.decode())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


_OPEN: list[Transport] = []


def _transport(ctx: zmq.Context[zmq.Socket[bytes]], spec: TransportSpec,
               keys: KeyPair | None) -> Transport:
    link = Transport(ctx, spec, keys)
    _OPEN.append(link)
    return link


@pytest.fixture
def ctx() -> Iterator[zmq.Context[zmq.Socket[bytes]]]:
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    try:
        yield context
    finally:
        while _OPEN:  # authenticator threads end before their context
            _OPEN.pop().close()
        context.destroy(linger=0)


def _subscriber(ctx: zmq.Context[zmq.Socket[bytes]], endpoint: str,
                spec: TransportSpec, keys: KeyPair | None) -> tuple[zmq.Socket[bytes], Transport]:
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.setsockopt(zmq.SUBSCRIBE, b"t")
    link = _transport(ctx, spec, keys)
    link.connect(sub, endpoint)
    return sub, link


def _received(sock: zmq.Socket[bytes]) -> int:
    n = 0
    while sock.poll(100):
        sock.recv_multipart()
        n += 1
    return n


def _until(predicate: object, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


def test_only_the_allowed_key_receives_and_every_refusal_is_counted(
        ctx: zmq.Context[zmq.Socket[bytes]], tmp_path: Path) -> None:
    server_keys, good, stranger = _pair(), _pair(), _pair()
    port = _free_port()
    tcp, ipc = f"tcp://127.0.0.1:{port}", f"ipc://{tmp_path}/x.sock"
    server = _transport(ctx, TransportSpec(allow=(good.public,)), server_keys)
    pub = ctx.socket(zmq.XPUB)
    pub.setsockopt(zmq.LINGER, 0)
    pub.setsockopt(zmq.XPUB_VERBOSE, 1)
    server.bind_all(pub, [tcp, ipc])  # tcp listed first: ipc is still bound first
    peers = TransportSpec(peers={"127.0.0.1": server_keys.public})
    local, _ = _subscriber(ctx, ipc, TransportSpec(), None)
    allowed, _ = _subscriber(ctx, tcp, peers, good)
    unknown, unknown_link = _subscriber(ctx, tcp, peers, stranger)
    wrong_server, _ = _subscriber(ctx, tcp, TransportSpec(peers={"127.0.0.1": stranger.public}),
                                  good)
    plain = ctx.socket(zmq.SUB)
    plain.setsockopt(zmq.SUBSCRIBE, b"t")
    plain.setsockopt(zmq.LINGER, 0)
    plain.connect(tcp)
    joined: list[bytes] = []

    def two_joined() -> bool:
        while pub.poll(10):
            joined.append(pub.recv())
        return len(joined) >= 2

    _until(two_joined)
    for i in range(5):
        pub.send_multipart([b"t", str(i).encode()])
    assert _received(local) == 5
    assert _received(allowed) == 5
    assert _received(unknown) == 0
    assert _received(wrong_server) == 0
    assert _received(plain) == 0

    def counted() -> bool:
        counts = server.drain().counts
        return counts.get("refused_auth", 0) >= 1 and counts.get("refused_protocol", 0) >= 2

    _until(counted)
    refused = server.refused.snapshot()
    assert refused["last_key"] == stranger.public  # a public key: safe to report
    assert refused["last_address"] == "127.0.0.1"
    assert good.secret not in repr(server.refused) and server_keys.secret not in repr(server.keys)
    # The stranger learns it was turned away (its own monitor says so).
    _until(lambda: unknown_link.drain().counts.get("rejected_auth", 0) >= 1)


def test_tcp_needs_keys_and_insecure_means_loopback_only(
        ctx: zmq.Context[zmq.Socket[bytes]]) -> None:
    pub = ctx.socket(zmq.PUB)
    pub.setsockopt(zmq.LINGER, 0)
    with pytest.raises(TransportError, match=transport.ENV_SECRET_KEY):
        _transport(ctx, TransportSpec(), None).bind(pub, "tcp://127.0.0.1:*")
    with pytest.raises(TransportError, match="loopback addresses only"):
        Transport(ctx, TransportSpec(insecure=True)).bind(pub, "tcp://0.0.0.0:*")
    with pytest.raises(TransportError, match="loopback addresses only"):
        Transport(ctx, TransportSpec(insecure=True)).connect(pub, "tcp://10.1.2.3:7000")
    with pytest.raises(TransportError, match=r"no public key known for 10\.1\.2\.3"):
        _transport(ctx, TransportSpec(), _pair()).connect(pub, "tcp://10.1.2.3:7000")
    port = _free_port()
    loose = _transport(ctx, TransportSpec(insecure=True), None)
    loose.bind(pub, f"tcp://127.0.0.1:{port}")
    sub, _ = _subscriber(ctx, f"tcp://127.0.0.1:{port}", TransportSpec(insecure=True), None)
    _until(lambda: (pub.send_multipart([b"t", b"x"]), sub.poll(50))[1])


def test_keys_from_files_and_the_environment(tmp_path: Path) -> None:
    public_file, secret_file = create_keypair(tmp_path / "keys", "w1")
    assert secret_file.stat().st_mode & 0o077 == 0
    pair = load_keypair(secret_file)
    assert public_keys(str(public_file)) == [pair.public]
    assert public_keys(str(tmp_path / "keys")) == [pair.public]
    assert public_keys(pair.public) == [pair.public]
    assert keypair_from_env({transport.ENV_SECRET_KEY: pair.secret}) == pair
    assert keypair_from_env({transport.ENV_KEY_FILE: str(secret_file)}) == pair
    assert keypair_from_env({}) is None
    assert pair.secret not in repr(pair)
    with pytest.raises(TransportError, match="never overwritten"):
        create_keypair(tmp_path / "keys", "w1")
    with pytest.raises(TransportError, match="holds no secret key"):
        load_keypair(public_file)
    with pytest.raises(TransportError, match="40 z85 characters"):
        keypair_from_env({transport.ENV_SECRET_KEY: "short"})
    spec = TransportSpec(allow=(pair.public,), peers={"10.0.0.1": pair.public})
    assert TransportSpec.from_dict(spec.to_dict()) == spec
    with pytest.raises(TransportError, match="transport"):
        TransportSpec.from_dict({"allow": ["nope"]})
