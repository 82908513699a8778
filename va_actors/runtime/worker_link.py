"""The link between a supervisor and a worker (``va-launch worker``).

One ZeroMQ pair per worker: the supervisor's ROUTER and the worker's DEALER
(routing id = the worker's name). Either end may bind: a worker started with
``--listen`` binds and the supervisor connects to the ``address`` of its
``[[worker]]``; a worker started with ``--supervisor`` connects to the
supervisor's ``[transport] listen``. Over tcp the binding end is the Curve
server. Every message is ``[op, msgpack map]``::

    worker -> supervisor  hello    {protocol, name, labels, advertise, bind, ports: [lo, hi],
                                    pid, supervisor (the one it serves, or "")}
    worker -> supervisor  beat     {instances: {name: {run, pid, cpu_percent, rss}},
                                    refused: {...}}
    worker -> supervisor  started  {instance, run, pid}
    worker -> supervisor  exited   {instance, run, pid, code, reason}
    worker -> supervisor  busy     {supervisor}: it serves another supervisor
    supervisor -> worker  welcome  {supervisor, pipeline, grace_s}
    supervisor -> worker  beat     {supervisor}
    supervisor -> worker  run      {instance, run, spec (JSON text), env (table, $VARS
                                    resolved by the worker), pipeline_dir}
    supervisor -> worker  signal   {instance, run, signum}
    supervisor -> worker  bye      {supervisor}: the pipeline stopped

``hello`` repeats every beat until ``welcome``; both ends beat every
:data:`BEAT_INTERVAL_S`. A worker that hears nothing from its supervisor for
``grace_s`` stops every instance it runs for it (no orphans across
machines); the supervisor counts that worker's instances as exited after
the same grace. ``run`` numbers each incarnation, so a late ``exited`` of an
earlier one is told apart. Restarts are the supervisor's alone (its
watchers and runtime/policy.py): a worker never restarts an instance.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import msgpack
import zmq
import zmq.asyncio

__all__ = ["BEAT_INTERVAL_S", "PROTOCOL", "UNREACHABLE_AFTER_S", "Hello", "LinkError", "Op",
           "pack", "send_now", "unpack"]

PROTOCOL = 1
BEAT_INTERVAL_S = 0.5
UNREACHABLE_AFTER_S = 2.0
"""Silent this long (four beats): shown as unreachable; its replicas get no new work."""
_MAX_BODY = 4 * 1024 * 1024


class LinkError(ValueError):
    """A malformed message on a worker link."""


class Op(enum.StrEnum):
    """Operations of the worker link."""

    HELLO = "hello"
    BEAT = "beat"
    STARTED = "started"
    EXITED = "exited"
    BUSY = "busy"
    WELCOME = "welcome"
    RUN = "run"
    SIGNAL = "signal"
    BYE = "bye"


def pack(op: Op, body: Mapping[str, Any]) -> list[bytes]:
    """The frames of one message."""
    return [op.value.encode(), msgpack.packb(dict(body), use_bin_type=True)]


def unpack(frames: Sequence[bytes]) -> tuple[Op, dict[str, Any]]:
    """``(op, body)`` of one message; LinkError when it is not one."""
    if len(frames) != 2:
        raise LinkError(f"expected 2 frames, got {len(frames)}")
    try:
        op = Op(bytes(frames[0]).decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        raise LinkError(f"unknown op {bytes(frames[0])[:16]!r}") from None
    if len(frames[1]) > _MAX_BODY:
        raise LinkError(f"{op}: body of {len(frames[1])} bytes is too large")
    try:
        body = msgpack.unpackb(frames[1], raw=False, strict_map_key=True)
    except Exception as exc:
        raise LinkError(f"{op}: body is not msgpack ({exc})") from None
    if not isinstance(body, dict):
        raise LinkError(f"{op}: body must be a map")
    return op, body


def send_now(sock: zmq.asyncio.Socket, frames: list[bytes]) -> bool:
    """Send without waiting on an asyncio socket; False when it cannot go now.

    Through the asyncio socket itself, never a plain view of it: a send on a
    plain view can swallow the edge of the socket's FD, and the asyncio
    reader would then sleep through messages that have arrived.
    """
    try:
        future = cast("asyncio.Future[Any]", sock.send_multipart(frames, flags=zmq.NOBLOCK))
    except zmq.ZMQError:
        return False
    if future.done():
        return future.exception() is None
    future.add_done_callback(lambda f: f.cancelled() or f.exception())
    return True


def text(body: Mapping[str, Any], key: str, op: Op) -> str:
    """A required string field."""
    value = body.get(key)
    if not isinstance(value, str):
        raise LinkError(f"{op}: {key!r} must be a string, got {type(value).__name__}")
    return value


def number(body: Mapping[str, Any], key: str, op: Op) -> int:
    """A required integer field."""
    value = body.get(key)
    if isinstance(value, bool) or not isinstance(value, int):
        raise LinkError(f"{op}: {key!r} must be an integer, got {type(value).__name__}")
    return value


@dataclass(frozen=True)
class Hello:
    """What a worker says about itself.

    Attributes:
        name: its ``--name``.
        labels: its ``--labels``.
        advertise: the host other machines reach it at.
        bind: the address its instances bind (``0.0.0.0``: every one).
        ports: the port range its instances' data sockets take.
        pid: the worker process.
        supervisor: the supervisor it serves now ("" if none).
    """

    name: str
    labels: Mapping[str, str] = field(default_factory=dict)
    advertise: str = ""
    bind: str = "0.0.0.0"
    ports: tuple[int, int] = (0, 0)
    pid: int = 0
    supervisor: str = ""

    def to_body(self) -> dict[str, Any]:
        """The ``hello`` body."""
        return {"protocol": PROTOCOL, "name": self.name, "labels": dict(self.labels),
                "advertise": self.advertise, "bind": self.bind, "ports": list(self.ports),
                "pid": self.pid, "supervisor": self.supervisor}

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> Hello:
        """Parse a ``hello`` body; LinkError when it is wrong."""
        if body.get("protocol") != PROTOCOL:
            raise LinkError(f"hello: protocol {body.get('protocol')!r}, this supervisor "
                            f"speaks {PROTOCOL}")
        labels = body.get("labels") or {}
        ports = body.get("ports")
        if not isinstance(labels, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in labels.items()):
            raise LinkError("hello: labels must map strings to strings")
        if not isinstance(ports, list) or len(ports) != 2 or not all(
                isinstance(p, int) and 0 < p < 65536 for p in ports) or ports[0] > ports[1]:
            raise LinkError(f"hello: ports must be [low, high] within 1..65535, got {ports!r}")
        return cls(text(body, "name", Op.HELLO), labels, text(body, "advertise", Op.HELLO),
                   text(body, "bind", Op.HELLO), (ports[0], ports[1]),
                   number(body, "pid", Op.HELLO), str(body.get("supervisor") or ""))
