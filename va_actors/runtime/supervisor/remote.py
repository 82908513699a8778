"""A watcher for an instance that runs on a worker (``va-launch worker``).

:class:`RemoteWatcher` is a :class:`~.watcher.Watcher`: the same states,
the same restart policy (runtime/policy.py, applied here and nowhere else),
the same Overseer. Only the process differs: ``_spawn`` sends the spec over
the worker link and waits on a :class:`~.workers.RemoteProcess`; signals go
over the link; CPU and RSS come from the worker's beats. Placement is
sticky: an instance always runs on the worker it was placed on at start-up
(its data endpoint is that worker's, so its consumers never need to be
told of a new one); while that worker is away, a restart waits for it, and
the other replicas carry the work.

While its worker is unreachable (a cut link) the instance is not judged
hung: no heartbeat can cross, and killing it would only turn a network
blip into a restart. The worker's grace period decides instead.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any

from va_actors.runtime.config import ActorConfig
from va_actors.runtime.supervisor.status import InstanceStatus, State
from va_actors.runtime.supervisor.watcher import Launch, Overseer, Watcher
from va_actors.runtime.supervisor.workers import RemoteProcess, Worker, WorkerRegistry, WorkerState

__all__ = ["RemoteWatcher"]

logger = logging.getLogger("va_actors.runtime.supervisor")

_WAIT_POLL_S = 0.2


class RemoteWatcher(Watcher):
    """One instance on a worker.

    Args:
        worker: the worker it was placed on.
        bind_endpoint: the tcp endpoint its data socket binds there.
        endpoint: the tcp endpoint others connect to (advertised).
        registry: the worker links.
        (the rest as :class:`Watcher`)
    """

    def __init__(self, actor: ActorConfig, replica: int, name: str, endpoint: str,
                 spec_path: Path, topics: list[str], overseer: Overseer, launch: Launch, *,
                 worker: Worker, bind_endpoint: str, registry: WorkerRegistry) -> None:
        super().__init__(actor, replica, name, endpoint, spec_path, topics, overseer, launch)
        self.worker = worker
        self.bind_endpoint = bind_endpoint
        self._registry = registry

    @property
    def reachable(self) -> bool:
        """Its worker is connected (reports can arrive)."""
        return self.worker.state is WorkerState.CONNECTED

    async def _spawn(self) -> None:
        await self._wait_for_worker()
        self.exit_code = None
        self._kill_reason = ""
        if self._overseer.stopping or self.stopping:
            done = RemoteProcess(self.worker.name, 0)
            done.exit(0, "stopped before it started")
            self.proc = done
            return
        spec = self._overseer.spec_for(self)
        spec.write(self.spec_path)  # a copy here, for whoever debugs the run
        self.proc = self._registry.run(self.worker, self.name, spec.to_json(),
                                       dict(self.actor.env), spec.pipeline_dir or "")
        now = time.monotonic()
        self.spawned_at = self.last_seen = now
        self.tracker.started(now)
        logger.info("started %s on worker %s (run %d)", self.name, self.worker.name,
                    self.proc.run)
        self.set_state(State.STARTING, worker=self.worker.name)

    async def _wait_for_worker(self) -> None:
        announced = False
        while not self.worker.usable and not (self._overseer.stopping or self.stopping):
            if not announced:
                logger.warning("%s waits for its worker %s (%s)", self.name, self.worker.name,
                               self.worker.state.value)
                announced = True
            await asyncio.sleep(_WAIT_POLL_S)

    def _on_exit(self, code: int) -> float | None:
        proc = self.proc
        if isinstance(proc, RemoteProcess) and proc.reason and not self._kill_reason:
            self._kill_reason = proc.reason  # a lost worker reads as a kill, with its cause
        return super()._on_exit(code)

    def signal(self, signum: int) -> None:
        """Send ``signum`` to the instance on its worker."""
        if self.alive:
            self._registry.signal(self.worker.name, self.name, signum)

    def check_health(self, now: float) -> None:
        """As a local instance's, except while its worker is unreachable."""
        if not self.reachable:
            self.last_seen = max(self.last_seen, now - 0.5 * self.settings.hang_timeout_s)
            return
        super().check_health(now)

    def sample(self) -> None:
        """CPU and RSS from the worker's beats; over the memory limit: killed."""
        figures: dict[str, Any] = self.worker.figures.get(self.name) or {}
        if not self.alive:
            self.cpu_percent, self.rss = 0.0, 0
            return
        self.cpu_percent = float(figures.get("cpu_percent") or 0.0)
        self.rss = int(figures.get("rss") or 0)
        limit = self.settings.memory_limit_mb
        if limit and self.rss > limit * 1024 * 1024 and not self._overseer.stopping:
            self.kill(f"memory: RSS {self.rss / 2**20:.0f} MB over memory_limit_mb {limit}")

    def status(self, now: float) -> InstanceStatus:
        """As a local instance's, plus its worker."""
        status = super().status(now)
        status.worker = self.worker.name
        return status

    async def stop(self) -> None:
        """As a local instance's; one on an unreachable worker is let go.

        Its worker stops it when its grace period ends (no orphan), so the
        pipeline's stop does not wait for a link that is cut.
        """
        await super().stop()
        proc = self.proc
        if isinstance(proc, RemoteProcess) and proc.returncode is None:
            proc.exit(-9, f"worker {self.worker.name} unreachable at shutdown; it stops the "
                          "instance itself after its grace period")

    async def exited_within(self, seconds: float) -> bool:
        """As a local instance's; an unreachable worker's instance cannot be waited for."""
        if self.proc is not None and self.proc.returncode is None and not self.reachable:
            return False
        return await super().exited_within(seconds)
