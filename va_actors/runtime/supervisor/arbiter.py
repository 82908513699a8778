"""The arbiter: runs one pipeline (Circus's arbiter).

It prepares the run directory and sockets, starts the ``[[service]]``s, gives
every actor instance a :class:`~.watcher.Watcher`, sends ``start`` once all
are ready, publishes state changes, owns the epoch, and stops everything in
order. The rest is in the hands of the parts it wires together, each given
only what it needs:

* :class:`~.specs.SpecBuilder`: the spec of every incarnation (``spec_for``);
* :class:`~.reports.ReportReader`: the hosts' reports on ``sys.pull``;
* :class:`~.health.HealthMonitor`: health checks, re-sends, ``sys.metrics``;
* :class:`~.publisher.SysPublisher`: the ``sys.pub`` socket;
* :class:`~.follower.SessionFollower`: what the user and the agent are doing
  (turns, playback, sources finished); it calls back :meth:`bump_epoch` and
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

import zmq
import zmq.asyncio

from va_actors.runtime import rundir
from va_actors.runtime.config import GiveUpPolicy, PipelineConfig
from va_actors.runtime.exits import EXIT_FAILURE, EXIT_OK
from va_actors.runtime.services import ServiceError, Services
from va_actors.runtime.session_vars import RUN_SESSION, SESSION_ID
from va_actors.runtime.spec import ActorSpec
from va_actors.runtime.supervisor.follower import SessionFollower
from va_actors.runtime.supervisor.health import HealthMonitor
from va_actors.runtime.supervisor.metrics import metrics_snapshot
from va_actors.runtime.supervisor.pool import WarmPool
from va_actors.runtime.supervisor.publisher import SysPublisher, manifest_instances
from va_actors.runtime.supervisor.reach import Reach
from va_actors.runtime.supervisor.remote import RemoteWatcher
from va_actors.runtime.supervisor.reports import ReportReader
from va_actors.runtime.supervisor.resume import ResumeBook
from va_actors.runtime.supervisor.specs import SpecBuilder, Wiring, host_log_level, state_store_of
from va_actors.runtime.supervisor.status import FINAL, PipelineStatus, State
from va_actors.runtime.supervisor.topology import follower_topics, published_topics
from va_actors.runtime.supervisor.watcher import Launch, Watcher
from va_actors.runtime.supervisor.workers import Worker
from va_actors.runtime.transport import TransportError
from va_actors.wire import topics as wire_topics

__all__ = ["Supervisor", "SupervisorError"]

logger = logging.getLogger("va_actors.runtime.supervisor")


class SupervisorError(RuntimeError):
    """The supervisor cannot run the pipeline; the message says why."""


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
        self._python = python
        self._own_pool = pool is None and any(a.supervisor.warm_spares for a in config.actors)
        session_env = {SESSION_ID: session or RUN_SESSION, **(env or {})}
        self._launch = Launch(python=python, cwd=config.directory, pool=pool, env=session_env)
        self._run_dir: Path | None = None
        self._watchers: dict[str, Watcher] = {}
        self._wiring = Wiring()
        self._specs: SpecBuilder | None = None
        """Made once the run directory and the reach are known (prepare())."""
        self._reach: Reach | None = None
        """Actors on workers: tcp endpoints, keys, the worker links (supervisor/reach.py)."""
        self._epoch = 0
        self._epoch_resumed = False  # the bump to the epoch in force was a resume
        self._resume = ResumeBook()
        self._ctx: zmq.asyncio.Context | None = None
        self._sys = SysPublisher(lambda: self._epoch)
        self._publish = self._sys.publish  # what every part given a Publish calls
        self._tasks: list[asyncio.Task[None]] = []
        self._stop = asyncio.Event()
        self._started = asyncio.Event()
        self._done = asyncio.Event()
        self._changed = asyncio.Event()
        self._stopping = False
        self._stop_reason = ""
        self._exit_code = EXIT_OK
        self._manifest: rundir.Manifest | None = None
        self._services = Services(config.services if services else (),
                                  on_state=self._publish_service_state,
                                  on_lost=self._on_service_lost, python=python,
                                  cwd=config.directory)
        self._follower = SessionFollower(
            self.bump_epoch, self.request_stop,
            sources=[name for actor in config.actors if not actor.inputs
                     for name in actor.instances], on_latency=on_latency)
        self._health = HealthMonitor(self._watchers, self._publish, epoch=lambda: self._epoch,
                                     resumed=lambda: self._epoch_resumed,
                                     stopping=lambda: self._stopping, metrics=self._metrics,
                                     metrics_interval_s=metrics_interval_s)
        self._reports = ReportReader(
            self._watchers, self._resume, self._publish,
            running=lambda: self._started.is_set() and not self._stopping)

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
        return state_store_of(self.config, self._run_dir)

    @property
    def run_dir(self) -> Path | None:
        """The run directory, once :meth:`run` has created it."""
        return self._run_dir

    @property
    def sys_pub(self) -> str:
        """Endpoint of the supervisor's PUB socket (empty before :meth:`run`)."""
        return self._wiring.sys_pub

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

    def bump_epoch(self, reason: str, *, resume: bool = False) -> int:
        """Start a new epoch (barge-in) and broadcast it on ``sys.epoch`` at once.

        ``resume``: the user went on with the turn the agent was answering (its
        reply does not count as heard; see the session follower).
        """
        self._epoch += 1
        self._epoch_resumed = resume
        logger.info("epoch %d (%s)", self._epoch, reason)
        now = time.monotonic()
        for watcher in self._watchers.values():
            watcher.sent_at = now
        args: dict[str, Any] = {"epoch": self._epoch, "reason": reason}
        if resume:
            args["resume"] = True
        self._publish(wire_topics.EPOCH, "epoch", args)
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
        assert self._specs is not None, "specs are built once prepare() laid the sockets out"
        return self._specs.build(watcher, self._epoch)

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
            pool = WarmPool(self._python, self.config.directory, run_dir, host_log_level())
            for actor in self.config.actors:
                pool.want(actor, actor.supervisor.warm_spares)
            self._launch = dataclasses.replace(self._launch, pool=pool)
        wiring = self._wiring
        wiring.sys_pub = rundir.endpoint(run_dir, rundir.SYS_PUB_NAME)
        wiring.sys_pull = rundir.endpoint(run_dir, rundir.SYS_PULL_NAME)
        self._ctx = zmq.asyncio.Context()
        if self.config.remote:
            try:
                self._reach = Reach(self.config, self._ctx, self._worker_changed)
            except TransportError as exc:
                raise SupervisorError(f"pipeline {self.config.name!r}: {exc}") from exc
            pub_bind, pub_adv = self._reach.own(1)
            pull_bind, pull_adv = self._reach.own(2)
            wiring.sys_tcp = (pub_bind, pub_adv, pull_bind, pull_adv)
        self._sys.bind(self._ctx, wiring.sys_pub, self._reach.link if self._reach else None,
                       wiring.sys_tcp[0])
        self._specs = SpecBuilder(self.config, run_dir, self._reach, wiring, self._watchers,
                                  self._resume, session=self.session, env=self._launch.env)
        self._manifest = rundir.Manifest(
            pipeline=self.config.name, path=str(self.config.path), supervisor_pid=os.getpid(),
            run_dir=str(run_dir), sys_pub=wiring.sys_pub, sys_pull=wiring.sys_pull,
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
        run_dir, reach, wiring = self._run_dir, self._reach, self._wiring
        for actor in self.config.actors:
            if actor.dispatcher is not None:
                wiring.work_endpoints[actor.name] = rundir.endpoint(run_dir,
                                                                    f"{actor.name}.work")
                if reach is not None and actor.placement.remote:
                    wiring.work_binds[actor.name], wiring.work_endpoints[actor.name] = \
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
                    wiring.tcp_binds[name], wiring.tcp_of[name] = reach.next_local()
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
        link = self._reach.link if self._reach else None
        coros: list[tuple[str, Coroutine[Any, Any, None]]] = [
            ("reports", self._reports.run(self._ctx, self._wiring.sys_pull, link,
                                          self._wiring.sys_tcp[2])),
            ("monitor", self._health.run()),
            ("follower", self._follower.run(self._ctx, endpoints, topics, link))]
        self._tasks = [asyncio.create_task(coro, name=f"supervisor-{name}")
                       for name, coro in coros]

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

    # -- metrics ---------------------------------------------------------------------------
    def _metrics(self, own: Mapping[str, Any]) -> dict[str, Any]:
        """The ``sys.metrics`` args, given the supervisor process's own figures."""
        # [[service]] processes: `va-launch status` checks each health_url itself.
        states = self._services.states
        services = [{"name": svc.name, "pid": self._services.pid_of(svc.name),
                     "state": states.get(svc.name), "health_url": svc.health_url}
                    for svc in self.config.services]
        return metrics_snapshot(self.status(), own, services, self._follower.latency_summary(),
                                self._reach.summary() if self._reach is not None else None)

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
        self._sys.close()
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

    # -- the manifest -----------------------------------------------------------------------
    def _write_manifest(self) -> None:
        if self._manifest is None or self._run_dir is None:
            return
        self._manifest.epoch = self._epoch
        if self._reach is not None:
            self._manifest.transport = self._reach.spec().to_dict()
        self._manifest.instances = manifest_instances(self._watchers.values())
        with contextlib.suppress(OSError):
            rundir.write_manifest(self._run_dir, self._manifest)
