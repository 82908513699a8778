"""The supervisor's end of the worker links: who is there, what runs where.

:class:`WorkerRegistry` owns one ROUTER (runtime/worker_link.py): it binds
``[transport] listen`` for workers that register and connects to every
``[[worker]] address``. It welcomes workers (a named worker must present
the key its ``[[worker]]`` names), places instances on matching workers
(spread: fewest instances of the actor, then fewest in all), hands out
their data ports, starts and signals instances as :class:`RemoteProcess`
objects the watchers wait on, and follows each worker's state:

* ``connected``: it beat within :data:`~va_actors.runtime.worker_link.UNREACHABLE_AFTER_S`;
* ``unreachable``: silent for longer; its instances keep their state (a
  hang is not judged across a cut link), the dispatcher stops giving their
  replicas work;
* ``lost``: silent for ``worker_grace_s``; its instances count as exited
  (the worker stops them itself after the same grace), and their watchers
  apply the restart policy, which waits for the worker to come back.

A worker that comes back within the grace rejoins as it was: its instances
were never stopped, their sockets reconnect by themselves.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import os
import socket
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import zmq
import zmq.asyncio

from va_actors.runtime import transport
from va_actors.runtime.config import Placement, WorkerConfig
from va_actors.runtime.transport import Transport
from va_actors.runtime.worker_link import (
    BEAT_INTERVAL_S,
    UNREACHABLE_AFTER_S,
    Hello,
    LinkError,
    Op,
    pack,
    send_now,
    unpack,
)

__all__ = ["RemoteProcess", "Worker", "WorkerRegistry", "WorkerState", "supervisor_id"]

logger = logging.getLogger("va_actors.runtime.supervisor")

LOST_CODE = -9
"""Exit code of an instance whose worker was lost (as if killed)."""


def supervisor_id() -> str:
    """This supervisor's id on the worker links: host, pid, start time."""
    return f"{socket.gethostname()}:{os.getpid()}:{int(time.time())}"


class WorkerState(enum.StrEnum):
    """A worker as the supervisor sees it."""

    EXPECTED = "expected"
    CONNECTED = "connected"
    UNREACHABLE = "unreachable"
    LOST = "lost"
    BUSY = "busy"


class RemoteProcess:
    """An instance's process on a worker, as a watcher waits on it (like asyncio's Process)."""

    def __init__(self, worker: str, run: int) -> None:
        self.worker = worker
        self.run = run
        self.pid: int | None = None
        self.returncode: int | None = None
        self.reason = ""
        self.started_at = time.monotonic()
        self._exited = asyncio.Event()

    async def wait(self) -> int:
        """Wait for the exit; return its code."""
        await self._exited.wait()
        assert self.returncode is not None
        return self.returncode

    def exit(self, code: int, reason: str = "") -> None:
        """The process ended (or counts as ended: its worker is lost)."""
        if self.returncode is None:
            self.returncode = code
            self.reason = reason
            self._exited.set()


@dataclass
class Worker:
    """One worker: what it said, its state, and what it runs for this pipeline."""

    name: str
    key: str | None = None
    address: str | None = None
    named: bool = False
    hello: Hello | None = None
    state: WorkerState = WorkerState.EXPECTED
    last_heard: float = 0.0
    joins: int = 0
    ports: dict[str, int] = field(default_factory=dict)
    """instance -> its data port on this worker (kept for the pipeline's life)."""
    processes: dict[str, RemoteProcess] = field(default_factory=dict)
    figures: dict[str, dict[str, Any]] = field(default_factory=dict)
    refused: dict[str, Any] = field(default_factory=dict)
    assigned: set[str] = field(default_factory=set)

    @property
    def usable(self) -> bool:
        """Connected and welcomed: instances can be placed and started here."""
        return self.state is WorkerState.CONNECTED and self.hello is not None

    def labels(self) -> Mapping[str, str]:
        """Its labels (none before its hello)."""
        return self.hello.labels if self.hello is not None else {}

    def port_for(self, instance: str) -> int:
        """The data port of ``instance`` here (the same one on every restart)."""
        if instance in self.ports:
            return self.ports[instance]
        assert self.hello is not None
        low, high = self.hello.ports
        taken = set(self.ports.values())
        for port in range(low, high + 1):
            if port not in taken:
                self.ports[instance] = port
                return port
        raise RuntimeError(f"worker {self.name} has no free port left in {low}-{high} for "
                           f"{instance}; give it a wider --ports range")

    def summary(self, now: float) -> dict[str, Any]:
        """JSON data for sys.metrics and ``va-launch status``."""
        hello = self.hello
        return {"name": self.name, "state": self.state.value,
                "address": self.address or (hello.advertise if hello else None),
                "labels": dict(self.labels()), "pid": hello.pid if hello else None,
                "silent_s": round(now - self.last_heard, 1) if self.last_heard else None,
                "joins": self.joins, "instances": sorted(self.assigned),
                "refused": self.refused or None}


class WorkerRegistry:
    """The worker links of one supervisor.

    Args:
        link: the supervisor's transport (its asyncio context).
        listen: the endpoint to bind for registering workers, or None.
        workers: the pipeline's ``[[worker]]`` tables.
        trusted: keys of workers allowed to register besides the named ones.
        pipeline: the pipeline's name (told to workers).
        grace_s: how long a silent worker keeps its instances.
        on_change: called when a worker's state changes (manifest, metrics).
    """

    def __init__(self, link: Transport, listen: str | None, workers: Iterable[WorkerConfig],
                 trusted: Iterable[str], pipeline: str, grace_s: float,
                 on_change: Callable[[Worker], None] | None = None) -> None:
        self.link = link
        self.listen = listen
        self.pipeline = pipeline
        self.grace_s = grace_s
        self.id = supervisor_id()
        self.workers: dict[str, Worker] = {
            w.name: Worker(w.name, w.public_key, w.address, named=True) for w in workers}
        self._trusted = set(trusted)
        self._on_change = on_change or (lambda _w: None)
        self._sock: zmq.asyncio.Socket | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._runs = 0
        self._changed = asyncio.Event()
        self.refused_names = 0

    # -- life -----------------------------------------------------------------------------
    def start(self, ctx: zmq.asyncio.Context) -> None:
        """Bind / connect the ROUTER and start reading and beating."""
        sock = self._sock = ctx.socket(zmq.ROUTER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.ROUTER_MANDATORY, 1)
        # A worker reconnecting after a cut takes its name over from the stale pipe.
        sock.setsockopt(zmq.ROUTER_HANDOVER, 1)
        if self.listen is not None:
            self.link.bind(sock, self.listen)
        for worker in self.workers.values():
            if worker.address is not None:
                if worker.key is not None:
                    self.link.trust_peer(transport.endpoint_host(worker.address), worker.key)
                self.link.connect(sock, worker.address)
        self._tasks = [asyncio.create_task(self._receive(), name="workers-receive"),
                       asyncio.create_task(self._beat(), name="workers-beat")]

    async def close(self) -> None:
        """Tell every worker the pipeline stopped, then close."""
        for worker in self.workers.values():
            if worker.hello is not None and worker.state is not WorkerState.LOST:
                self._send(worker, Op.BYE, {})
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._sock is not None:
            await asyncio.sleep(0.05)  # let the byes leave (LINGER 0 would drop them)
            self._sock.close(linger=0)
            self._sock = None

    # -- placement ---------------------------------------------------------------------------
    def matching(self, placement: Placement) -> list[Worker]:
        """Usable workers this placement allows."""
        return [w for w in self.workers.values()
                if w.usable and placement.matches(w.name, w.labels())]

    def choose(self, actor: str, placement: Placement) -> Worker | None:
        """The matching worker with the fewest instances of ``actor``, then fewest in all."""
        options = self.matching(placement)
        if not options:
            return None
        return min(options, key=lambda w: (sum(1 for i in w.assigned if _actor_of(i) == actor),
                                           len(w.assigned), w.name))

    async def wait_for(self, wanted: Callable[[], bool], timeout: float, what: str) -> None:
        """Wait until ``wanted()`` holds as workers join; TimeoutError naming ``what``."""
        deadline = time.monotonic() + timeout
        while not wanted():
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{what} within {timeout:g} s; workers: "
                                   f"{self.describe() or 'none has connected'}")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(left, 0.5))

    def describe(self) -> str:
        """One line: every worker and its state."""
        return ", ".join(f"{w.name} ({w.state.value}{_labels(w.labels())})"
                         for w in self.workers.values())

    def endpoints(self, worker: Worker, instance: str) -> tuple[str, str]:
        """(bind, advertised) tcp endpoints of ``instance``'s data socket on ``worker``."""
        assert worker.hello is not None
        port = worker.port_for(instance)
        return (transport.tcp_endpoint(worker.hello.bind, port),
                transport.tcp_endpoint(worker.hello.advertise, port))

    # -- running instances ----------------------------------------------------------------------
    def run(self, worker: Worker, instance: str, spec_json: str, env: Mapping[str, str],
            pipeline_dir: str) -> RemoteProcess:
        """Ask ``worker`` to start ``instance``; the process to wait on."""
        self._runs += 1
        proc = RemoteProcess(worker.name, self._runs)
        old = worker.processes.get(instance)
        if old is not None:
            old.exit(LOST_CODE, "replaced by a new run")
        worker.processes[instance] = proc
        worker.assigned.add(instance)
        if not self._send(worker, Op.RUN, {"instance": instance, "run": proc.run,
                                           "spec": spec_json, "env": dict(env),
                                           "pipeline_dir": pipeline_dir}):
            proc.exit(LOST_CODE, f"worker {worker.name} is not reachable")
        return proc

    def signal(self, worker_name: str, instance: str, signum: int) -> None:
        """Send ``signum`` to ``instance`` on its worker (if it runs there)."""
        worker = self.workers.get(worker_name)
        proc = worker.processes.get(instance) if worker is not None else None
        if worker is None or proc is None or proc.returncode is not None:
            return
        self._send(worker, Op.SIGNAL, {"instance": instance, "run": proc.run,
                                       "signum": int(signum)})

    def summary(self) -> list[dict[str, Any]]:
        """Every worker, for sys.metrics."""
        now = time.monotonic()
        return [w.summary(now) for w in self.workers.values()]

    # -- the link ------------------------------------------------------------------------------
    def _send(self, worker: Worker, op: Op, body: Mapping[str, Any]) -> bool:
        if self._sock is None:
            return False
        # False: EHOSTUNREACH, the worker is not connected (ROUTER_MANDATORY).
        return send_now(self._sock, [worker.name.encode(),
                                     *pack(op, {**body, "supervisor": self.id})])

    async def _receive(self) -> None:
        assert self._sock is not None
        while True:
            frames = await self._sock.recv_multipart(copy=False)
            if len(frames) != 3:
                continue
            name = frames[0].bytes.decode("utf-8", "replace")
            key = _user_id(frames[1])
            try:
                op, body = unpack([frames[1].bytes, frames[2].bytes])
                self._on(name, key, op, body)
            except LinkError as exc:
                logger.warning("worker %s: bad message dropped: %s", name, exc)

    def _on(self, name: str, key: str | None, op: Op, body: dict[str, Any]) -> None:
        if op is Op.HELLO:
            self._on_hello(name, key, Hello.from_body(body))
            return
        worker = self.workers.get(name)
        if worker is None or worker.hello is None:
            return  # not welcomed yet: its next hello will be
        if key is not None and worker.key is not None and key != worker.key:
            return
        self._heard(worker)
        if op is Op.BEAT:
            self._on_beat(worker, body)
        elif op is Op.STARTED:
            proc = worker.processes.get(str(body.get("instance")))
            if proc is not None and proc.run == body.get("run") and isinstance(
                    body.get("pid"), int):
                proc.pid = body["pid"]
        elif op is Op.EXITED:
            self._on_exited(worker, body)
        elif op is Op.BUSY:
            self._set_state(worker, WorkerState.BUSY)
            logger.warning("worker %s serves another supervisor (%s)", name,
                           body.get("supervisor"))

    def _on_hello(self, name: str, key: str | None, hello: Hello) -> None:
        worker = self.workers.get(name)
        if worker is not None and worker.named and worker.key is not None and \
                key is not None and key != worker.key:
            self.refused_names += 1
            logger.warning("refused worker %r: it presented key %s, but its [[worker]] names "
                           "key %s", name, key, worker.key)
            return
        if worker is None:
            worker = self.workers[name] = Worker(name, key)
        if hello.name != name:
            logger.warning("worker %r says its name is %r; ignored", name, hello.name)
            return
        rejoined = worker.hello is not None
        worker.hello = hello
        worker.key = worker.key or key
        if worker.key is not None:
            self.link.trust_peer(hello.advertise, worker.key)
        worker.joins += 1
        logger.info("worker %s %s (%s, labels %s, ports %d-%d)", name,
                    "rejoined" if rejoined else "joined", hello.advertise,
                    ",".join(f"{k}={v}" for k, v in sorted(hello.labels.items())) or "none",
                    *hello.ports)
        self._heard(worker)
        self._send(worker, Op.WELCOME, {"pipeline": self.pipeline, "grace_s": self.grace_s})
        if hello.supervisor != self.id:
            # It forgot us (restarted, or its grace ran out): nothing runs there any more.
            for instance, proc in list(worker.processes.items()):
                proc.exit(LOST_CODE, f"worker {name} restarted or gave up its instances")
                del worker.processes[instance]

    def _on_beat(self, worker: Worker, body: Mapping[str, Any]) -> None:
        running = body.get("instances") or {}
        exits = {(e.get("instance"), e.get("run")): e for e in body.get("exits") or []
                 if isinstance(e, dict)}
        worker.refused = dict(body.get("refused") or {}) if isinstance(
            body.get("refused"), dict) and body["refused"].get("total") else {}
        if not isinstance(running, dict):
            return
        now = time.monotonic()
        for instance, proc in list(worker.processes.items()):
            if proc.returncode is not None:
                continue
            seen = running.get(instance)
            if isinstance(seen, dict) and seen.get("run") == proc.run:
                worker.figures[instance] = seen
                if proc.pid is None and isinstance(seen.get("pid"), int):
                    proc.pid = seen["pid"]
                continue
            record = exits.get((instance, proc.run))
            if record is not None:
                self._exit(proc, record)
            elif now - proc.started_at > 2 * BEAT_INTERVAL_S + 1.0:
                proc.exit(LOST_CODE, f"no longer running on worker {worker.name}")
        for instance, seen in running.items():
            known = worker.processes.get(instance)
            if isinstance(seen, dict) and (known is None or known.run != seen.get("run")):
                self._send(worker, Op.SIGNAL, {"instance": instance, "run": seen.get("run"),
                                               "signum": 9})  # a stale incarnation

    def _on_exited(self, worker: Worker, body: Mapping[str, Any]) -> None:
        proc = worker.processes.get(str(body.get("instance")))
        if proc is not None and proc.run == body.get("run"):
            self._exit(proc, body)

    @staticmethod
    def _exit(proc: RemoteProcess, record: Mapping[str, Any]) -> None:
        code = record.get("code")
        proc.exit(code if isinstance(code, int) else LOST_CODE, str(record.get("reason") or ""))

    def _heard(self, worker: Worker) -> None:
        worker.last_heard = time.monotonic()
        if worker.state is not WorkerState.CONNECTED:
            if worker.state is WorkerState.UNREACHABLE:
                logger.info("worker %s is reachable again", worker.name)
            self._set_state(worker, WorkerState.CONNECTED)

    def _set_state(self, worker: Worker, state: WorkerState) -> None:
        if worker.state is not state:
            worker.state = state
            self._changed.set()
            self._on_change(worker)

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(BEAT_INTERVAL_S)
            self.link.drain()
            now = time.monotonic()
            for worker in list(self.workers.values()):
                if worker.hello is None:
                    continue
                silent = now - worker.last_heard
                if worker.state is WorkerState.CONNECTED and silent > UNREACHABLE_AFTER_S:
                    logger.warning("worker %s unreachable (silent for %.1f s); its instances "
                                   "are kept for %g s", worker.name, silent, self.grace_s)
                    self._set_state(worker, WorkerState.UNREACHABLE)
                elif worker.state is WorkerState.UNREACHABLE and silent > self.grace_s:
                    logger.error("worker %s lost (silent for %.0f s)", worker.name, silent)
                    self._set_state(worker, WorkerState.LOST)
                    for proc in worker.processes.values():
                        proc.exit(LOST_CODE, f"worker {worker.name} lost (silent for "
                                             f"{silent:.0f} s)")
                    worker.processes.clear()
                if worker.state is not WorkerState.LOST:
                    self._send(worker, Op.BEAT, {})


def _labels(labels: Mapping[str, str]) -> str:
    return ", labels " + ",".join(f"{k}={v}" for k, v in sorted(labels.items())) \
        if labels else ""


def _actor_of(instance: str) -> str:
    head, _, tail = instance.rpartition("-")
    return head if head and tail.isdigit() else instance


def _user_id(frame: zmq.Frame) -> str | None:
    """The Curve public key the authenticator saw for this message (bound sockets only)."""
    try:
        value = frame.get("User-Id")
    except (zmq.ZMQError, UnicodeDecodeError, KeyError):
        return None
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    return value if isinstance(value, str) and len(value) == 40 else None
