"""What every instance starts from: the :class:`~va_actors.runtime.spec.ActorSpec`.

The arbiter lays the run's sockets out once (:class:`Wiring`: the run
directory's ipc endpoints, and tcp ones where actors run on workers);
:class:`SpecBuilder` turns a watcher and the epoch in force into the spec its
next incarnation reads: inputs and their endpoints, staleness and replay
bounds, the conversation store, where to resume.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from va_actors.runtime import rundir
from va_actors.runtime.categories import info
from va_actors.runtime.config import ActorConfig, InputOptions, PipelineConfig
from va_actors.runtime.session_vars import RUN_SESSION
from va_actors.runtime.spec import DISPATCH_CATEGORY, ActorSpec, InputSpec
from va_actors.runtime.state.store import STATE_FILE
from va_actors.runtime.supervisor.reach import Reach
from va_actors.runtime.supervisor.remote import RemoteWatcher
from va_actors.runtime.supervisor.resume import ResumeBook
from va_actors.runtime.supervisor.topology import expected_subscribers
from va_actors.runtime.supervisor.watcher import Watcher

__all__ = ["SpecBuilder", "Wiring", "host_log_level", "replay_window", "state_store_of"]


def replay_window(actor: ActorConfig) -> float:
    """Seconds ``actor`` keeps for restarted consumers (0: no replay from it)."""
    settings = actor.supervisor
    return settings.replay_s if settings.replay_s > 0 and settings.replay_bytes > 0 else 0.0


def host_log_level() -> str:
    """The log level hosts run at: the supervisor's own (``va_actors`` logger)."""
    level = logging.getLogger("va_actors").getEffectiveLevel()
    for name in ("DEBUG", "INFO", "WARNING"):
        if level <= logging.getLevelName(name):
            return name
    return "ERROR"


def state_store_of(config: PipelineConfig, run_dir: Path) -> str:
    """The conversation store: ``[pipeline] state`` (a file or a URL), else a file in
    ``run_dir``."""
    return config.state or str(run_dir / STATE_FILE)


@dataclass
class Wiring:
    """Where the run's sockets are, as the arbiter lays them out before any spawn."""

    sys_pub: str = ""
    """The supervisor's PUB (ipc)."""
    sys_pull: str = ""
    """The supervisor's PULL (ipc)."""
    sys_tcp: tuple[str, str, str, str] = ("", "", "", "")
    """sys.pub bind, sys.pub advertised, sys.pull bind, sys.pull advertised."""
    work_endpoints: dict[str, str] = field(default_factory=dict)
    """Replicated actor -> its dispatcher's work endpoint (runtime/work.py)."""
    work_binds: dict[str, str] = field(default_factory=dict)
    """... and what the dispatcher binds, when that differs (tcp: every address)."""
    tcp_of: dict[str, str] = field(default_factory=dict)
    tcp_binds: dict[str, str] = field(default_factory=dict)
    """Local instance -> its tcp endpoint (and bind) for actors on workers."""


class SpecBuilder:
    """Builds the spec of each incarnation (the arbiter's ``spec_for``).

    Args:
        config: the pipeline.
        run_dir: the run directory (seen files, the default state store).
        reach: the tcp side, when actors run on workers.
        wiring: the run's endpoints (filled in while the watchers are made).
        watchers: every instance's watcher, by name (read at each build).
        resume: where restarted consumers resume.
        session: the session id (None: a plain run).
        env: session variables every actor gets.
    """

    def __init__(self, config: PipelineConfig, run_dir: Path, reach: Reach | None,
                 wiring: Wiring, watchers: Mapping[str, Watcher], resume: ResumeBook, *,
                 session: str | None, env: Mapping[str, str]) -> None:
        self._config = config
        self._run_dir = run_dir
        self._reach = reach
        self._wiring = wiring
        self._watchers = watchers
        self._resume = resume
        self._session = session
        self._env = env

    def build(self, watcher: Watcher, epoch: int) -> ActorSpec:
        """The spec ``watcher``'s next incarnation starts from, in ``epoch``."""
        actor, wiring, config = watcher.actor, self._wiring, self._config
        remote = isinstance(watcher, RemoteWatcher)
        work = wiring.work_endpoints.get(actor.name)
        if watcher.dispatcher:
            work = wiring.work_binds.get(actor.name, work)
        seen = None if remote else rundir.seen_path(self._run_dir, watcher.name)
        replay_s = 0.0 if watcher.dispatcher else replay_window(actor)
        return ActorSpec(
            actor=actor.name, instance=watcher.name,
            plugin="dispatch" if watcher.dispatcher else actor.plugin,
            data_endpoint=watcher.bind_endpoint if isinstance(watcher, RemoteWatcher)
            else watcher.endpoint,
            sys_pub=wiring.sys_tcp[1] if remote else wiring.sys_pub,
            sys_pull=wiring.sys_tcp[3] if remote else wiring.sys_pull,
            replica=max(0, watcher.replica),
            params={} if watcher.dispatcher else dict(actor.params),
            category=DISPATCH_CATEGORY if watcher.dispatcher else actor.category.value,
            inputs=self._inputs(watcher),
            expected_subscribers={} if watcher.dispatcher else expected_subscribers(
                config, actor),
            heartbeat_interval_s=actor.supervisor.heartbeat_interval_s, epoch=epoch,
            pipeline_dir=str(config.directory), log_level=host_log_level(),
            work_endpoint=work, max_inflight=actor.max_inflight,
            env=dict(self._env),
            extra_endpoints=[wiring.tcp_binds[watcher.name]]
            if watcher.name in wiring.tcp_binds else [],
            transport=self._reach.spec().to_dict() if self._reach is not None else {},
            # The default store is a file in the run directory: only this machine has it.
            state_store=state_store_of(config, self._run_dir) if config.keep_state and (
                config.state or not remote) else "",
            session=self._session or RUN_SESSION, run=self._run_dir.name,
            replay_s=replay_s, replay_bytes=actor.supervisor.replay_bytes if replay_s else 0,
            seen_path=None if seen is None else str(seen),
            resume=self._resume.next_incarnation(watcher.name, seen),
        )

    def _inputs(self, watcher: Watcher) -> list[InputSpec]:
        """One input spec per subscribed topic: endpoints, epoch bound, pace, bounds."""
        actor, config, reach = watcher.actor, self._config, self._reach
        replica = actor.dispatcher is not None and not watcher.dispatcher
        remote = isinstance(watcher, RemoteWatcher)
        inputs = []
        for topic in actor.inputs:
            producer = topic.partition(".")[0]
            options = actor.input_options.get(topic) or InputOptions()
            max_age = options.max_age_ms
            if max_age is None and reach is not None and (
                    remote or config.actor(producer).placement.remote):
                max_age = reach.settings.max_age_ms  # what crosses machines: never late
            inputs.append(InputSpec(
                topic, [] if replica else self.endpoints_of(producer, remote),
                # Turns are the user's side even from a Realtime actor: the turn
                # that causes a bump must not be dropped for the epoch it ended.
                epoch_bound=info(config.actor(producer).category).agent
                and not topic.endswith(".turn"),
                # The dispatcher paces frames for all replicas; each replica
                # still checks the staleness bound when it takes an item.
                fps=None if replica else options.fps, max_age_ms=max_age,
                replay_s=replay_window(config.actor(producer))))
        return inputs

    def endpoints_of(self, actor: str, remote: bool = False) -> list[str]:
        """Data endpoints of ``actor``'s instances (its replicas; never a dispatcher).

        ``remote``: as a consumer on a worker reaches them (tcp).
        """
        tcp_of = self._wiring.tcp_of
        return [tcp_of.get(w.name, w.endpoint) if remote else w.endpoint
                for w in self._watchers.values() if w.actor.name == actor and not w.dispatcher]
