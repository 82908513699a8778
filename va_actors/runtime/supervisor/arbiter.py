"""The arbiter: runs one pipeline (Circus's arbiter).

It prepares the run directory and sockets, starts the ``[[service]]``s, gives
every actor instance a :class:`~.watcher.Watcher`, sends ``start`` once all
are ready, reads the hosts' reports, checks their health, publishes state
and metrics, owns the epoch, and stops everything in order. What the user and
the agent are doing (turns, playback, sources finished) is followed by the
:class:`~.follower.SessionFollower`, which calls back :meth:`bump_epoch` and
:meth:`request_stop`.

Planes (docs/runtime.md):

* ``sys.pub`` (PUB, bound here): ``sys.ctl`` (start, shutdown), ``sys.epoch``,
  ``sys.actor`` (state changes), ``sys.metrics`` (periodic).
* ``sys.pull`` (PULL, bound here): ``sys.report`` from every host (hello,
  ready, heartbeat, bye).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import signal
import sys
import time
from collections.abc import Callable, Coroutine, Mapping
from pathlib import Path
from typing import Any

import psutil
import zmq
import zmq.asyncio

from va_actors.runtime import rundir
from va_actors.runtime.categories import info
from va_actors.runtime.config import ActorConfig, GiveUpPolicy, InputOptions, PipelineConfig
from va_actors.runtime.exits import EXIT_FAILURE, EXIT_OK
from va_actors.runtime.replay.protocol import REQUEST_OP
from va_actors.runtime.services import ServiceError, Services
from va_actors.runtime.session_vars import RUN_SESSION, SESSION_ID
from va_actors.runtime.spec import DISPATCH_CATEGORY, ActorSpec, InputSpec
from va_actors.runtime.state.store import STATE_FILE
from va_actors.runtime.supervisor.follower import SessionFollower
from va_actors.runtime.supervisor.metrics import metrics_snapshot
from va_actors.runtime.supervisor.pool import WarmPool
from va_actors.runtime.supervisor.reach import Reach
from va_actors.runtime.supervisor.remote import RemoteWatcher
from va_actors.runtime.supervisor.resume import ResumeBook
from va_actors.runtime.supervisor.status import FINAL, PipelineStatus, State
from va_actors.runtime.supervisor.topology import (
    expected_subscribers,
    follower_topics,
    published_topics,
)
from va_actors.runtime.supervisor.watcher import Launch, Watcher
from va_actors.runtime.supervisor.workers import Worker
from va_actors.runtime.transport import TransportError
from va_actors.wire import Control, Kind, WireError, decode, encode_control
from va_actors.wire import topics as wire_topics

__all__ = ["Supervisor", "SupervisorError"]

logger = logging.getLogger("va_actors.runtime.supervisor")

MONITOR_INTERVAL_S = 0.1
RESEND_AFTER_S = 0.5
"""A host whose heartbeat still lacks ``start`` or the epoch this long after it went out
gets it again."""
PUB_HWM = 1000
"""sys.pub queue per subscriber; a stalled tap loses sys messages, nobody waits."""


def _replay_window(actor: ActorConfig) -> float:
    """Seconds ``actor`` keeps for restarted consumers (0: no replay from it)."""
    settings = actor.supervisor
    return settings.replay_s if settings.replay_s > 0 and settings.replay_bytes > 0 else 0.0


class SupervisorError(RuntimeError):
    """The supervisor cannot run the pipeline; the message says why."""


def _log_level() -> str:
    level = logging.getLogger("va_actors").getEffectiveLevel()
    for name in ("DEBUG", "INFO", "WARNING"):
        if level <= logging.getLevelName(name):
            return name
    return "ERROR"


class Supervisor:
    """Runs one pipeline: ``await Supervisor(config).run()`` returns an exit code.

    Args:
        config: the checked pipeline (``load_pipeline``).
        run_dir: where to put sockets and the manifest; default: the
            pipeline's ``run_dir`` setting, else a fresh private directory.
        metrics_interval_s: how often ``sys.metrics`` is published.
        python: interpreter that runs the actor hosts.
        session: the session id when this is one session of ``va-launch serve``.
        pool: warm spares shared with other sessions (else the supervisor keeps
            its own for actors with ``warm_spares``).
        env: session variables every actor gets (``VA_SESSION_ID``, ...).
        services: start the ``[[service]]``s (False: someone else runs them,
            shared by every session).
        on_latency: told each turn's voice-to-voice record as it arrives.
    """

    def __init__(self, config: PipelineConfig, *, run_dir: str | os.PathLike[str] | None = None,
                 metrics_interval_s: float = 1.0, python: str = sys.executable,
                 session: str | None = None, pool: WarmPool | None = None,
                 env: Mapping[str, str] | None = None, services: bool = True,
                 on_latency: Callable[[Mapping[str, Any]], None] | None = None) -> None:
        self.config = config
        self.session = session
        chosen = run_dir if run_dir is not None else config.run_dir
        self._requested_dir = Path(chosen) if chosen is not None else None
        self._metrics_interval = metrics_interval_s
        self._python = python
        self._own_pool = pool is None and any(a.supervisor.warm_spares for a in config.actors)
        session_env = {SESSION_ID: session or RUN_SESSION, **(env or {})}
        self._launch = Launch(python=python, cwd=config.directory, pool=pool, env=session_env)
        self._run_dir: Path | None = None
        self._watchers: dict[str, Watcher] = {}
        self._work_endpoints: dict[str, str] = {}
        """Replicated actor -> its dispatcher's work endpoint (runtime/work.py)."""
        self._work_binds: dict[str, str] = {}
        """... and what the dispatcher binds, when that differs (tcp: every address)."""
        self._reach: Reach | None = None
        """Actors on workers: tcp endpoints, keys, the worker links (supervisor/reach.py)."""
        self._tcp_of: dict[str, str] = {}
        self._tcp_binds: dict[str, str] = {}
        """Local instance -> its tcp endpoint (and bind) for actors on workers."""
        self._sys_tcp: tuple[str, str, str, str] = ("", "", "", "")
        """sys.pub bind, sys.pub advertised, sys.pull bind, sys.pull advertised."""
        self._epoch = 0
        self._resume = ResumeBook()
        self._seq: dict[str, int] = {}
        self._ctx: zmq.asyncio.Context | None = None
        self._pub: zmq.Socket[bytes] | None = None
        self._sys_pub = ""
        self._sys_pull = ""
        self._tasks: list[asyncio.Task[None]] = []
        self._stop = asyncio.Event()
        self._started = asyncio.Event()
        self._done = asyncio.Event()
        self._changed = asyncio.Event()
        self._stopping = False
        self._stop_reason = ""
        self._exit_code = EXIT_OK
        self._loop_lag_ms = 0.0
        self._self_ps = psutil.Process()
        self._manifest: rundir.Manifest | None = None
        self._services = Services(config.services if services else (),
                                  on_state=self._publish_service_state,
                                  on_lost=self._on_service_lost, python=python,
                                  cwd=config.directory)
        self._follower = SessionFollower(
            self.bump_epoch, self.request_stop,
            sources=[name for actor in config.actors if not actor.inputs
                     for name in actor.instances], on_latency=on_latency)

    # -- public API -------------------------------------------------------------------------
    @property
    def epoch(self) -> int:
        """The session epoch in force."""
        return self._epoch

    @property
    def state_store(self) -> str:
        """The conversation store: ``[pipeline] state`` (a file or a URL), else a file in
        the run directory."""
        if self.config.state:
            return self.config.state
        assert self._run_dir is not None, "the run directory is made in prepare()"
        return str(self._run_dir / STATE_FILE)

    @property
    def _run_id(self) -> str:
        return self._run_dir.name if self._run_dir is not None else ""

    @property
    def run_dir(self) -> Path | None:
        """The run directory, once :meth:`run` has created it."""
        return self._run_dir

    @property
    def sys_pub(self) -> str:
        """Endpoint of the supervisor's PUB socket (empty before :meth:`run`)."""
        return self._sys_pub

    @property
    def playback(self) -> dict[str, bool]:
        """Last playback state per sink instance; empty until a sink reports one."""
        return self._follower.playback

    @property
    def stopping(self) -> bool:
        """The pipeline is shutting down."""
        return self._stopping

    @property
    def stop_reason(self) -> str:
        """Why the pipeline stopped (empty while it runs)."""
        return self._stop_reason

    def pid_of(self, instance: str) -> int | None:
        """Current pid of ``instance`` (None while it has no live process)."""
        watcher = self._watchers[instance]
        return watcher.pid if watcher.alive else None

    def status(self) -> PipelineStatus:
        """A snapshot of every instance and the pipeline counters."""
        now = time.monotonic()
        items = [w.status(now) for w in self._watchers.values()]
        return PipelineStatus(
            pipeline=self.config.name, epoch=self._epoch,
            up=sum(1 for w in self._watchers.values() if w.state is State.RUNNING),
            total=len(items), restarts=sum(i.restarts for i in items),
            drops=sum(i.drops_total for i in items), stopping=self._stopping, instances=items,
        )

    async def wait_started(self, timeout: float | None = None) -> bool:
        """Wait until ``start`` went out; False if the pipeline ended first."""
        started = asyncio.ensure_future(self._started.wait())
        done = asyncio.ensure_future(self._done.wait())
        try:
            await asyncio.wait({started, done}, timeout=timeout,
                               return_when=asyncio.FIRST_COMPLETED)
        finally:
            started.cancel()
            done.cancel()
        if not self._started.is_set():
            if self._done.is_set():
                return False
            raise TimeoutError(f"pipeline {self.config.name!r} did not start within "
                               f"{timeout} s: {self._not_ready()}")
        return True

    def request_stop(self, reason: str = "stop requested") -> None:
        """Begin the graceful stop (safe from signal handlers).

        Asked again while the stop is under way (a second Ctrl-C), it kills
        every instance at once instead of waiting for their deadlines.
        """
        if self._stopping:
            logger.warning("second stop request (%s): killing every instance now", reason)
            for watcher in self._watchers.values():
                watcher.signal(signal.SIGKILL)
            self._services.kill_all()
            return
        self._begin_stop(reason)

    def _begin_stop(self, reason: str) -> None:
        if not self._stop.is_set():
            self._stop_reason = reason
            self._stop.set()

    async def stop(self, reason: str = "stop requested") -> None:
        """Stop the pipeline gracefully and wait until :meth:`run` has finished."""
        self.request_stop(reason)
        if self._run_dir is not None:
            await self._done.wait()

    def install_signal_handlers(self) -> None:
        """SIGINT, SIGTERM and SIGHUP stop the pipeline gracefully (twice: at once)."""
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            loop.add_signal_handler(signum, self.request_stop, signal.Signals(signum).name)

    def bump_epoch(self, reason: str) -> int:
        """Start a new epoch (barge-in) and broadcast it on ``sys.epoch`` at once."""
        self._epoch += 1
        logger.info("epoch %d (%s)", self._epoch, reason)
        now = time.monotonic()
        for watcher in self._watchers.values():
            watcher.sent_at = now
        self._publish(wire_topics.EPOCH, "epoch", {"epoch": self._epoch, "reason": reason})
        return self._epoch

    async def run(self) -> int:
        """Run the pipeline until it is stopped; return the exit code (``EXIT_*``)."""
        try:
            self._prepare()
            await self._reach_out()
            self._make_watchers()
            if not await self._start_services():
                return self._exit_code
            self._spawn_tasks()
            for watcher in self._watchers.values():
                watcher.start()
            await self._start_when_ready()
            await self._stop.wait()
            logger.info("stopping pipeline %r: %s", self.config.name, self._stop_reason)
            await self._shutdown()
            await self._services.stop()  # last: actors may use them until they are gone
            return self._exit_code
        except rundir.RunDirError as exc:
            raise SupervisorError(str(exc)) from exc
        except (OSError, zmq.ZMQError) as exc:
            where = self._run_dir or self._requested_dir or rundir.base_dir()
            raise SupervisorError(f"cannot set up the run directory {where}: {exc}") from exc
        finally:
            await self._cleanup()

    # -- the Overseer protocol (what watchers call) -----------------------------------------
    def spec_for(self, watcher: Watcher) -> ActorSpec:
        """The spec ``watcher``'s next incarnation starts from."""
        actor = watcher.actor
        replica = actor.dispatcher is not None and not watcher.dispatcher
        remote = isinstance(watcher, RemoteWatcher)
        reach = self._reach
        inputs = []
        for topic in actor.inputs:
            producer = topic.partition(".")[0]
            options = actor.input_options.get(topic) or InputOptions()
            max_age = options.max_age_ms
            if max_age is None and reach is not None and (
                    remote or self.config.actor(producer).placement.remote):
                max_age = reach.settings.max_age_ms  # what crosses machines: never late
            inputs.append(InputSpec(
                topic, [] if replica else self._endpoints_of(producer, remote),
                # Turns are the user's side even from a Realtime actor: the turn
                # that causes a bump must not be dropped for the epoch it ended.
                epoch_bound=info(self.config.actor(producer).category).agent
                and not topic.endswith(".turn"),
                # The dispatcher paces frames for all replicas; each replica
                # still checks the staleness bound when it takes an item.
                fps=None if replica else options.fps, max_age_ms=max_age,
                replay_s=_replay_window(self.config.actor(producer))))
        work = self._work_endpoints.get(actor.name)
        if watcher.dispatcher:
            work = self._work_binds.get(actor.name, work)
        assert self._run_dir is not None
        seen = None if remote else rundir.seen_path(self._run_dir, watcher.name)
        replay_s = 0.0 if watcher.dispatcher else _replay_window(actor)
        return ActorSpec(
            actor=actor.name, instance=watcher.name,
            plugin="dispatch" if watcher.dispatcher else actor.plugin,
            data_endpoint=watcher.bind_endpoint if isinstance(watcher, RemoteWatcher)
            else watcher.endpoint,
            sys_pub=self._sys_tcp[1] if remote else self._sys_pub,
            sys_pull=self._sys_tcp[3] if remote else self._sys_pull,
            replica=max(0, watcher.replica),
            params={} if watcher.dispatcher else dict(actor.params),
            category=DISPATCH_CATEGORY if watcher.dispatcher else actor.category.value,
            inputs=inputs,
            expected_subscribers={} if watcher.dispatcher else expected_subscribers(
                self.config, actor),
            heartbeat_interval_s=actor.supervisor.heartbeat_interval_s, epoch=self._epoch,
            pipeline_dir=str(self.config.directory), log_level=_log_level(),
            work_endpoint=work, max_inflight=actor.max_inflight,
            env=dict(self._launch.env),
            extra_endpoints=[self._tcp_binds[watcher.name]] if watcher.name in self._tcp_binds
            else [],
            transport=reach.spec().to_dict() if reach is not None else {},
            # The default store is a file in the run directory: only this machine has it.
            state_store=self.state_store if self.config.keep_state and (
                self.config.state or not remote) else "",
            session=self.session or RUN_SESSION, run=self._run_id,
            replay_s=replay_s, replay_bytes=actor.supervisor.replay_bytes if replay_s else 0,
            seen_path=None if seen is None else str(seen),
            resume=self._resume.next_incarnation(watcher.name, seen),
        )

    def state_changed(self, watcher: Watcher, reason: str, extra: dict[str, Any]) -> None:
        """Publish ``watcher``'s new state on ``sys.actor`` and write the manifest."""
        if not watcher.alive:
            self._follower.forget(watcher.name)
        if watcher.state is State.RESTARTING:  # its consumers may hold what it would lose
            self._publish(wire_topics.CONTROL, "down", {
                "instance": watcher.name, "actor": watcher.actor.name,
                "category": watcher.actor.category.value})
        self._publish(wire_topics.ACTOR_STATE, "state", {
            "instance": watcher.name, "actor": watcher.actor.name,
            "state": watcher.state.value, "pid": watcher.pid, "exit_code": watcher.exit_code,
            "restarts": watcher.tracker.restarts, "reason": reason, **extra})
        self._write_manifest()
        self._changed.set()

    def gave_up(self, watcher: Watcher, reason: str) -> None:
        """Apply ``on_give_up`` to a given-up instance."""
        if self.config.on_give_up is GiveUpPolicy.STOP:
            logger.error("gave up on %s: %s; stopping the pipeline (on_give_up = 'stop')",
                         watcher.name, reason)
            self._exit_code = EXIT_FAILURE
            self._begin_stop(f"{watcher.name} was given up")
        else:
            logger.error("gave up on %s: %s; running without it (on_give_up = 'degrade')",
                         watcher.name, reason)

    def ended(self) -> None:
        """An instance will not run again: stop once every instance has ended."""
        if all(w.state in FINAL for w in self._watchers.values()):
            if any(w.state is State.GAVE_UP for w in self._watchers.values()):
                self._exit_code = EXIT_FAILURE
            self._begin_stop("every instance has ended")

    # -- preparation ------------------------------------------------------------------------
    def _prepare(self) -> None:
        rundir.prune_stale()
        run_dir = rundir.create_run_dir(self.config.name, path=self._requested_dir,
                                        session=self.session)
        self._run_dir = run_dir
        if self._own_pool:
            pool = WarmPool(self._python, self.config.directory, run_dir, _log_level())
            for actor in self.config.actors:
                pool.want(actor, actor.supervisor.warm_spares)
            self._launch = dataclasses.replace(self._launch, pool=pool)
        self._sys_pub = rundir.endpoint(run_dir, rundir.SYS_PUB_NAME)
        self._sys_pull = rundir.endpoint(run_dir, rundir.SYS_PULL_NAME)
        self._ctx = zmq.asyncio.Context()
        if self.config.remote:
            try:
                self._reach = Reach(self.config, self._ctx, self._worker_changed)
            except TransportError as exc:
                raise SupervisorError(f"pipeline {self.config.name!r}: {exc}") from exc
            pub_bind, pub_adv = self._reach.own(1)
            pull_bind, pull_adv = self._reach.own(2)
            self._sys_tcp = (pub_bind, pub_adv, pull_bind, pull_adv)
        sync_ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context.shadow(self._ctx.underlying)
        self._pub = sync_ctx.socket(zmq.PUB)
        self._pub.setsockopt(zmq.LINGER, 0)
        self._pub.setsockopt(zmq.SNDHWM, PUB_HWM)
        self._pub.bind(self._sys_pub)
        if self._reach is not None:
            self._reach.link.bind(self._pub, self._sys_tcp[0])
        self._manifest = rundir.Manifest(
            pipeline=self.config.name, path=str(self.config.path), supervisor_pid=os.getpid(),
            run_dir=str(run_dir), sys_pub=self._sys_pub, sys_pull=self._sys_pull,
            session=self.session,
            state_store=self.state_store if self.config.keep_state else None)
        self._write_manifest()

    async def _reach_out(self) -> None:
        """Actors on workers: start the worker links and place every remote instance."""
        reach = self._reach
        if reach is None:
            return
        assert self._ctx is not None
        try:
            reach.registry.start(self._ctx)
            await reach.place()
        except TimeoutError as exc:
            raise SupervisorError(f"pipeline {self.config.name!r} not started: {exc}") from exc
        except TransportError as exc:
            raise SupervisorError(f"pipeline {self.config.name!r}: {exc}") from exc

    def _make_watchers(self) -> None:
        """One watcher per instance (a dispatcher first: its replicas connect to it)."""
        assert self._run_dir is not None
        run_dir, reach = self._run_dir, self._reach
        for actor in self.config.actors:
            if actor.dispatcher is not None:
                self._work_endpoints[actor.name] = rundir.endpoint(run_dir, f"{actor.name}.work")
                if reach is not None and actor.placement.remote:
                    self._work_binds[actor.name], self._work_endpoints[actor.name] = \
                        reach.next_local()
                name = actor.dispatcher
                # Socket names stay short: ipc paths are limited to 107 bytes.
                self._watchers[name] = Watcher(
                    actor, -1, name, rundir.endpoint(run_dir, f"{actor.name}.dsp"),
                    run_dir / f"{name}.spec.json", [], self, self._launch, dispatcher=True)
            for replica, name in enumerate(actor.instances):
                topics = published_topics(self.config, actor)
                placed = reach.placed.get(name) if reach is not None else None
                if placed is not None:
                    assert reach is not None
                    self._watchers[name] = RemoteWatcher(
                        actor, replica, name, placed.endpoint, run_dir / f"{name}.spec.json",
                        topics, self, self._launch, worker=placed.worker,
                        bind_endpoint=placed.bind, registry=reach.registry)
                    continue
                if reach is not None and reach.needs_tcp(actor):
                    self._tcp_binds[name], self._tcp_of[name] = reach.next_local()
                self._watchers[name] = Watcher(
                    actor, replica, name, rundir.endpoint(run_dir, name),
                    run_dir / f"{name}.spec.json", topics, self, self._launch)
        self._write_manifest()

    def _worker_changed(self, worker: Worker) -> None:
        self._publish(wire_topics.ACTOR_STATE, "worker", worker.summary(time.monotonic()))
        self._changed.set()

    def _spawn_tasks(self) -> None:
        assert self._ctx is not None
        wanted = follower_topics(self.config)
        endpoints = [w.endpoint for w in self._watchers.values()
                     if w.actor.name in wanted and not w.dispatcher]
        topics = [topic for listed in wanted.values() for topic in listed]
        coros: list[tuple[str, Coroutine[Any, Any, None]]] = [
            ("reports", self._read_reports()), ("monitor", self._monitor()),
            ("follower", self._follower.run(self._ctx, endpoints, topics,
                                            self._reach.link if self._reach else None))]
        self._tasks = [asyncio.create_task(coro, name=f"supervisor-{name}")
                       for name, coro in coros]

    def _endpoints_of(self, actor: str, remote: bool = False) -> list[str]:
        """Data endpoints of ``actor``'s instances (its replicas; never a dispatcher).

        ``remote``: as a consumer on a worker reaches them (tcp).
        """
        return [self._tcp_of.get(w.name, w.endpoint) if remote else w.endpoint
                for w in self._watchers.values() if w.actor.name == actor and not w.dispatcher]

    # -- start-up ---------------------------------------------------------------------------
    async def _start_when_ready(self) -> None:
        """Wait until every instance is ready (or out of the game), then send ``start``."""
        while not self._stop.is_set():
            states = [w.state for w in self._watchers.values()]
            if all(state is State.READY or state in FINAL for state in states):
                break
            self._changed.clear()
            stop = asyncio.ensure_future(self._stop.wait())
            changed = asyncio.ensure_future(self._changed.wait())
            await asyncio.wait({stop, changed}, return_when=asyncio.FIRST_COMPLETED)
            stop.cancel()
            changed.cancel()
        if self._stop.is_set():
            return
        ready = [w for w in self._watchers.values() if w.state is State.READY]
        self._publish(wire_topics.CONTROL, "start", {"targets": []})
        now = time.monotonic()
        for watcher in ready:
            watcher.sent_at = now
            watcher.set_state(State.RUNNING)
        self._started.set()
        logger.info("pipeline %r started: %d/%d instances running", self.config.name,
                    len(ready), len(self._watchers))
        if self._own_pool and self._launch.pool is not None:
            self._launch.pool.start()  # spares for restarts, once the start-up is paid

    def _not_ready(self) -> str:
        waiting = [f"{w.name} ({w.state})" for w in self._watchers.values()
                   if w.state is not State.READY and w.state is not State.RUNNING]
        return "waiting for " + ", ".join(waiting) if waiting else "every instance is ready"

    # -- reports from the hosts -------------------------------------------------------------
    async def _read_reports(self) -> None:
        assert self._ctx is not None
        pull = self._ctx.socket(zmq.PULL)
        pull.setsockopt(zmq.LINGER, 0)
        pull.bind(self._sys_pull)
        if self._reach is not None:
            self._reach.link.bind(pull, self._sys_tcp[2])
        try:
            while True:
                frames = await pull.recv_multipart()
                try:
                    message = decode(frames)
                except WireError as exc:
                    logger.debug("dropped a malformed report: %s", exc)
                    continue
                if message.kind is Kind.CONTROL:
                    self._on_report(message.source, message.control())
        finally:
            pull.close(0)

    def _on_report(self, source: str, control: Control) -> None:
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
        if self._started.is_set() and not self._stopping:
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

    # -- health and metrics -----------------------------------------------------------------
    async def _monitor(self) -> None:
        next_metrics = time.monotonic() + self._metrics_interval
        while True:
            before = time.monotonic()
            await asyncio.sleep(MONITOR_INTERVAL_S)
            now = time.monotonic()
            self._loop_lag_ms = max(0.0, (now - before - MONITOR_INTERVAL_S) * 1000)
            for watcher in self._watchers.values():
                watcher.check_health(now)
                self._reconcile(watcher, now)
            if now >= next_metrics:
                next_metrics = now + self._metrics_interval
                for watcher in self._watchers.values():
                    watcher.sample()
                self._publish(wire_topics.METRICS, "metrics", self._metrics())

    def _reconcile(self, watcher: Watcher, now: float) -> None:
        """Re-send what a host missed: PUB delivery is not guaranteed to a late joiner.

        Heartbeats carry the host's state and epoch; a host still ``ready``
        after ``start`` went out, or behind the epoch, gets it again (hosts
        ignore repeats).
        """
        beat = watcher.heartbeat
        if not beat or not watcher.alive or self._stopping or \
                now - watcher.sent_at < RESEND_AFTER_S:
            return
        if watcher.state is State.RUNNING and beat.get("state") == "ready":
            watcher.sent_at = now
            self._publish(wire_topics.CONTROL, "start", {"targets": [watcher.name]})
        epoch = beat.get("epoch")
        if isinstance(epoch, int) and epoch < self._epoch:
            watcher.sent_at = now
            self._publish(wire_topics.EPOCH, "epoch", {"epoch": self._epoch,
                                                        "reason": "resent"})

    def _metrics(self) -> dict[str, Any]:
        try:
            own = {"pid": os.getpid(), "cpu_percent": self._self_ps.cpu_percent(None),
                   "rss": self._self_ps.memory_info().rss,
                   "loop_lag_ms": round(self._loop_lag_ms, 2)}
        except psutil.Error:
            own = {"pid": os.getpid(), "loop_lag_ms": round(self._loop_lag_ms, 2)}
        # [[service]] processes: `va-launch status` checks each health_url itself.
        states = self._services.states
        services = [{"name": svc.name, "pid": self._services.pid_of(svc.name),
                     "state": states.get(svc.name), "health_url": svc.health_url}
                    for svc in self.config.services]
        return metrics_snapshot(self.status(), own, services, self._follower.latency_summary(),
                                self._remote_summary())

    def _remote_summary(self) -> dict[str, Any] | None:
        """Workers, and the peers this supervisor refused (sys.metrics ``remote``)."""
        reach = self._reach
        if reach is None:
            return None
        return {"listen": reach.settings.listen, "advertise": reach.advertise,
                "insecure": reach.settings.insecure, "workers": reach.registry.summary(),
                "refused": reach.link.refusals(),
                "refused_names": reach.registry.refused_names}

    # -- shutdown ---------------------------------------------------------------------------
    async def _shutdown(self) -> None:
        """Stop layer by layer, sources first: shutdown, deadline, SIGTERM, SIGKILL."""
        self._stopping = True
        for layer in self.config.layers():
            members = [w for w in self._watchers.values() if w.actor.name in layer]
            await self._stop_layer(members)
        tasks = [w.task for w in self._watchers.values() if w.task is not None]
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _stop_layer(self, members: list[Watcher]) -> None:
        for watcher in members:
            watcher.abandon_restart()
        alive = [w for w in members if w.alive]
        if not alive:
            return
        deadline = max(w.settings.shutdown_deadline_s for w in alive)
        self._publish(wire_topics.CONTROL, "shutdown",
                      {"targets": [w.name for w in alive], "deadline_s": deadline})
        await asyncio.gather(*(w.stop() for w in alive))

    async def _cleanup(self) -> None:
        """Whatever happened: no child left, no task left, no socket, no run dir."""
        self._stopping = True
        self._begin_stop("supervisor exiting")
        for watcher in self._watchers.values():
            watcher.abandon_restart()
            watcher.signal(signal.SIGKILL)
        for watcher in self._watchers.values():
            with contextlib.suppress(Exception):
                await watcher.exited_within(5.0)
        watch_tasks = [w.task for w in self._watchers.values() if w.task is not None]
        for task in [*self._tasks, *watch_tasks]:
            task.cancel()
        await asyncio.gather(*self._tasks, *watch_tasks, return_exceptions=True)
        await self._follower.close()
        if self._own_pool and self._launch.pool is not None:
            await self._launch.pool.close()
        await self._services.stop()
        if self._reach is not None:
            await self._reach.registry.close()
        if self._pub is not None:
            self._pub.close(0)
        if self._reach is not None:
            self._reach.link.close()
        if self._ctx is not None:
            self._ctx.destroy(0)
        if self._run_dir is not None:
            rundir.remove_run_dir(self._run_dir)
        self._done.set()

    # -- services ---------------------------------------------------------------------------
    async def _start_services(self) -> bool:
        """Start every ``[[service]]`` and wait until healthy; False if a stop came first.

        Raises:
            SupervisorError: a service failed; no actor is started.
        """
        starting = asyncio.ensure_future(self._services.start())
        stop = asyncio.ensure_future(self._stop.wait())
        try:
            await asyncio.wait({starting, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
            if not starting.done():
                starting.cancel()
                await asyncio.gather(starting, return_exceptions=True)
        if starting.cancelled():
            return False
        try:
            starting.result()
        except ServiceError as exc:
            raise SupervisorError(f"pipeline {self.config.name!r} not started: {exc}") from exc
        return True

    def _on_service_lost(self, name: str) -> None:
        self._exit_code = EXIT_FAILURE
        self._begin_stop(f"service {name} exited")

    def _publish_service_state(self, name: str, state: str, pid: int | None,
                               reason: str) -> None:
        self._publish(wire_topics.ACTOR_STATE, "state", {
            "instance": name, "actor": name, "service": True, "state": state, "pid": pid,
            "reason": reason})

    # -- publishing -------------------------------------------------------------------------
    def _publish(self, topic: str, op: str, args: dict[str, Any]) -> None:
        if self._pub is None:
            return
        seq = self._seq.get(topic, 0)
        self._seq[topic] = seq + 1
        frames = encode_control(topic, Control(op, args), seq=seq, epoch=self._epoch,
                                source=wire_topics.SYSTEM_ACTOR)
        with contextlib.suppress(zmq.Again):
            self._pub.send_multipart(frames, flags=zmq.NOBLOCK)

    def _write_manifest(self) -> None:
        if self._manifest is None or self._run_dir is None:
            return
        self._manifest.epoch = self._epoch
        if self._reach is not None:
            self._manifest.transport = self._reach.spec().to_dict()
        self._manifest.instances = [
            rundir.InstanceRecord(
                instance=w.name, actor=w.actor.name, replica=w.replica,
                endpoint=w.endpoint, topics=list(w.topics), pid=w.pid if w.alive else None,
                state=w.state.value, restarts=w.tracker.restarts,
                worker=w.worker.name if isinstance(w, RemoteWatcher) else None)
            for w in self._watchers.values()]
        with contextlib.suppress(OSError):
            rundir.write_manifest(self._run_dir, self._manifest)
