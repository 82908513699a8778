"""The host's control plane: its own thread and sockets, so a blocked loop still answers.

SUB on the supervisor's ``sys.pub`` (exactly ``sys.epoch`` and ``sys.ctl``)
and PUSH to its ``sys.pull``. The thread sends hello / ready / heartbeat /
bye (and a restarted consumer's replay requests), hands ``start`` and replay
requests to the loop, stores a new epoch at once (the data path drops stale input even while
the plugin blocks its loop), and exits the process when the supervisor is
gone. It talks to the host only through :class:`ControlledHost`.

Reports on ``sys.report`` (wire kind ``control``; every one carries ``instance``
and ``pid``): ``hello`` (actor, category, outputs), ``ready`` (subscribers),
``heartbeat`` (counters {in, out, drops}, loop_lag_ms, queue {input topic:
depth}, state, epoch, category, subscribers {topic: n}; ``replay`` {counter:
n} and ``seen`` {topic: {source: [seq, ts]}} when it has them), ``bye``
(reason, code), ``replay`` (a restarted consumer's request, runtime/replay/).
``state`` is ``starting``, ``ready`` (waiting for ``start``), ``running`` or
``stopping``; ``start`` is idempotent, so a supervisor may send
it again while a heartbeat still says ``ready`` (a PUB can lose the first
message to a subscriber that just joined). The control SUB takes exactly
``sys.epoch`` and ``sys.ctl``, not the metrics traffic on ``sys.``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import sys
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, NoReturn, Protocol

import zmq

from va_actors.runtime.exits import EXIT_CONFIG, EXIT_FAILURE
from va_actors.runtime.replay.protocol import REQUEST_OP
from va_actors.runtime.spec import ActorSpec
from va_actors.runtime.transport import Transport, TransportError
from va_actors.wire import topics
from va_actors.wire.codec import WireError, decode, encode_control
from va_actors.wire.messages import Control, Kind

__all__ = ["SHUTDOWN_DEADLINE_S", "ControlThread", "ControlledHost", "LagProbe", "hard_exit"]

logger = logging.getLogger("va_actors.runtime.host")

SHUTDOWN_DEADLINE_S = 5.0
"""Default time a host gets to shut down gracefully."""


class ControlledHost(Protocol):
    """What the control thread needs from the actor host."""

    instance: str
    spec: ActorSpec

    @property
    def epoch(self) -> int:
        """The epoch in force."""

    def set_epoch(self, epoch: int, *, resume: bool = False) -> bool:
        """Control thread: store a newer epoch at once; True if it moved.

        ``resume``: the supervisor started it because the user went on with
        the turn the agent was answering.
        """

    def on_epoch(self, epoch: int) -> None:
        """Loop: the epoch moved (tell the plugin)."""

    def on_start(self) -> None:
        """Loop: the supervisor sent ``start``."""

    def on_peer_down(self, instance: str, actor: str, category: str) -> None:
        """Loop: another instance exited unexpectedly and is being restarted."""

    def on_peer_restarted(self, instance: str, actor: str, category: str) -> None:
        """Loop: another instance of the pipeline was restarted after a crash and runs."""
    def on_replay(self, args: dict[str, Any]) -> None:
        """Loop: a restarted consumer asks for what it missed (runtime/replay/)."""

    def request_shutdown(self, reason: str = "shutdown",
                         deadline_s: float = SHUTDOWN_DEADLINE_S) -> None:
        """Loop: begin a graceful shutdown."""

    def post(self, callback: Callable[..., None], *args: Any) -> None:
        """Run ``callback(*args)`` on the loop; safe from any thread."""

    def heartbeat(self, control_drops: Mapping[str, int]) -> dict[str, Any]:
        """Control thread: the heartbeat's args."""


class LagProbe:
    """Measures how late the loop runs a callback posted from another thread."""

    def __init__(self, post: Callable[..., None]) -> None:
        self._post = post
        self._lock = threading.Lock()
        self._sent: float | None = None
        self._max_s = 0.0

    def read_ms(self) -> float:
        """Control thread: the worst loop lag since the last call, in ms.

        One probe is posted at a time; while it waits, its age is the lag, so
        a loop blocked for 2 s reports a growing lag during the block.
        """
        now = time.monotonic()
        with self._lock:
            lag = self._max_s
            self._max_s = 0.0
            if self._sent is not None:
                lag = max(lag, now - self._sent)
            else:
                self._sent = now
                self._post(self._done, now)
        return lag * 1000.0

    def _done(self, sent: float) -> None:
        lag = time.monotonic() - sent
        with self._lock:
            self._sent = None
            self._max_s = max(self._max_s, lag)


def hard_exit(code: int) -> NoReturn:
    """Leave now, flushing logs and std streams; no thread can keep the process alive."""
    logging.shutdown()
    with contextlib.suppress(Exception):
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(code)


class ControlThread(threading.Thread):
    """Control plane on its own thread and sockets (the loop may be blocked)."""

    def __init__(self, host: ControlledHost, parent_pid: int) -> None:
        super().__init__(name=f"{host.instance}-control", daemon=True)
        self._host = host
        self._spec = host.spec
        self._parent_pid = parent_pid
        self._outbox: queue.SimpleQueue[tuple[str, dict[str, Any]]] = queue.SimpleQueue()
        self._wake_r = self._wake_w = -1
        self._seq = -1
        self._hello_sent = False
        self._done = False
        self._hard_deadline: float | None = None
        self.drops: dict[str, int] = {}
        self.link: Transport | None = None
        """The control sockets' transport (tcp + Curve to a supervisor elsewhere)."""

    # -- main-thread side ----------------------------------------------------------
    def start(self) -> None:
        """Start the thread (with the pipe that wakes it for queued reports)."""
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        super().start()

    def send(self, op: str, args: dict[str, Any]) -> None:
        """Queue a report for the supervisor; the control thread sends it at once."""
        self._outbox.put((op, args))
        if self._wake_w >= 0:
            with contextlib.suppress(BlockingIOError, OSError):
                os.write(self._wake_w, b"\0")

    def finish(self, reason: str, code: int, timeout: float = 2.0) -> None:
        """Send ``bye`` and stop the thread (waits at most ``timeout``)."""
        if not self.is_alive():
            return
        self.send("bye", {"instance": self._host.instance, "pid": os.getpid(),
                          "reason": reason, "code": code})
        self.send("", {})  # an empty op ends the thread once bye is out
        self.join(timeout)
        if not self.is_alive():  # closed here, never while send() may still write
            os.close(self._wake_r)
            os.close(self._wake_w)
            self._wake_r = self._wake_w = -1

    # -- thread side ---------------------------------------------------------------
    def run(self) -> None:
        ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        try:
            link = self.link = Transport.from_env(ctx, self._spec.transport_spec)
        except TransportError as exc:  # the loop reports the same problem as a config error
            logger.error("%s: control link: %s", self._host.instance, exc)
            hard_exit(EXIT_CONFIG)
        sub = ctx.socket(zmq.SUB)
        sub.setsockopt(zmq.LINGER, 0)
        for topic in topics.CONTROL_TOPICS:
            sub.setsockopt(zmq.SUBSCRIBE, topic.encode())
        link.connect(sub, self._spec.sys_pub)
        push = ctx.socket(zmq.PUSH)
        push.setsockopt(zmq.LINGER, 1000)  # let bye reach the supervisor
        push.setsockopt(zmq.SNDHWM, 1000)
        link.connect(push, self._spec.sys_pull)
        poller = zmq.Poller()
        poller.register(sub, zmq.POLLIN)
        poller.register(self._wake_r, zmq.POLLIN)
        interval = self._spec.heartbeat_interval_s
        next_beat = time.monotonic() + interval
        try:
            while not self._done:
                wait_ms = max(0.0, (next_beat - time.monotonic()) * 1000.0)
                ready = dict(poller.poll(int(wait_ms) + 1))
                if sub in ready:
                    self._read(sub)
                if self._wake_r in ready:
                    self._flush(push)
                now = time.monotonic()
                if now >= next_beat:
                    self._beat(push, now)
                    next_beat = max(next_beat + interval, now + interval / 2)
        except Exception:
            logger.exception("%s: control thread failed; exiting", self._host.instance)
            hard_exit(EXIT_FAILURE)
        finally:
            sub.close(linger=0)
            push.close()
            link.close()
            ctx.term()

    def _report(self, push: zmq.Socket[bytes], op: str, args: dict[str, Any]) -> None:
        self._seq += 1
        frames = encode_control(topics.REPORT, Control(op, args), seq=self._seq,
                                epoch=self._host.epoch, source=self._host.instance)
        try:
            push.send_multipart(frames, zmq.NOBLOCK)
        except zmq.Again:  # supervisor gone or stalled: the ppid check handles the former
            self.drops["control_unsent"] = self.drops.get("control_unsent", 0) + 1

    def _flush(self, push: zmq.Socket[bytes]) -> None:
        with contextlib.suppress(BlockingIOError):
            while os.read(self._wake_r, 4096):
                pass
        while True:
            try:
                op, args = self._outbox.get_nowait()
            except queue.Empty:
                return
            if not op:
                self._done = True
                return
            self._report(push, op, args)
            self._hello_sent = self._hello_sent or op == "hello"

    def _beat(self, push: zmq.Socket[bytes], now: float) -> None:
        if os.getppid() != self._parent_pid:
            logger.error("%s: supervisor (pid %d) is gone; exiting", self._host.instance,
                         self._parent_pid)
            hard_exit(EXIT_FAILURE)
        if self._hard_deadline is not None and now > self._hard_deadline:
            self._report(push, "bye", {"instance": self._host.instance, "pid": os.getpid(),
                                       "code": EXIT_FAILURE,
                                       "reason": "shutdown deadline passed; forced exit"})
            push.close(linger=500)
            hard_exit(EXIT_FAILURE)
        if self.link is not None:
            self.link.drain()
        if self._hello_sent:
            self._report(push, "heartbeat", self._host.heartbeat(self.drops))

    def _read(self, sub: zmq.Socket[bytes]) -> None:
        while True:
            try:
                frames = sub.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            try:
                msg = decode(frames)
                if msg.kind is not Kind.CONTROL:
                    continue
                self._handle(msg.control(), msg.epoch)
            except WireError as err:
                key = f"control_{err.reason.value}"
                self.drops[key] = self.drops.get(key, 0) + 1
            except (TypeError, ValueError) as exc:
                logger.warning("%s: bad control message dropped: %s", self._host.instance, exc)
                self.drops["control_invalid"] = self.drops.get("control_invalid", 0) + 1

    def _targeted(self, args: Mapping[str, Any]) -> bool:
        targets = args.get("targets") or []
        return not targets or self._host.instance in targets

    def _handle(self, control: Control, header_epoch: int) -> None:
        host, args = self._host, control.args
        if control.op == "epoch":
            epoch = args.get("epoch", header_epoch)
            resume = args.get("resume") is True
            if isinstance(epoch, int) and not isinstance(epoch, bool) \
                    and host.set_epoch(epoch, resume=resume):
                host.post(host.on_epoch, epoch)
        elif control.op == "start" and self._targeted(args):
            host.post(host.on_start)
        elif control.op in ("down", "restarted") and args.get("instance") != host.instance:
            callback = host.on_peer_down if control.op == "down" else host.on_peer_restarted
            host.post(callback, str(args.get("instance") or ""),
                      str(args.get("actor") or ""), str(args.get("category") or ""))
        elif control.op == REQUEST_OP and self._targeted(args):
            host.post(host.on_replay, dict(args))
        elif control.op == "shutdown" and self._targeted(args):
            deadline = float(args.get("deadline_s") or SHUTDOWN_DEADLINE_S)
            # If the loop is blocked the graceful path cannot run; leave by itself.
            self._hard_deadline = time.monotonic() + deadline + 1.0
            host.post(host.request_shutdown, "shutdown", deadline)
