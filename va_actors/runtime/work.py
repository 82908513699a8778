"""Work distribution for replicas: the protocol between a dispatcher and its replicas.

A replicated actor (``replicas = N``) gets one dispatcher process (its ROUTER
binds ``ActorSpec.work_endpoint``) and N replicas (each a DEALER whose routing
id is its instance name). The dispatcher subscribes to the actor's inputs; the
replicas subscribe to nothing and get their inputs as work items::

    replica -> dispatcher   [b"ready", msgpack({"cap": max_inflight, "pid": pid,
                                                   "holding": [id, ...]})]
    replica -> dispatcher   [b"done", id]
    dispatcher -> replica   [b"work", id, <the input message's wire frames>]

``id`` is an 8-byte big-endian item number chosen by the dispatcher. A replica
sends ``ready`` when it connects and then every heartbeat interval: it tells a
freshly (re)started dispatcher who is there, and which items the replica
really holds, so items lost with a replica that died are counted once (and
only those: a replica loses only its own in-flight items). A new ``pid`` tells
the dispatcher the replica restarted: what it had in flight is lost at once. The input message
is forwarded unchanged (producer's ``src``, ``seq``, ``pts``), so results can
name it with an :class:`~va_actors.wire.messages.InputRef`.

This module has the protocol and :class:`WorkLink`, the replica's side; the
dispatcher is :mod:`va_actors.runtime.dispatcher`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast

import msgpack
import zmq

from va_actors.runtime.transport import Transport, TransportError

__all__ = ["OP_DONE", "OP_READY", "OP_WORK", "Ready", "WorkLink", "item_id", "pack_id",
           "parse_ready"]

logger = logging.getLogger(__name__)

OP_READY = b"ready"
OP_DONE = b"done"
OP_WORK = b"work"

_ID_BYTES = 8


def pack_id(item: int) -> bytes:
    """The wire form of an item number."""
    return item.to_bytes(_ID_BYTES, "big")


def item_id(frame: bytes | memoryview) -> int:
    """An item number from its wire form; ValueError if it is not one."""
    if len(frame) != _ID_BYTES:
        raise ValueError(f"work item id must be {_ID_BYTES} bytes, got {len(frame)}")
    return int.from_bytes(frame, "big")


@dataclass(frozen=True)
class Ready:
    """A replica's ``ready``: how many items it may hold and which it holds now."""

    capacity: int
    pid: int
    holding: frozenset[int]


def parse_ready(body: bytes) -> Ready:
    """Decode a ``ready`` body; ValueError when it is malformed."""
    try:
        data = msgpack.unpackb(body, raw=False)
    except Exception as exc:
        raise ValueError(f"ready: not msgpack ({exc})") from None
    if not isinstance(data, dict):
        raise ValueError("ready: expected a map")
    cap, pid, holding = data.get("cap"), data.get("pid", 0), data.get("holding", [])
    if isinstance(cap, bool) or not isinstance(cap, int) or cap < 1:
        raise ValueError(f"ready: cap must be an integer >= 1, got {cap!r}")
    if isinstance(pid, bool) or not isinstance(pid, int):
        raise ValueError(f"ready: pid must be an integer, got {pid!r}")
    if not isinstance(holding, list) or not all(
            isinstance(i, int) and not isinstance(i, bool) for i in holding):
        raise ValueError("ready: holding must be a list of item ids")
    return Ready(cap, pid, frozenset(holding))


class WorkLink:
    """A replica's DEALER to its dispatcher (used on the host's event loop thread).

    Args:
        ctx: the host's ZeroMQ context.
        endpoint: the dispatcher's ROUTER endpoint.
        identity: the replica's instance name (its routing id).
        capacity: ``max_inflight``.
        on_item: called with ``(item id, message frames)`` for each work item.
        link: the host's transport (a dispatcher on another machine: tcp + Curve).
    """

    def __init__(self, ctx: zmq.Context[zmq.Socket[bytes]], endpoint: str, identity: str,
                 capacity: int, on_item: Callable[[int, Sequence[Any]], None],
                 link: Transport | None = None) -> None:
        self.capacity = capacity
        self.holding: set[int] = set()
        self.received = 0
        self.done = 0
        self._on_item = on_item
        sock = ctx.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.ROUTING_ID, identity.encode())
        try:
            (link or Transport(ctx)).connect(sock, endpoint)
        except TransportError:
            sock.close(linger=0)
            raise
        self.socket = sock

    def announce(self) -> None:
        """Send ``ready`` (capacity and the items held now)."""
        body = msgpack.packb({"cap": self.capacity, "pid": os.getpid(),
                              "holding": sorted(self.holding)})
        self._send([OP_READY, body])

    def finish(self, item: int) -> None:
        """Report ``item`` done (processed or dropped); unknown ids are ignored."""
        if item in self.holding:
            self.holding.discard(item)
            self.done += 1
            self._send([OP_DONE, pack_id(item)])

    def read(self) -> int:
        """Take every waiting work item (edge-triggered FD: read until empty)."""
        sock, taken = self.socket, 0
        while cast(int, sock.getsockopt(zmq.EVENTS)) & zmq.POLLIN:
            frames = sock.recv_multipart(copy=False)
            if len(frames) < 3 or frames[0].bytes != OP_WORK:
                logger.warning("work link: unexpected message of %d frame(s) dropped",
                               len(frames))
                continue
            try:
                item = item_id(frames[1].buffer)
            except ValueError as exc:
                logger.warning("work link: %s; message dropped", exc)
                continue
            self.holding.add(item)
            self.received += 1
            taken += 1
            # Topic and header as bytes (small); payloads stay zero-copy frames.
            wire: list[Any] = [frames[2].bytes, *(f.bytes for f in frames[3:4]),
                               *frames[4:]]
            self._on_item(item, wire)
        return taken

    def close(self) -> None:
        """Close the socket (no linger)."""
        self.socket.close(linger=0)

    def _send(self, frames: list[bytes]) -> None:
        try:
            self.socket.send_multipart(frames, zmq.NOBLOCK)
        except zmq.Again:
            # The dispatcher is gone or slow; the next ``ready`` reconciles.
            logger.debug("work link: dispatcher not reachable; message not sent")
