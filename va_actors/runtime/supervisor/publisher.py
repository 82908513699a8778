"""What the supervisor makes known: ``sys.pub`` messages and the manifest's instances.

:class:`SysPublisher` owns the PUB socket every host (and every tap, such as
``va-launch status``) subscribes to: one sequence per topic, each message
stamped with the epoch in force, never a blocking send.
:func:`manifest_instances` is the manifest's list of instances (runtime/rundir.py).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from typing import Any

import zmq
import zmq.asyncio

from va_actors.runtime import rundir
from va_actors.runtime.supervisor.remote import RemoteWatcher
from va_actors.runtime.supervisor.watcher import Watcher
from va_actors.runtime.transport import Transport
from va_actors.wire import Control, encode_control
from va_actors.wire import topics as wire_topics

__all__ = ["PUB_HWM", "SysPublisher", "manifest_instances"]

PUB_HWM = 1000
"""sys.pub queue per subscriber; a stalled tap loses sys messages, nobody waits."""


class SysPublisher:
    """The supervisor's PUB socket (``sys.pub``); nothing is sent before :meth:`bind`.

    Args:
        epoch: the epoch in force, stamped on every message.
    """

    def __init__(self, epoch: Callable[[], int]) -> None:
        self._epoch = epoch
        self._seq: dict[str, int] = {}
        self._pub: zmq.Socket[bytes] | None = None

    def bind(self, ctx: zmq.asyncio.Context, endpoint: str, link: Transport | None = None,
             tcp_bind: str = "") -> None:
        """Bind at ``endpoint`` (and ``tcp_bind`` through ``link``, for workers)."""
        # publish() is called from sync callbacks: a plain socket on the same
        # context sends there without a task.
        sync_ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context.shadow(ctx.underlying)
        pub = self._pub = sync_ctx.socket(zmq.PUB)
        pub.setsockopt(zmq.LINGER, 0)
        pub.setsockopt(zmq.SNDHWM, PUB_HWM)
        pub.bind(endpoint)
        if link is not None:
            link.bind(pub, tcp_bind)

    def publish(self, topic: str, op: str, args: dict[str, Any]) -> None:
        """Send ``op`` with ``args`` on ``topic`` (dropped if a subscriber's queue is full)."""
        if self._pub is None:
            return
        seq = self._seq.get(topic, 0)
        self._seq[topic] = seq + 1
        frames = encode_control(topic, Control(op, args), seq=seq, epoch=self._epoch(),
                                source=wire_topics.SYSTEM_ACTOR)
        with contextlib.suppress(zmq.Again):
            self._pub.send_multipart(frames, flags=zmq.NOBLOCK)

    def close(self) -> None:
        """Close the socket (nothing is sent after)."""
        if self._pub is not None:
            self._pub.close(0)


def manifest_instances(watchers: Iterable[Watcher]) -> list[rundir.InstanceRecord]:
    """One manifest record per instance: where it is, its pid and state, its restarts."""
    return [
        rundir.InstanceRecord(
            instance=w.name, actor=w.actor.name, replica=w.replica,
            endpoint=w.endpoint, topics=list(w.topics), pid=w.pid if w.alive else None,
            state=w.state.value, restarts=w.tracker.restarts,
            worker=w.worker.name if isinstance(w, RemoteWatcher) else None)
        for w in watchers]
