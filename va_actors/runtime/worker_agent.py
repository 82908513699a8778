"""The worker agent (``va-launch worker``): runs actor instances a supervisor assigns.

One long-running process per machine (a Kubernetes pod, a systemd service).
It keeps one link to a supervisor (runtime/worker_link.py), starts each
instance it is given as ``python -m va_actors.runtime.host SPEC`` on this
machine (the spec arrives over the link with tcp endpoints), reports starts,
exits and figures, and signals instances when told to. It never restarts
anything: the supervisor's watchers decide, under runtime/policy.py.

No orphans: every instance is a child in its own process group that dies
with the agent (``PR_SET_PDEATHSIG`` in the host), and when the supervisor
has been silent for its grace period the agent stops every instance it runs
for it (SIGTERM, 2 s, SIGKILL), then waits for a supervisor again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import zmq
import zmq.asyncio

from va_actors.runtime import env_refs, transport
from va_actors.runtime.exits import EXIT_OK
from va_actors.runtime.spec import ActorSpec, SpecError
from va_actors.runtime.transport import KeyPair, Transport, TransportSpec
from va_actors.runtime.worker_link import (
    BEAT_INTERVAL_S,
    Hello,
    LinkError,
    Op,
    pack,
    send_now,
    unpack,
)
from va_actors.runtime.worker_link import number as field_number
from va_actors.runtime.worker_link import text as field_text

__all__ = ["WorkerAgent", "WorkerSettings"]

logger = logging.getLogger("va_actors.runtime.worker")

TERM_GRACE_S = 2.0
"""SIGTERM, then this long, then SIGKILL."""
DEFAULT_GRACE_S = 30.0
"""Until a supervisor says otherwise (its ``[transport] worker_grace_s``)."""
EXITS_KEPT = 32
"""Recent exits repeated in every beat, so a supervisor that missed ``exited`` learns them."""


@dataclass(frozen=True)
class WorkerSettings:
    """How a worker is started (the ``va-launch worker`` options).

    Attributes:
        name: its name (``[[worker]] name``, ``worker =`` in a pipeline).
        labels: what placements match (``gpu=1,zone=a``).
        listen: ``tcp://HOST:PORT`` to bind the link (the supervisor connects).
        supervisor: ``tcp://HOST:PORT`` to connect the link to (it registers).
        advertise: the host other machines reach this one at.
        bind_host: the address instances bind their data sockets on.
        ports: the port range of those data sockets.
        keys: this machine's Curve key pair (None only when insecure).
        trust: supervisor public keys accepted; the first is the server key
            when connecting with ``supervisor``.
        insecure: plaintext tcp, on loopback only.
        workdir: where instance specs are written.
        pipeline_dir: where instances run and find ``module:Class`` files
            (default: the supervisor's pipeline directory if it exists here).
        python: the interpreter of the hosts.
        health_port: serve ``/healthz`` and ``/readyz`` on this port (0: no).
    """

    name: str
    listen: str | None = None
    supervisor: str | None = None
    advertise: str = "127.0.0.1"
    bind_host: str = "0.0.0.0"
    ports: tuple[int, int] = (7001, 7199)
    labels: Mapping[str, str] = field(default_factory=dict)
    keys: KeyPair | None = None
    trust: tuple[str, ...] = ()
    insecure: bool = False
    workdir: Path = Path("/tmp/va-worker")
    pipeline_dir: Path | None = None
    python: str = sys.executable
    health_port: int = 0

    def __post_init__(self) -> None:
        if (self.listen is None) == (self.supervisor is None):
            raise transport.TransportError("a worker needs exactly one of --listen (the "
                                           "supervisor connects) or --supervisor (it registers)")
        if not self.insecure and self.keys is None:
            raise transport.TransportError(
                f"a worker needs its Curve key pair: --keys DIR/NAME.key_secret, or "
                f"${transport.ENV_SECRET_KEY} / ${transport.ENV_KEY_FILE}")
        if not self.insecure and not self.trust:
            raise transport.TransportError("a worker needs the supervisor's public key: "
                                           "--trust KEY (z85, a .key file or a directory)")


@dataclass
class _Instance:
    """One instance this worker runs."""

    name: str
    run: int
    supervisor: str
    proc: asyncio.subprocess.Process
    ps: psutil.Process | None = None
    task: asyncio.Task[None] | None = None


class WorkerAgent:
    """The agent: ``await WorkerAgent(settings).run()`` until stopped (SIGTERM)."""

    def __init__(self, settings: WorkerSettings) -> None:
        self.settings = settings
        self.supervisor = ""
        """Id of the supervisor served now ("" until a ``welcome``)."""
        self.pipeline = ""
        self.grace_s = DEFAULT_GRACE_S
        self.instances: dict[str, _Instance] = {}
        self.exits: list[dict[str, Any]] = []
        self.ready = False
        self._last_heard = 0.0
        self._stop = asyncio.Event()
        self._ctx: zmq.asyncio.Context | None = None
        self._sock: zmq.asyncio.Socket | None = None
        self._link: Transport | None = None

    def request_stop(self) -> None:
        """Stop the agent (its instances first)."""
        self._stop.set()

    async def run(self) -> int:
        """Serve until stopped; return the exit status."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self.request_stop)
        self.settings.workdir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._open()
        tasks = [asyncio.create_task(self._receive(), name="worker-receive"),
                 asyncio.create_task(self._beat(), name="worker-beat")]
        server = await self._serve_health()
        self.ready = True
        logger.info("worker %s up: %s %s, advertises %s, ports %d-%d, labels %s",
                    self.settings.name, "listening on" if self.settings.listen else
                    "registering with", self.settings.listen or self.settings.supervisor,
                    self.settings.advertise, *self.settings.ports,
                    ",".join(f"{k}={v}" for k, v in sorted(self.settings.labels.items()))
                    or "none")
        try:
            await self._stop.wait()
        finally:
            self.ready = False
            await self._stop_all("worker stopping")
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if server is not None:
                server.close()
            self._close()
        return EXIT_OK

    # -- the link ---------------------------------------------------------------------------
    def _open(self) -> None:
        s = self.settings
        ctx = self._ctx = zmq.asyncio.Context()
        target = s.listen or s.supervisor
        assert target is not None
        peers = {} if s.supervisor is None or not s.trust else \
            {transport.endpoint_host(s.supervisor): s.trust[0]}
        link = self._link = Transport(ctx, TransportSpec(s.insecure, s.trust, peers), s.keys)
        sock = self._sock = ctx.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.ROUTING_ID, s.name.encode())
        sock.setsockopt(zmq.SNDHWM, 1000)
        if s.listen is not None:
            link.bind(sock, s.listen)
        else:
            link.connect(sock, target)

    def _close(self) -> None:
        if self._sock is not None:
            self._sock.close(linger=0)
        if self._link is not None:
            self._link.close()
        if self._ctx is not None:
            self._ctx.destroy(linger=0)

    def _send(self, op: Op, body: Mapping[str, Any]) -> None:
        if self._sock is None:
            return
        send_now(self._sock, pack(op, body))

    def hello(self) -> Hello:
        """What this worker says about itself."""
        s = self.settings
        return Hello(s.name, dict(s.labels), s.advertise, s.bind_host, s.ports, os.getpid(),
                     self.supervisor)

    async def _receive(self) -> None:
        assert self._sock is not None
        while True:
            frames = await self._sock.recv_multipart()
            try:
                op, body = unpack(frames)
                await self._on(op, body)
            except LinkError as exc:
                logger.warning("worker %s: bad message from the supervisor dropped: %s",
                               self.settings.name, exc)

    async def _on(self, op: Op, body: dict[str, Any]) -> None:
        sup = str(body.get("supervisor") or "")
        if op is Op.WELCOME:
            await self._welcome(sup, body)
            return
        if sup and self.supervisor and sup != self.supervisor:
            self._send(Op.BUSY, {"supervisor": self.supervisor})
            return
        self._last_heard = time.monotonic()
        if op is Op.RUN:
            await self._run(body)
        elif op is Op.SIGNAL:
            self._signal(field_text(body, "instance", op), field_number(body, "run", op),
                         field_number(body, "signum", op))
        elif op is Op.BYE:
            logger.info("worker %s: supervisor %s said bye", self.settings.name, sup)
            await self._stop_all("the pipeline stopped")
            self.supervisor = ""

    async def _welcome(self, sup: str, body: Mapping[str, Any]) -> None:
        if self.supervisor and sup != self.supervisor:
            if time.monotonic() - self._last_heard < self.grace_s:
                self._send(Op.BUSY, {"supervisor": self.supervisor})
                return
            await self._stop_all(f"supervisor {self.supervisor} was replaced by {sup}")
        if sup != self.supervisor:
            logger.info("worker %s: serving supervisor %s (pipeline %s)", self.settings.name,
                        sup, body.get("pipeline"))
        self.supervisor = sup
        self.pipeline = str(body.get("pipeline") or "")
        grace = body.get("grace_s")
        if isinstance(grace, int | float) and not isinstance(grace, bool) and grace > 0:
            self.grace_s = float(grace)
        self._last_heard = time.monotonic()
        self._send_beat()

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(BEAT_INTERVAL_S)
            if self._link is not None:
                self._link.drain()
            if not self.supervisor:
                self._send(Op.HELLO, self.hello().to_body())
                continue
            if time.monotonic() - self._last_heard > self.grace_s:
                logger.warning("worker %s: no word from supervisor %s for %.0f s; stopping "
                               "its instances", self.settings.name, self.supervisor,
                               self.grace_s)
                await self._stop_all(f"lost the supervisor for {self.grace_s:g} s")
                self.supervisor = ""
                continue
            self._send_beat()

    def _send_beat(self) -> None:
        assert self._link is not None
        figures: dict[str, Any] = {}
        for name, inst in self.instances.items():
            cpu, rss = 0.0, 0
            if inst.ps is not None:
                with contextlib.suppress(psutil.Error):
                    cpu, rss = inst.ps.cpu_percent(None), inst.ps.memory_info().rss
            figures[name] = {"run": inst.run, "pid": inst.proc.pid, "cpu_percent": cpu,
                             "rss": rss}
        self._send(Op.BEAT, {"supervisor": self.supervisor, "instances": figures,
                             "exits": self.exits[-EXITS_KEPT:],
                             "refused": self._link.refusals()})

    # -- instances --------------------------------------------------------------------------
    async def _run(self, body: Mapping[str, Any]) -> None:
        name, run = field_text(body, "instance", Op.RUN), field_number(body, "run", Op.RUN)
        old = self.instances.get(name)
        if old is not None and old.proc.returncode is None:
            logger.warning("worker %s: %s is still running (run %d); killing it before run %d",
                           self.settings.name, name, old.run, run)
            await self._terminate(old, grace=0.0)
        try:
            spec = ActorSpec.from_json(field_text(body, "spec", Op.RUN), where=f"spec of {name}")
            env_table = body.get("env") or {}
            if not isinstance(env_table, dict):
                raise LinkError("run: env must be a map")
            env = {**os.environ, **env_refs.expand(
                {str(k): str(v) for k, v in env_table.items()}, os.environ)}
        except (SpecError, LinkError, ValueError) as exc:
            self._exited(name, run, None, 78, f"cannot start on worker "
                                               f"{self.settings.name}: {exc}")
            return
        cwd = self._cwd(spec)
        spec.pipeline_dir = str(cwd)
        if self.settings.keys is not None:
            env.update(transport.key_env(self.settings.keys))
        folder = self.settings.workdir / _safe(self.supervisor or "none")
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        spec_path = folder / f"{name}.spec.json"
        spec.write(spec_path)
        try:
            proc = await asyncio.create_subprocess_exec(
                self.settings.python, "-m", "va_actors.runtime.host", str(spec_path), env=env,
                stdin=asyncio.subprocess.DEVNULL, cwd=cwd, process_group=0)
        except OSError as exc:
            self._exited(name, run, None, 78, f"cannot start on worker {self.settings.name}: "
                                              f"{exc}")
            return
        inst = self.instances[name] = _Instance(name, run, self.supervisor, proc)
        with contextlib.suppress(psutil.Error):
            inst.ps = psutil.Process(proc.pid)
            inst.ps.cpu_percent(None)
        inst.task = asyncio.create_task(self._wait(inst), name=f"worker-wait-{name}")
        logger.info("worker %s: started %s (pid %d, run %d); extra env: %s",
                    self.settings.name, name, proc.pid, run, ", ".join(sorted(env_table))
                    or "none")
        self._send(Op.STARTED, {"instance": name, "run": run, "pid": proc.pid,
                                "supervisor": self.supervisor})

    def _cwd(self, spec: ActorSpec) -> Path:
        if self.settings.pipeline_dir is not None:
            return self.settings.pipeline_dir
        if spec.pipeline_dir and Path(spec.pipeline_dir).is_dir():
            return Path(spec.pipeline_dir)
        return Path.cwd()

    async def _wait(self, inst: _Instance) -> None:
        code = await inst.proc.wait()
        if self.instances.get(inst.name) is inst:
            del self.instances[inst.name]
        self._exited(inst.name, inst.run, inst.proc.pid, code, "")

    def _exited(self, name: str, run: int, pid: int | None, code: int, reason: str) -> None:
        record = {"instance": name, "run": run, "pid": pid, "code": code, "reason": reason,
                  "supervisor": self.supervisor}
        self.exits.append(record)
        del self.exits[:-EXITS_KEPT]
        if reason:
            logger.warning("worker %s: %s", self.settings.name, reason)
        self._send(Op.EXITED, record)

    def _signal(self, name: str, run: int, signum: int) -> None:
        inst = self.instances.get(name)
        if inst is None or inst.run != run or inst.proc.returncode is not None:
            return
        _kill_group(inst.proc.pid, signum)

    async def _terminate(self, inst: _Instance, grace: float = TERM_GRACE_S) -> None:
        if inst.proc.returncode is None:
            _kill_group(inst.proc.pid, signal.SIGTERM if grace > 0 else signal.SIGKILL)
            try:
                await asyncio.wait_for(asyncio.shield(inst.proc.wait()), grace or 5.0)
            except TimeoutError:
                _kill_group(inst.proc.pid, signal.SIGKILL)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(inst.proc.wait()), 5.0)
        if inst.task is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(asyncio.shield(inst.task), 1.0)

    async def _stop_all(self, reason: str) -> None:
        running = list(self.instances.values())
        if running:
            logger.info("worker %s: stopping %d instance(s): %s", self.settings.name,
                        len(running), reason)
        await asyncio.gather(*(self._terminate(i) for i in running), return_exceptions=True)

    # -- health -----------------------------------------------------------------------------
    async def _serve_health(self) -> asyncio.Server | None:
        if not self.settings.health_port:
            return None
        return await asyncio.start_server(self._health, "0.0.0.0", self.settings.health_port)

    async def _health(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await asyncio.wait_for(reader.readline(), 2.0)
            path = line.split(b" ")[1] if line.count(b" ") >= 2 else b"/"
            ok = path == b"/healthz" or (path == b"/readyz" and self.ready)
            body = (f'{{"name": "{self.settings.name}", "supervisor": "{self.supervisor}", '
                    f'"instances": {len(self.instances)}}}\n').encode()
            status = b"200 OK" if ok else b"503 Service Unavailable"
            writer.write(b"HTTP/1.0 " + status + b"\r\nContent-Type: application/json\r\n"
                         b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
            await writer.drain()
        except (TimeoutError, OSError):
            pass
        finally:
            writer.close()


def _kill_group(pid: int, signum: int) -> None:
    try:
        os.killpg(pid, signum)
    except (ProcessLookupError, PermissionError):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)


def _safe(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text)[:80]
