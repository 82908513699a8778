"""What the hosts report on ``sys.pull``: hello, ready, heartbeat, replay, bye.

The :class:`ReportReader` binds the supervisor's PULL socket and applies each
report to the watcher of the instance that sent it: outputs a plugin declared
late, readiness (a restarted instance is started alone, and its consumers
told), the last heartbeat, a restarted consumer's replay request (forwarded to
the producer's instances) and the reason an instance gives when it leaves.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

import zmq
import zmq.asyncio

from va_actors.runtime.replay.protocol import REQUEST_OP
from va_actors.runtime.supervisor.resume import ResumeBook
from va_actors.runtime.supervisor.status import Publish, State
from va_actors.runtime.supervisor.watcher import Watcher
from va_actors.runtime.transport import Transport
from va_actors.wire import Control, Kind, WireError, decode
from va_actors.wire import topics as wire_topics

__all__ = ["ReportReader"]

logger = logging.getLogger("va_actors.runtime.supervisor")


class ReportReader:
    """Reads the hosts' reports and applies them (see the module docstring).

    Args:
        watchers: every instance's watcher, by name.
        resume: told each heartbeat's last-seen numbers.
        publish: send on ``sys.pub``.
        running: ``start`` went out and no stop is under way (a ready
            instance is then a restarted one, started at once).
    """

    def __init__(self, watchers: Mapping[str, Watcher], resume: ResumeBook, publish: Publish,
                 running: Callable[[], bool]) -> None:
        self._watchers = watchers
        self._resume = resume
        self._publish = publish
        self._running = running

    async def run(self, ctx: zmq.asyncio.Context, endpoint: str,
                  link: Transport | None = None, tcp_bind: str = "") -> None:
        """Bind PULL at ``endpoint`` (and ``tcp_bind`` through ``link``); read until cancelled."""
        pull = ctx.socket(zmq.PULL)
        pull.setsockopt(zmq.LINGER, 0)
        pull.bind(endpoint)
        if link is not None:
            link.bind(pull, tcp_bind)
        try:
            while True:
                frames = await pull.recv_multipart()
                try:
                    message = decode(frames)
                except WireError as exc:
                    logger.debug("dropped a malformed report: %s", exc)
                    continue
                if message.kind is Kind.CONTROL:
                    self.on_report(message.source, message.control())
        finally:
            pull.close(0)

    def on_report(self, source: str, control: Control) -> None:
        """Apply one report from ``source`` (a late one from an earlier pid is ignored)."""
        args = control.args
        watcher = self._watchers.get(str(args.get("instance") or source))
        if watcher is None or not watcher.alive:
            return
        pid = args.get("pid")
        if isinstance(pid, int) and pid != watcher.pid:
            return  # from an earlier incarnation, still in flight
        watcher.last_seen = time.monotonic()
        if control.op == "hello":
            extra = [t for t in args.get("outputs") or [] if isinstance(t, str)]
            watcher.topics = sorted(set(watcher.topics) | set(extra))
        elif control.op == "ready":
            self._on_ready(watcher)
        elif control.op == "heartbeat":
            watcher.heartbeat = dict(args)
            self._resume.heartbeat(watcher.name, args.get("seen"))
        elif control.op == REQUEST_OP:
            self._forward_replay(args)
        elif control.op == "bye":
            watcher.reason = str(args.get("reason") or "")

    def _forward_replay(self, args: Mapping[str, Any]) -> None:
        """A restarted consumer's replay request, to every instance of the producer."""
        topic = args.get("topic")
        if not isinstance(topic, str):
            return
        producer = topic.partition(".")[0]
        targets = [w.name for w in self._watchers.values()
                   if w.actor.name == producer and not w.dispatcher and w.alive]
        if targets:
            self._publish(wire_topics.CONTROL, REQUEST_OP, {**args, "targets": targets})

    def _on_ready(self, watcher: Watcher) -> None:
        if watcher.state is not State.STARTING:
            return
        if self._running():
            # A restarted instance: its consumers reconnect by themselves; start it alone.
            watcher.set_state(State.READY)
            self._publish(wire_topics.CONTROL, "start", {"targets": [watcher.name]})
            watcher.sent_at = time.monotonic()
            watcher.set_state(State.RUNNING)
            self._publish(wire_topics.CONTROL, "restarted", {
                "instance": watcher.name, "actor": watcher.actor.name,
                "category": watcher.actor.category.value})
        else:
            watcher.set_state(State.READY)
