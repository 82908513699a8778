"""A watcher: the life of one actor instance's process (Circus's watcher/process).

Spawn, wait, decide (the restart policy), maybe restart; kill when sick; stop
in steps at shutdown. A watcher owns its instance's state and its process;
it learns about the rest of the pipeline only through the small
:class:`Overseer` protocol the arbiter gives it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import psutil

from va_actors.runtime import env_refs
from va_actors.runtime.config import ActorConfig
from va_actors.runtime.lifeline import child_env
from va_actors.runtime.policy import Action, RestartPolicy, RestartTracker
from va_actors.runtime.spec import ActorSpec
from va_actors.runtime.supervisor.pool import WarmPool
from va_actors.runtime.supervisor.status import InstanceStatus, State, heartbeat_counters

__all__ = ["TERM_GRACE_S", "InstanceProcess", "Launch", "Overseer", "Watcher"]

logger = logging.getLogger("va_actors.runtime.supervisor")

TERM_GRACE_S = 2.0
"""After SIGTERM, how long an instance gets before SIGKILL."""


class InstanceProcess(Protocol):
    """What a watcher waits on: a local child (asyncio's Process) or one on a worker."""

    @property
    def pid(self) -> int | None:
        """Its pid (on its machine), once known."""

    @property
    def returncode(self) -> int | None:
        """Its exit code once it has exited, else None."""

    async def wait(self) -> int:
        """Wait for the exit; return the exit code."""


class Overseer(Protocol):
    """What a watcher needs from the arbiter (and nothing more)."""

    @property
    def stopping(self) -> bool:
        """The pipeline is shutting down: no more restarts."""

    @property
    def stop_reason(self) -> str:
        """Why it is shutting down."""

    def spec_for(self, watcher: Watcher) -> ActorSpec:
        """The spec the next incarnation starts from (current epoch, endpoints)."""

    def state_changed(self, watcher: Watcher, reason: str, extra: dict[str, Any]) -> None:
        """``watcher.state`` just changed: publish it, write the manifest."""

    def gave_up(self, watcher: Watcher, reason: str) -> None:
        """The instance was given up; the pipeline applies ``on_give_up``."""

    def ended(self) -> None:
        """The instance will not run again (stopped or given up)."""


@dataclass(frozen=True)
class Launch:
    """How instance processes are started.

    Attributes:
        python: interpreter of the hosts whose actor has no environment of its
            own (and of every dispatcher, which never imports the plugin).
        cwd: their working directory (the pipeline file's).
        pool: warm spares to take instead of starting a process cold.
        env: session variables every spec carries (``VA_SESSION_ID``, ...).
    """

    python: str
    cwd: Path
    pool: WarmPool | None = None
    env: Mapping[str, str] = field(default_factory=dict)

    def interpreter(self, actor: ActorConfig, *, dispatcher: bool = False) -> str:
        """The interpreter that runs ``actor``'s host: its environment's, or ours."""
        return self.python if dispatcher else actor.host_python(self.python)


class Watcher:
    """One actor instance: its state, its process, and the task that keeps it running."""

    def __init__(self, actor: ActorConfig, replica: int, name: str, endpoint: str,
                 spec_path: Path, topics: list[str], overseer: Overseer, launch: Launch, *,
                 dispatcher: bool = False) -> None:
        self.actor = actor
        self.replica = replica
        self.dispatcher = dispatcher
        """True for the dispatcher process of a replicated actor (runtime/dispatcher.py)."""
        self.name = name
        self.endpoint = endpoint
        self.spec_path = spec_path
        self.topics = topics
        self.settings = actor.supervisor
        self.tracker = RestartTracker(RestartPolicy.from_settings(actor.supervisor))
        self.state = State.STARTING
        self.reason = ""
        self.exit_code: int | None = None
        self.proc: InstanceProcess | None = None
        self.spawned_at = 0.0
        self.last_seen = 0.0
        """When the host last reported (heartbeat, ready...)."""
        self.sent_at = 0.0
        """When start or an epoch was last sent that this instance must act on."""
        self.heartbeat: dict[str, Any] = {}
        self.cpu_percent = 0.0
        self.rss = 0
        self.stopping = False
        self.warm_starts = 0
        """Incarnations that came from the warm pool."""
        self._overseer = overseer
        self._launch = launch
        self._ps: psutil.Process | None = None
        self._kill_reason = ""
        self._carried_in = self._carried_out = 0
        self._carried_drops: dict[str, int] = {}
        self._carried_replay: dict[str, int] = {}
        self._wake = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    # -- state ----------------------------------------------------------------------------
    @property
    def pid(self) -> int | None:
        """Pid of the current (or last) process."""
        return self.proc.pid if self.proc is not None else None

    @property
    def alive(self) -> bool:
        """A process is running."""
        return self.proc is not None and self.proc.returncode is None

    @property
    def killing(self) -> bool:
        """The supervisor already killed this incarnation (hang, memory...)."""
        return bool(self._kill_reason)

    def set_state(self, state: State, *, reason: str = "", **extra: Any) -> None:
        """Move to ``state`` and tell the overseer."""
        self.state = state
        if reason:
            self.reason = reason
        self._overseer.state_changed(self, reason, extra)

    def counters(self) -> tuple[int, int, dict[str, int]]:
        """Messages in, out and drops by reason, summed over every incarnation."""
        now_in, now_out, now_drops = heartbeat_counters(self.heartbeat)
        drops = dict(self._carried_drops)
        for reason, count in now_drops.items():
            drops[reason] = drops.get(reason, 0) + count
        return self._carried_in + now_in, self._carried_out + now_out, drops

    def replay_counters(self) -> dict[str, int]:
        """Replay counters (runtime/replay/), summed over every incarnation."""
        out = dict(self._carried_replay)
        beat = self.heartbeat.get("replay")
        for name, count in (beat.items() if isinstance(beat, Mapping) else ()):
            if isinstance(count, int):
                out[str(name)] = out.get(str(name), 0) + count
        return out

    def status(self, now: float) -> InstanceStatus:
        """A snapshot for status and metrics."""
        msgs_in, msgs_out, drops = self.counters()
        beat = self.heartbeat
        return InstanceStatus(
            instance=self.name, actor=self.actor.name, replica=self.replica, pid=self.pid,
            state=self.state.value, restarts=self.tracker.restarts, exit_code=self.exit_code,
            reason=self.reason, cpu_percent=self.cpu_percent, rss_bytes=self.rss,
            msgs_in=msgs_in, msgs_out=msgs_out, drops=drops,
            loop_lag_ms=float(beat.get("loop_lag_ms") or 0.0),
            queue=dict(beat.get("queue") or {}),
            heartbeat_age_s=round(now - self.last_seen, 3) if self.alive else None,
            work=dict(beat.get("work") or {}), warm_starts=self.warm_starts,
            refused=dict(beat.get("refused") or {}), replay=self.replay_counters(),
        )

    # -- life -----------------------------------------------------------------------------
    def start(self) -> None:
        """Start the task that keeps the instance running."""
        self.task = asyncio.create_task(self._watch(), name=f"watch-{self.name}")

    async def _watch(self) -> None:
        """Spawn, wait, decide; until the instance stops, is given up, or we stop."""
        overseer = self._overseer
        while not (overseer.stopping or self.stopping):
            try:
                await self._spawn()
            except (OSError, ValueError) as exc:
                # Not transient (no interpreter, unwritable run dir): restarting cannot help.
                self._give_up(f"cannot start: {exc}")
                overseer.ended()
                return
            assert self.proc is not None
            code = await self.proc.wait()
            delay = self._on_exit(code)
            if delay is None:
                return
            if delay > 0:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), delay)
        self.set_state(State.STOPPED, reason=overseer.stop_reason or "stopped")

    async def _spawn(self) -> None:
        self._overseer.spec_for(self).write(self.spec_path)
        self._kill_reason = ""
        self.exit_code = None
        pool = self._launch.pool
        spare = pool.take(self.actor) if pool is not None and not self.dispatcher else None
        if spare is not None:
            await spare.assign(self.spec_path)
            self.proc = spare.proc
            self.warm_starts += 1
        else:
            env = child_env({**os.environ, **env_refs.expand(self.actor.env, os.environ)})
            self.proc = await asyncio.create_subprocess_exec(
                self._launch.interpreter(self.actor, dispatcher=self.dispatcher),
                "-m", "va_actors.runtime.host", str(self.spec_path),
                env=env, stdin=asyncio.subprocess.DEVNULL, cwd=self._launch.cwd,
                # Own process group: a terminal's Ctrl-C reaches only the supervisor,
                # which then stops actors in order; killpg also takes an actor's helpers.
                process_group=0,
            )
        now = time.monotonic()
        self.spawned_at = self.last_seen = now
        self.tracker.started(now)
        self._ps = None
        with contextlib.suppress(psutil.Error):
            self._ps = psutil.Process(self.proc.pid)
            self._ps.cpu_percent(None)  # the first call only sets the baseline
        where = self.actor.environment
        logger.info("started %s (pid %d%s)%s; extra env: %s", self.name, self.proc.pid,
                    ", warm" if spare is not None else "",
                    f" in {where.describe()}" if where and not self.dispatcher else "",
                    ", ".join(sorted(self.actor.env)) or "none")
        self.set_state(State.STARTING)
        if self._overseer.stopping or self.stopping:
            # Stop began while we were spawning: never leave this one behind.
            self.signal(signal.SIGKILL)

    def _on_exit(self, code: int) -> float | None:
        """Record an exit; return the delay before restarting, or None to stay down."""
        overseer = self._overseer
        self.exit_code = code
        self._carry_counters()
        if overseer.stopping or self.stopping:
            self.set_state(State.STOPPED, reason=overseer.stop_reason or "stopped")
            return None
        decision = self.tracker.exited(code, time.monotonic(), self._kill_reason)
        logger.warning("%s (pid %s) %s", self.name, self.pid, decision.reason)
        self.set_state(State.EXITED, reason=decision.reason)
        if decision.action is Action.RESTART:
            self.set_state(State.RESTARTING, reason=decision.reason,
                           delay_s=round(decision.delay_s, 3))
            return decision.delay_s
        if decision.action is Action.GIVE_UP:
            self._give_up(decision.reason)
        else:
            self.set_state(State.STOPPED, reason=decision.reason)
        overseer.ended()
        return None

    def _give_up(self, reason: str) -> None:
        self.set_state(State.GAVE_UP, reason=reason)
        self._overseer.gave_up(self, reason)

    def _carry_counters(self) -> None:
        """Fold the ended incarnation's counters into the running totals."""
        self._carried_in, self._carried_out, self._carried_drops = self.counters()
        self._carried_replay = self.replay_counters()
        self.heartbeat = {}

    # -- health ----------------------------------------------------------------------------
    def check_health(self, now: float) -> None:
        """Kill the instance if it did not get ready in time or stopped heartbeating."""
        if not self.alive or self._kill_reason or self._overseer.stopping:
            return
        settings = self.settings
        if self.state is State.STARTING and now - self.spawned_at > settings.start_timeout_s:
            self.kill(f"start_timeout: not ready after {settings.start_timeout_s:g} s")
        elif self.state in (State.READY, State.RUNNING) and \
                now - self.last_seen > settings.hang_timeout_s:
            self.kill(f"hang: no heartbeat for {now - self.last_seen:.1f} s "
                      f"(hang_timeout_s {settings.hang_timeout_s:g})")

    def sample(self) -> None:
        """Read CPU and RSS; kill the instance when it is over its memory limit."""
        if not self.alive or self._ps is None:
            self.cpu_percent, self.rss = 0.0, 0
            return
        try:
            with self._ps.oneshot():
                self.cpu_percent = self._ps.cpu_percent(None)
                self.rss = self._ps.memory_info().rss
        except psutil.Error:
            return
        limit = self.settings.memory_limit_mb
        if limit and self.rss > limit * 1024 * 1024 and not self._overseer.stopping:
            self.kill(f"memory: RSS {self.rss / 2**20:.0f} MB over memory_limit_mb {limit}")

    def kill(self, reason: str) -> None:
        """Kill a sick instance; the watch task then applies the restart policy."""
        if not self.alive or self._kill_reason:
            return
        logger.warning("killing %s (pid %s): %s", self.name, self.pid, reason)
        self._kill_reason = reason
        self.signal(signal.SIGKILL)

    def signal(self, signum: int) -> None:
        """Send ``signum`` to the instance's process group (or the process alone)."""
        if not self.alive or self.pid is None:
            return
        try:
            os.killpg(self.pid, signum)
        except ProcessLookupError:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signum)
        except PermissionError:
            # The group went away and its id was reused: signal only our child.
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signum)

    # -- stopping -----------------------------------------------------------------------------
    def abandon_restart(self) -> None:
        """No further incarnation: a pending restart must not happen later."""
        self.stopping = True
        self._wake.set()

    async def stop(self) -> None:
        """After ``shutdown`` went out: wait the deadline, then SIGTERM, then SIGKILL."""
        steps: list[tuple[int | None, float]] = [
            (None, self.settings.shutdown_deadline_s), (signal.SIGTERM, TERM_GRACE_S),
            (signal.SIGKILL, 5.0)]
        for signum, wait_s in steps:
            if signum is not None:
                logger.warning("%s did not stop in time; sending %s", self.name,
                               signal.Signals(signum).name)
                self.signal(signum)
            if await self.exited_within(wait_s):
                return
        logger.error("%s (pid %s) survived SIGKILL", self.name, self.pid)

    async def exited_within(self, seconds: float) -> bool:
        """Wait up to ``seconds`` for the process to exit; True if it has."""
        if self.proc is None:
            return True
        try:
            await asyncio.wait_for(asyncio.shield(self.proc.wait()), seconds)
        except TimeoutError:
            return False
        return True

