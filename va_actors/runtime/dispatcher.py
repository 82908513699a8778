"""The dispatcher of a replicated actor: each input message to one replica.

Runs in its own actor host process (instance ``<actor>-dispatch``, category
``dispatch``): the host subscribes to the actor's inputs as usual and hands
every message to :class:`Dispatcher`, which sends it to the least-loaded
replica that has room (``max_inflight`` per replica). When every replica is
full, messages wait: a video frame waits in one slot per topic, where a newer
frame replaces it (counted ``replaced``), so a replica always gets the newest
frame, never a backlog; other kinds wait in order (bounded, oldest dropped as
``overflow``). A waiting message older than the input's ``max_age_ms`` is
dropped as ``expired``. Protocol and the replica side: :mod:`.work`.

Per-replica figures (in flight, sent, done, lost) go out in the host's
heartbeat under ``work`` and show in ``va-launch status``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

import zmq

from va_actors.runtime.transport import Transport
from va_actors.runtime.work import OP_DONE, OP_READY, OP_WORK, item_id, pack_id, parse_ready
from va_actors.wire.codec import Frame, Message, encode
from va_actors.wire.messages import Kind

__all__ = ["Dispatcher", "DispatcherHost"]

logger = logging.getLogger(__name__)

WAITING_LIMIT = 256
"""Non-video messages that may wait for a replica (then the oldest is dropped)."""
SILENT_S = 2.0
"""A replica that has not said ``ready`` for this long (eight heartbeats: its worker's
link is cut, or it hangs) gets no more work, and what it holds is counted lost, so
the work goes to the other replicas; its next ``ready`` brings it back."""
LOST_GRACE_S = 2.0
"""An item a replica does not list in its ``ready`` is counted lost only after this
long (a ``ready`` may cross a ``work`` message on the wire)."""


class DispatcherHost(Protocol):
    """What the dispatcher needs from its actor host."""

    instance: str

    def count_drop(self, reason: str, n: int = 1) -> None: ...
    def add_socket_reader(self, sock: zmq.Socket[bytes], callback: Any) -> None: ...
    def zmq_context(self) -> zmq.Context[zmq.Socket[bytes]]: ...
    def zmq_transport(self) -> Transport: ...
    def input_max_age_ns(self, topic: str) -> int | None: ...


@dataclass
class _Replica:
    """One replica as the dispatcher sees it."""

    name: str
    capacity: int
    inflight: dict[int, float] = field(default_factory=dict)  # item -> sent (monotonic)
    sent: int = 0
    done: int = 0
    lost: int = 0
    last_sent: float = 0.0
    connected: bool = True
    pid: int = 0
    last_ready: float = field(default_factory=time.monotonic)

    @property
    def free(self) -> int:
        return self.capacity - len(self.inflight) if self.connected else 0

    def figures(self) -> dict[str, int]:
        return {"inflight": len(self.inflight), "capacity": self.capacity, "sent": self.sent,
                "done": self.done, "lost": self.lost, "connected": int(self.connected)}


@dataclass
class _Waiting:
    """A message waiting for a replica."""

    msg: Message
    frames: list[Frame]


class Dispatcher:
    """Sends work items to replicas; driven by the host like a plugin driver.

    Args:
        host: the actor host it runs in.
        endpoint: the ROUTER endpoint to bind (``ActorSpec.work_endpoint``).
    """

    outputs: tuple[str, ...] = ()

    def __init__(self, host: DispatcherHost, endpoint: str) -> None:
        self.host = host
        self.endpoint = endpoint
        self.replicas: dict[str, _Replica] = {}
        self._waiting: OrderedDict[object, _Waiting] = OrderedDict()
        self._next_id = 0
        self._next_key = 0
        self._router: zmq.Socket[bytes] | None = None

    # -- driver interface --------------------------------------------------------
    async def start(self) -> None:
        """Bind the ROUTER and start reading replica messages."""
        router = self.host.zmq_context().socket(zmq.ROUTER)
        router.setsockopt(zmq.LINGER, 0)
        # A send to a replica that is gone raises instead of vanishing silently.
        router.setsockopt(zmq.ROUTER_MANDATORY, 1)
        self.host.zmq_transport().bind(router, self.endpoint)
        self._router = router
        self.host.add_socket_reader(router, self._read)

    async def run(self) -> None:
        """Watch for silent replicas (everything else reacts to inputs and replica messages)."""
        while True:
            await asyncio.sleep(SILENT_S / 8)
            self._expire_silent(time.monotonic())

    def _expire_silent(self, now: float) -> None:
        for replica in self.replicas.values():
            if not replica.connected or now - replica.last_ready < SILENT_S:
                continue
            replica.connected = False
            lost = len(replica.inflight)
            replica.inflight.clear()
            replica.lost += lost
            if lost:
                self.host.count_drop("lost_inflight", lost)
            logger.warning("%s: replica %s silent for %.1f s: no more work until it is back; "
                           "%d item(s) it held counted lost", self.host.instance, replica.name,
                           now - replica.last_ready, lost)
        self._pump()

    async def on_input(self, msg: Message) -> None:
        """Queue ``msg`` for a replica and send what can be sent now."""
        frames = encode(msg.topic, msg.kind, msg.fields, msg.payloads, seq=msg.seq,
                        epoch=msg.epoch, source=msg.source, ts_ns=msg.ts_ns)
        key: object
        if msg.kind is Kind.VIDEO:
            key = ("video", msg.topic)
            if key in self._waiting:
                self.host.count_drop("replaced")
                del self._waiting[key]  # the newest frame goes to the back of the line
        else:
            key = self._next_key
            self._next_key += 1
            if len(self._waiting) >= WAITING_LIMIT:
                self._waiting.popitem(last=False)
                self.host.count_drop("overflow")
        self._waiting[key] = _Waiting(msg, frames)
        self._pump()

    async def on_epoch(self, epoch: int) -> None:
        """Epochs do not concern the dispatcher (replicas and their inputs drop stale data)."""

    async def close(self) -> None:
        """Close the ROUTER."""
        if self._router is not None:
            self._router.close(linger=0)
            self._router = None

    def fail(self, error: BaseException, context: str) -> None:
        """A dispatcher failure is a host failure: log it (the host counts it)."""
        logger.error("%s: %s: %s", self.host.instance, context, error)

    def status(self) -> dict[str, Any]:
        """Heartbeat figures: per replica, and what waits."""
        return {"replicas": {name: r.figures() for name, r in sorted(self.replicas.items())},
                "waiting": len(self._waiting)}

    # -- replicas ------------------------------------------------------------------
    def _read(self) -> None:
        router = self._router
        if router is None:
            return
        while cast(int, router.getsockopt(zmq.EVENTS)) & zmq.POLLIN:
            frames = router.recv_multipart()
            if len(frames) < 3:
                self.host.count_drop("work_malformed")
                continue
            self._on_replica(frames[0].decode("utf-8", "replace"), frames[1], frames[2])
        self._pump()

    def _on_replica(self, name: str, op: bytes, body: bytes) -> None:
        try:
            if op == OP_READY:
                self._on_ready(name, body)
            elif op == OP_DONE:
                self._on_done(name, item_id(body))
            else:
                raise ValueError(f"unknown op {op[:16]!r}")
        except ValueError as exc:
            self.host.count_drop("work_malformed")
            logger.warning("%s: bad message from replica %s dropped: %s", self.host.instance,
                           name, exc)

    def _on_ready(self, name: str, body: bytes) -> None:
        ready = parse_ready(body)
        replica = self.replicas.get(name)
        if replica is None:
            replica = self.replicas[name] = _Replica(name, ready.capacity)
            logger.info("%s: replica %s joined (max_inflight %d)", self.host.instance, name,
                        ready.capacity)
        replica.capacity = ready.capacity
        if not replica.connected:
            logger.info("%s: replica %s is back", self.host.instance, name)
        replica.connected = True
        replica.last_ready = time.monotonic()
        restarted = replica.pid != ready.pid
        replica.pid = ready.pid
        now = time.monotonic()
        for item in list(replica.inflight):
            if item in ready.holding:
                continue
            if restarted or now - replica.inflight[item] >= LOST_GRACE_S:
                # Not held and never reported done: lost with the replica's
                # previous incarnation (or its done message was lost).
                del replica.inflight[item]
                replica.lost += 1
                self.host.count_drop("lost_inflight")
        # Items a restarted dispatcher does not know still occupy the replica.
        for item in ready.holding - replica.inflight.keys():
            replica.inflight[item] = now

    def _on_done(self, name: str, item: int) -> None:
        replica = self.replicas.get(name)
        if replica is not None and replica.inflight.pop(item, None) is not None:
            replica.done += 1

    # -- sending -------------------------------------------------------------------
    def _pump(self) -> None:
        """Send waiting messages, oldest first, while some replica has room."""
        while self._waiting:
            replica = self._least_loaded()
            if replica is None:
                return
            key, waiting = next(iter(self._waiting.items()))
            del self._waiting[key]
            if self._expired(waiting.msg):
                self.host.count_drop("expired")
                continue
            if not self._send(replica, waiting):
                self._waiting[key] = waiting
                self._waiting.move_to_end(key, last=False)

    def _least_loaded(self) -> _Replica | None:
        best: _Replica | None = None
        for replica in self.replicas.values():
            if replica.free <= 0:
                continue
            # Fewest in flight; on a tie the one that waited longest since its last item.
            if best is None or (len(replica.inflight), replica.last_sent) < (
                    len(best.inflight), best.last_sent):
                best = replica
        return best

    def _expired(self, msg: Message) -> bool:
        bound = self.host.input_max_age_ns(msg.topic)
        return bound is not None and time.time_ns() - msg.ts_ns > bound

    def _send(self, replica: _Replica, waiting: _Waiting) -> bool:
        assert self._router is not None
        item = self._next_id
        self._next_id += 1
        try:
            self._router.send_multipart(
                [replica.name.encode(), OP_WORK, pack_id(item), *waiting.frames],
                zmq.NOBLOCK, copy=False)
        except zmq.ZMQError as exc:
            # EHOSTUNREACH: the replica is gone (it says ``ready`` again when it is back).
            replica.connected = False
            logger.info("%s: replica %s unreachable (%s)", self.host.instance, replica.name,
                        exc.strerror)
            return False
        now = time.monotonic()
        replica.inflight[item] = now
        replica.last_sent = now
        replica.sent += 1
        return True

