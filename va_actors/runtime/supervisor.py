"""The supervisor: starts the actors of a pipeline, watches them, restarts them.

One asyncio loop, in the spirit of Circus: every actor instance has a small
watch task that owns its process (spawn, wait, decide, maybe restart), and a
few shared tasks read reports, check health, publish metrics and follow turns
for barge-in. The supervisor is the only writer of instance state; every
change is published on ``sys.actor`` and written to the run directory's
manifest.

Planes (docs/runtime.md):

* ``sys.pub`` (PUB, bound here): ``sys.ctl`` (start, shutdown), ``sys.epoch``,
  ``sys.actor`` (state changes), ``sys.metrics`` (periodic).
* ``sys.pull`` (PULL, bound here): ``sys.report`` from every host (hello,
  ready, heartbeat, bye).
* One SUB on the data sockets of turn-producing actors (``<a>.turn``) and of
  nodes (``<a>.playback``), for barge-in epochs.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import os
import signal
import sys
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil
import zmq
import zmq.asyncio

from va_actors.core.edge.events import SourceFinishedEvent
from va_actors.core.latency import median_p90
from va_actors.core.turn_detection.events import TurnStartedEvent
from va_actors.runtime import env_refs, rundir
from va_actors.runtime.config import (
    ActorConfig,
    InputOptions,
    PipelineConfig,
    SupervisorDefaults,
)
from va_actors.runtime.plugins import Category
from va_actors.runtime.policy import Action, Decision, RestartMode, RestartPolicy, RestartTracker
from va_actors.runtime.services import ServiceError, Services
from va_actors.runtime.spec import DISPATCH_CATEGORY, ActorSpec, InputSpec
from va_actors.wire import Control, Kind, WireError, decode, encode_control
from va_actors.wire import topics as wire_topics

__all__ = [
    "EXIT_ERROR",
    "EXIT_GAVE_UP",
    "EXIT_OK",
    "InstanceStatus",
    "PipelineStatus",
    "State",
    "Supervisor",
    "SupervisorError",
    "restart_policy",
]

logger = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_GAVE_UP = 1
"""An instance was given up and the pipeline stopped (``on_give_up = "stop"``),
or every instance ended and at least one had been given up."""
EXIT_ERROR = 3
"""The supervisor could not run the pipeline (run directory, sockets)."""

REPORT_TOPIC = "sys.report"
STABLE_AFTER_S = 10.0
"""A run this long (capped at the restart window) resets an instance's backoff."""
TERM_GRACE_S = 2.0
"""After SIGTERM, how long an instance gets before SIGKILL."""
MONITOR_INTERVAL_S = 0.1
RESEND_AFTER_S = 0.5
"""A host whose heartbeat still lacks ``start`` or the epoch this long after it went out
gets it again."""
PUB_HWM = 1000
LATENCY_TURNS_KEPT = 100
"""Turn-latency events kept for the voice-to-voice figures in sys.metrics."""
"""sys.pub queue per subscriber; a stalled tap loses sys messages, nobody waits."""
_TURN_CATEGORIES = frozenset({Category.TURN, Category.STT, Category.REALTIME})
AGENT_CATEGORIES = frozenset({Category.LLM, Category.VLM, Category.TTS, Category.REALTIME})
"""Producers whose output is what the agent says: the epoch drops its stale content."""
_TURN_STARTED = TurnStartedEvent.__dataclass_fields__["type"].default
_SOURCE_FINISHED = SourceFinishedEvent.__dataclass_fields__["type"].default
DRAIN_QUIET_S = 2.5
"""With stop_when_sources_finish: how long every sink must be silent before the stop.

Long enough to cover a TTS synthesising the next sentence of a reply on a busy
machine (the speaker idles between sentences); shorter cut replies short.
"""
DRAIN_MAX_S = 60.0
"""With stop_when_sources_finish: the longest wait for sinks to finish playing."""


class SupervisorError(RuntimeError):
    """The supervisor cannot run the pipeline; the message says why."""


class State(enum.StrEnum):
    """Lifecycle of an actor instance as published on ``sys.actor``."""

    STARTING = "starting"
    READY = "ready"
    RUNNING = "running"
    EXITED = "exited"
    RESTARTING = "restarting"
    GAVE_UP = "gave_up"
    STOPPED = "stopped"


_ALIVE = frozenset({State.STARTING, State.READY, State.RUNNING})
_FINAL = frozenset({State.GAVE_UP, State.STOPPED})


@dataclass
class InstanceStatus:
    """What the supervisor knows about one instance (a snapshot)."""

    instance: str
    actor: str
    replica: int
    pid: int | None
    state: str
    restarts: int
    exit_code: int | None = None
    reason: str = ""
    cpu_percent: float = 0.0
    rss_bytes: int = 0
    msgs_in: int = 0
    msgs_out: int = 0
    drops: dict[str, int] = field(default_factory=dict)
    loop_lag_ms: float = 0.0
    queue: dict[str, Any] = field(default_factory=dict)
    heartbeat_age_s: float | None = None
    work: dict[str, Any] = field(default_factory=dict)
    """Replicated actors: a dispatcher's per-replica figures, a replica's items."""

    @property
    def drops_total(self) -> int:
        """Every drop of every reason."""
        return sum(self.drops.values())


@dataclass
class PipelineStatus:
    """The pipeline at a glance: what ``va-launch run`` shows on its status line."""

    pipeline: str
    epoch: int
    up: int
    total: int
    restarts: int
    drops: int
    stopping: bool
    instances: list[InstanceStatus]

    def line(self) -> str:
        """One short line: instances up, restarts, epoch, drops."""
        gave_up = [i.instance for i in self.instances if i.state == State.GAVE_UP]
        text = (f"{self.pipeline}: {self.up}/{self.total} up  restarts {self.restarts}  "
                f"epoch {self.epoch}  drops {self.drops}")
        if gave_up:
            text += f"  gave up: {', '.join(gave_up)}"
        return text + ("  (stopping)" if self.stopping else "")


def restart_policy(settings: SupervisorDefaults) -> RestartPolicy:
    """The restart policy an actor's supervision settings describe."""
    return RestartPolicy(
        mode=RestartMode(settings.restart), max_restarts=settings.max_restarts,
        restart_window_s=settings.restart_window_s,
        backoff_initial_s=settings.backoff_initial_s, backoff_factor=settings.backoff_factor,
        backoff_cap_s=settings.backoff_cap_s,
        stable_after_s=min(STABLE_AFTER_S, settings.restart_window_s),
    )


# -- the graph ------------------------------------------------------------------------------


def supervisor_topics(config: PipelineConfig) -> dict[str, list[str]]:
    """Topics the supervisor reads per actor: ``<a>.turn`` and ``<a>.playback``.

    Turn events come from turn detectors, STT and Realtime plugins, and from
    nodes (an edge whose client cancels a reply asks for a bump this way);
    playback state can only come from a node (a transport or sink), since no
    plugin category publishes it.
    """
    wanted: dict[str, list[str]] = {}
    for actor in config.actors:
        if actor.category in _TURN_CATEGORIES or actor.category is Category.NODE:
            wanted.setdefault(actor.name, []).append(f"{actor.name}.turn")
        if actor.category is Category.NODE:
            wanted.setdefault(actor.name, []).append(f"{actor.name}.playback")
        if config.stop_when_sources_finish and not actor.inputs:
            wanted.setdefault(actor.name, []).append(f"{actor.name}.events")
    return wanted


def expected_subscribers(config: PipelineConfig, actor: ActorConfig) -> dict[str, int]:
    """Subscribers each topic of ``actor`` will have: consumers plus the supervisor.

    The host reports ready only once these have joined, so a source never
    publishes into a consumer that is still connecting.
    """
    counts: dict[str, int] = {}
    for stream in actor.outputs:
        topic = f"{actor.name}.{stream}"
        # A replicated consumer subscribes once, through its dispatcher.
        count = len(config.consumers(topic))
        if count:
            counts[topic] = count
    for topic in supervisor_topics(config).get(actor.name, []):
        counts[topic] = counts.get(topic, 0) + 1
    return counts


def _published_topics(config: PipelineConfig, actor: ActorConfig) -> list[str]:
    topics = {f"{actor.name}.{stream}" for stream in actor.outputs}
    topics.update(supervisor_topics(config).get(actor.name, []))
    return sorted(topics)


def _log_level() -> str:
    level = logging.getLogger("va_actors").getEffectiveLevel()
    for name in ("DEBUG", "INFO", "WARNING"):
        if level <= logging.getLevelName(name):
            return name
    return "ERROR"


# -- one instance ---------------------------------------------------------------------------


class _Instance:
    """Supervisor-side state of one actor instance; only the supervisor mutates it."""

    def __init__(self, actor: ActorConfig, replica: int, name: str, endpoint: str,
                 spec_path: Path, topics: list[str], *, dispatcher: bool = False) -> None:
        self.actor = actor
        self.replica = replica
        self.dispatcher = dispatcher
        """True for the dispatcher process of a replicated actor (runtime/dispatcher.py)."""
        self.name = name
        self.endpoint = endpoint
        self.spec_path = spec_path
        self.topics = topics
        self.tracker = RestartTracker(restart_policy(actor.supervisor))
        self.settings = actor.supervisor
        self.state = State.STARTING
        self.proc: asyncio.subprocess.Process | None = None
        self.ps: psutil.Process | None = None
        self.spawned_at = 0.0
        self.last_seen = 0.0
        self.kill_reason = ""
        self.stopping = False
        self.exit_code: int | None = None
        self.reason = ""
        self.cpu_percent = 0.0
        self.rss = 0
        self.heartbeat: dict[str, Any] = {}
        self.carried = {"in": 0, "out": 0}
        self.carried_drops: dict[str, int] = {}
        self.sent_at = 0.0
        """When start or an epoch was last sent that this instance must act on."""
        self.wake = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    def counters(self) -> tuple[int, int, dict[str, int]]:
        """Messages in, out and drops by reason, summed over every incarnation."""
        now_in, now_out, now_drops = _heartbeat_counters(self.heartbeat)
        drops = dict(self.carried_drops)
        for reason, count in now_drops.items():
            drops[reason] = drops.get(reason, 0) + count
        return self.carried["in"] + now_in, self.carried["out"] + now_out, drops

    def carry_counters(self) -> None:
        """Fold the ended incarnation's counters into the running totals."""
        self.carried["in"], self.carried["out"], self.carried_drops = self.counters()
        self.heartbeat = {}

    def status(self, now: float) -> InstanceStatus:
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
            work=dict(beat.get("work") or {}),
        )


def _heartbeat_counters(beat: Mapping[str, Any]) -> tuple[int, int, dict[str, int]]:
    counters = beat.get("counters")
    if not isinstance(counters, Mapping):
        return 0, 0, {}
    raw_drops = counters.get("drops")
    if isinstance(raw_drops, Mapping):
        drops = {str(k): int(v) for k, v in raw_drops.items() if isinstance(v, int)}
    elif isinstance(raw_drops, int):
        drops = {"total": raw_drops}
    else:
        drops = {}
    return int(counters.get("in") or 0), int(counters.get("out") or 0), drops


# -- the supervisor -------------------------------------------------------------------------


class Supervisor:
    """Runs one pipeline: ``await Supervisor(config).run()`` returns an exit code.

    Args:
        config: the checked pipeline (``load_pipeline``).
        run_dir: where to put sockets and the manifest; default: the
            pipeline's ``run_dir`` setting, else a fresh private directory.
        metrics_interval_s: how often ``sys.metrics`` is published.
        python: interpreter that runs the actor hosts.
    """

    def __init__(self, config: PipelineConfig, *, run_dir: str | os.PathLike[str] | None = None,
                 metrics_interval_s: float = 1.0, python: str = sys.executable) -> None:
        self.config = config
        chosen = run_dir if run_dir is not None else config.run_dir
        self._requested_dir = Path(chosen) if chosen is not None else None
        self._metrics_interval = metrics_interval_s
        self._python = python
        self._run_dir: Path | None = None
        self._instances: dict[str, _Instance] = {}
        self._work_endpoints: dict[str, str] = {}
        self._latency: deque[dict[str, Any]] = deque(maxlen=LATENCY_TURNS_KEPT)
        """Replicated actor -> its dispatcher's work endpoint (runtime/work.py)."""
        self._epoch = 0
        self._seq: dict[str, int] = {}
        self._playing: dict[str, bool] = {}
        self._finished_sources: set[str] = set()
        self._drain: asyncio.Task[None] | None = None
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
        self._services = Services(config.services, on_state=self._publish_service_state,
                                  on_lost=self._on_service_lost, python=python)

    # -- public API -------------------------------------------------------------------------
    @property
    def epoch(self) -> int:
        """The session epoch in force."""
        return self._epoch

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
        return dict(self._playing)

    @property
    def stop_reason(self) -> str:
        """Why the pipeline stopped (empty while it runs)."""
        return self._stop_reason

    def pid_of(self, instance: str) -> int | None:
        """Current pid of ``instance`` (None while it has no live process)."""
        inst = self._instances[instance]
        return inst.pid if inst.alive else None

    def status(self) -> PipelineStatus:
        """A snapshot of every instance and the pipeline counters."""
        now = time.monotonic()
        items = [inst.status(now) for inst in self._instances.values()]
        return PipelineStatus(
            pipeline=self.config.name, epoch=self._epoch,
            up=sum(1 for i in self._instances.values() if i.state is State.RUNNING),
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
            for inst in self._instances.values():
                self._signal(inst, signal.SIGKILL)
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
        for inst in self._instances.values():
            inst.sent_at = now
        self._publish(wire_topics.EPOCH, "epoch", {"epoch": self._epoch, "reason": reason})
        return self._epoch

    async def run(self) -> int:
        """Run the pipeline until it is stopped; return the exit code (``EXIT_*``)."""
        try:
            self._prepare()
            if not await self._start_services():
                return self._exit_code
            self._tasks = [asyncio.create_task(coro, name=f"supervisor-{name}") for name, coro in
                           (("reports", self._read_reports()), ("monitor", self._monitor()),
                            ("turns", self._follow_turns()))]
            for inst in self._instances.values():
                inst.task = asyncio.create_task(self._watch(inst), name=f"watch-{inst.name}")
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

    # -- preparation ------------------------------------------------------------------------
    def _prepare(self) -> None:
        rundir.prune_stale()
        run_dir = rundir.create_run_dir(self.config.name, path=self._requested_dir)
        self._run_dir = run_dir
        self._sys_pub = rundir.endpoint(run_dir, rundir.SYS_PUB_NAME)
        self._sys_pull = rundir.endpoint(run_dir, rundir.SYS_PULL_NAME)
        for actor in self.config.actors:
            if actor.dispatcher is not None:
                # Started first (dict order): replicas connect to its work socket.
                self._work_endpoints[actor.name] = rundir.endpoint(run_dir, f"{actor.name}.work")
                name = actor.dispatcher
                # Socket names stay short: ipc paths are limited to 107 bytes.
                self._instances[name] = _Instance(
                    actor, -1, name, rundir.endpoint(run_dir, f"{actor.name}.dsp"),
                    run_dir / f"{name}.spec.json", [], dispatcher=True)
            for replica, name in enumerate(actor.instances):
                self._instances[name] = _Instance(
                    actor, replica, name, rundir.endpoint(run_dir, name),
                    run_dir / f"{name}.spec.json", _published_topics(self.config, actor))
        self._ctx = zmq.asyncio.Context()
        sync_ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context.shadow(self._ctx.underlying)
        self._pub = sync_ctx.socket(zmq.PUB)
        self._pub.setsockopt(zmq.LINGER, 0)
        self._pub.setsockopt(zmq.SNDHWM, PUB_HWM)
        self._pub.bind(self._sys_pub)
        self._manifest = rundir.Manifest(
            pipeline=self.config.name, path=str(self.config.path), supervisor_pid=os.getpid(),
            run_dir=str(run_dir), sys_pub=self._sys_pub, sys_pull=self._sys_pull)
        self._write_manifest()

    def _says_agent(self, producer: str) -> bool:
        """True when ``producer`` outputs what the agent says (epoch-bound content)."""
        return self.config.actor(producer).category in AGENT_CATEGORIES

    def _spec(self, inst: _Instance) -> ActorSpec:
        actor = inst.actor
        replica = actor.dispatcher is not None and not inst.dispatcher
        inputs = []
        for topic in actor.inputs:
            producer = topic.partition(".")[0]
            options = actor.input_options.get(topic) or InputOptions()
            inputs.append(InputSpec(
                topic, [] if replica else self._endpoints_of(producer),
                epoch_bound=self._says_agent(producer),
                # The dispatcher paces frames for all replicas; each replica
                # still checks the staleness bound when it takes an item.
                fps=None if replica else options.fps, max_age_ms=options.max_age_ms))
        return ActorSpec(
            actor=actor.name, instance=inst.name,
            plugin="dispatch" if inst.dispatcher else actor.plugin,
            data_endpoint=inst.endpoint, sys_pub=self._sys_pub, sys_pull=self._sys_pull,
            replica=max(0, inst.replica), params={} if inst.dispatcher else dict(actor.params),
            category=DISPATCH_CATEGORY if inst.dispatcher else actor.category.value,
            inputs=inputs,
            expected_subscribers={} if inst.dispatcher else expected_subscribers(self.config,
                                                                                 actor),
            heartbeat_interval_s=actor.supervisor.heartbeat_interval_s, epoch=self._epoch,
            pipeline_dir=str(self.config.path.parent), log_level=_log_level(),
            work_endpoint=self._work_endpoints.get(actor.name), max_inflight=actor.max_inflight,
        )

    def _endpoints_of(self, actor: str) -> list[str]:
        """Data endpoints of ``actor``'s instances (its replicas; never a dispatcher)."""
        return [inst.endpoint for inst in self._instances.values()
                if inst.actor.name == actor and not inst.dispatcher]

    # -- one instance's life ----------------------------------------------------------------
    async def _watch(self, inst: _Instance) -> None:
        """Spawn, wait, decide; until the instance stops, is given up, or we stop."""
        while not (self._stopping or inst.stopping):
            try:
                await self._spawn(inst)
            except (OSError, ValueError) as exc:
                # Not transient (no interpreter, unwritable run dir): restarting cannot help.
                self._give_up(inst, Decision(Action.GIVE_UP, reason=f"cannot start: {exc}"))
                self._check_all_ended()
                return
            assert inst.proc is not None
            code = await inst.proc.wait()
            delay = self._on_exit(inst, code)
            if delay is None:
                return
            if delay > 0:
                inst.wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(inst.wake.wait(), delay)
        self._set_state(inst, State.STOPPED, reason=self._stop_reason or "stopped")

    async def _spawn(self, inst: _Instance) -> None:
        self._spec(inst).write(inst.spec_path)
        env = {**os.environ, **env_refs.expand(inst.actor.env, os.environ)}
        inst.kill_reason = ""
        inst.exit_code = None
        inst.proc = await asyncio.create_subprocess_exec(
            self._python, "-m", "va_actors.runtime.host", str(inst.spec_path),
            env=env, stdin=asyncio.subprocess.DEVNULL,
            # Own process group: a terminal's Ctrl-C reaches only the supervisor,
            # which then stops actors in order; killpg also takes an actor's helpers.
            process_group=0,
        )
        now = time.monotonic()
        inst.spawned_at = inst.last_seen = now
        inst.tracker.started(now)
        inst.ps = None
        with contextlib.suppress(psutil.Error):
            inst.ps = psutil.Process(inst.proc.pid)
            inst.ps.cpu_percent(None)  # the first call only sets the baseline
        logger.info("started %s (pid %d); extra env: %s", inst.name, inst.proc.pid,
                    ", ".join(sorted(inst.actor.env)) or "none")
        self._set_state(inst, State.STARTING)
        if self._stopping or inst.stopping:
            # Stop began while we were spawning: never leave this one behind.
            self._signal(inst, signal.SIGKILL)

    def _on_exit(self, inst: _Instance, code: int) -> float | None:
        """Record an exit; return the delay before restarting, or None to stay down."""
        inst.exit_code = code
        inst.carry_counters()
        self._playing.pop(inst.name, None)
        if self._stopping or inst.stopping:
            self._set_state(inst, State.STOPPED, reason=self._stop_reason or "stopped")
            return None
        decision = inst.tracker.exited(code, time.monotonic(), inst.kill_reason)
        logger.warning("%s (pid %s) %s", inst.name, inst.pid, decision.reason)
        self._set_state(inst, State.EXITED, reason=decision.reason)
        if decision.action is Action.RESTART:
            self._set_state(inst, State.RESTARTING, reason=decision.reason,
                            delay_s=round(decision.delay_s, 3))
            return decision.delay_s
        if decision.action is Action.GIVE_UP:
            self._give_up(inst, decision)
        else:
            self._set_state(inst, State.STOPPED, reason=decision.reason)
        self._check_all_ended()
        return None

    def _give_up(self, inst: _Instance, decision: Decision) -> None:
        self._set_state(inst, State.GAVE_UP, reason=decision.reason)
        if self.config.on_give_up == "stop":
            logger.error("gave up on %s: %s; stopping the pipeline (on_give_up = 'stop')",
                         inst.name, decision.reason)
            self._exit_code = EXIT_GAVE_UP
            self._begin_stop(f"{inst.name} was given up")
        else:
            logger.error("gave up on %s: %s; running without it (on_give_up = 'degrade')",
                         inst.name, decision.reason)

    def _check_all_ended(self) -> None:
        if all(inst.state in _FINAL for inst in self._instances.values()):
            if any(inst.state is State.GAVE_UP for inst in self._instances.values()):
                self._exit_code = EXIT_GAVE_UP
            self._begin_stop("every instance has ended")

    def _kill(self, inst: _Instance, reason: str) -> None:
        """Kill a sick instance; its watch task then applies the restart policy."""
        if not inst.alive or inst.kill_reason:
            return
        logger.warning("killing %s (pid %s): %s", inst.name, inst.pid, reason)
        inst.kill_reason = reason
        self._signal(inst, signal.SIGKILL)

    @staticmethod
    def _signal(inst: _Instance, signum: int) -> None:
        if not inst.alive or inst.pid is None:
            return
        try:
            os.killpg(inst.pid, signum)
        except ProcessLookupError:
            with contextlib.suppress(ProcessLookupError):
                os.kill(inst.pid, signum)
        except PermissionError:
            # The group went away and its id was reused: signal only our child.
            with contextlib.suppress(ProcessLookupError):
                os.kill(inst.pid, signum)

    # -- start-up ---------------------------------------------------------------------------
    async def _start_when_ready(self) -> None:
        """Wait until every instance is ready (or out of the game), then send ``start``."""
        while not self._stop.is_set():
            states = [inst.state for inst in self._instances.values()]
            if all(state is State.READY or state in _FINAL for state in states):
                break
            self._changed.clear()
            stop = asyncio.ensure_future(self._stop.wait())
            changed = asyncio.ensure_future(self._changed.wait())
            await asyncio.wait({stop, changed}, return_when=asyncio.FIRST_COMPLETED)
            stop.cancel()
            changed.cancel()
        if self._stop.is_set():
            return
        ready = [inst for inst in self._instances.values() if inst.state is State.READY]
        self._publish(wire_topics.CONTROL, "start", {"targets": []})
        now = time.monotonic()
        for inst in ready:
            inst.sent_at = now
            self._set_state(inst, State.RUNNING)
        self._started.set()
        logger.info("pipeline %r started: %d/%d instances running", self.config.name,
                    len(ready), len(self._instances))

    def _not_ready(self) -> str:
        waiting = [f"{i.name} ({i.state})" for i in self._instances.values()
                   if i.state is not State.READY and i.state is not State.RUNNING]
        return "waiting for " + ", ".join(waiting) if waiting else "every instance is ready"

    # -- reports from the hosts -------------------------------------------------------------
    async def _read_reports(self) -> None:
        assert self._ctx is not None
        pull = self._ctx.socket(zmq.PULL)
        pull.setsockopt(zmq.LINGER, 0)
        pull.bind(self._sys_pull)
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
        inst = self._instances.get(str(args.get("instance") or source))
        if inst is None or not inst.alive:
            return
        pid = args.get("pid")
        if isinstance(pid, int) and pid != inst.pid:
            return  # from an earlier incarnation, still in flight
        inst.last_seen = time.monotonic()
        if control.op == "hello":
            extra = [t for t in args.get("outputs") or [] if isinstance(t, str)]
            inst.topics = sorted(set(inst.topics) | set(extra))
        elif control.op == "ready":
            self._on_ready(inst)
        elif control.op == "heartbeat":
            inst.heartbeat = dict(args)
        elif control.op == "bye":
            inst.reason = str(args.get("reason") or "")

    def _on_ready(self, inst: _Instance) -> None:
        if inst.state is not State.STARTING:
            return
        if self._started.is_set() and not self._stopping:
            # A restarted instance: its consumers reconnect by themselves; start it alone.
            self._set_state(inst, State.READY)
            self._publish(wire_topics.CONTROL, "start", {"targets": [inst.name]})
            inst.sent_at = time.monotonic()
            self._set_state(inst, State.RUNNING)
        else:
            self._set_state(inst, State.READY)

    # -- health and metrics -----------------------------------------------------------------
    async def _monitor(self) -> None:
        next_metrics = time.monotonic() + self._metrics_interval
        while True:
            before = time.monotonic()
            await asyncio.sleep(MONITOR_INTERVAL_S)
            now = time.monotonic()
            self._loop_lag_ms = max(0.0, (now - before - MONITOR_INTERVAL_S) * 1000)
            for inst in self._instances.values():
                self._check_health(inst, now)
                self._reconcile(inst, now)
            if now >= next_metrics:
                next_metrics = now + self._metrics_interval
                self._sample()
                self._publish(wire_topics.METRICS, "metrics", self._metrics())

    def _check_health(self, inst: _Instance, now: float) -> None:
        if not inst.alive or inst.kill_reason or self._stopping:
            return
        settings = inst.settings
        if inst.state is State.STARTING and now - inst.spawned_at > settings.start_timeout_s:
            self._kill(inst, f"start_timeout: not ready after {settings.start_timeout_s:g} s")
        elif inst.state in (State.READY, State.RUNNING) and \
                now - inst.last_seen > settings.hang_timeout_s:
            self._kill(inst, f"hang: no heartbeat for {now - inst.last_seen:.1f} s "
                             f"(hang_timeout_s {settings.hang_timeout_s:g})")

    def _reconcile(self, inst: _Instance, now: float) -> None:
        """Re-send what a host missed: PUB delivery is not guaranteed to a late joiner.

        Heartbeats carry the host's state and epoch; a host still ``ready``
        after ``start`` went out, or behind the epoch, gets it again (hosts
        ignore repeats).
        """
        beat = inst.heartbeat
        if not beat or not inst.alive or self._stopping or now - inst.sent_at < RESEND_AFTER_S:
            return
        if inst.state is State.RUNNING and beat.get("state") == "ready":
            inst.sent_at = now
            self._publish(wire_topics.CONTROL, "start", {"targets": [inst.name]})
        epoch = beat.get("epoch")
        if isinstance(epoch, int) and epoch < self._epoch:
            inst.sent_at = now
            self._publish(wire_topics.EPOCH, "epoch", {"epoch": self._epoch,
                                                        "reason": "resent"})

    def _sample(self) -> None:
        """Read CPU and RSS of every instance; kill those over their memory limit."""
        for inst in self._instances.values():
            if not inst.alive or inst.ps is None:
                inst.cpu_percent, inst.rss = 0.0, 0
                continue
            try:
                with inst.ps.oneshot():
                    inst.cpu_percent = inst.ps.cpu_percent(None)
                    inst.rss = inst.ps.memory_info().rss
            except psutil.Error:
                continue
            limit = inst.settings.memory_limit_mb
            if limit and inst.rss > limit * 1024 * 1024 and not self._stopping:
                self._kill(inst, f"memory: RSS {inst.rss / 2**20:.0f} MB over "
                                 f"memory_limit_mb {limit}")

    def _metrics(self) -> dict[str, Any]:
        status = self.status()
        try:
            own = {"pid": os.getpid(), "cpu_percent": self._self_ps.cpu_percent(None),
                   "rss": self._self_ps.memory_info().rss}
        except psutil.Error:
            own = {"pid": os.getpid()}
        instances = {}
        for item in status.instances:
            entry = asdict(item)
            entry["drops_total"] = item.drops_total
            instances[item.instance] = entry
        # [[service]] processes: `va-launch status` checks each health_url itself.
        states = self._services.states
        services = [{"name": svc.name, "pid": self._services.pid_of(svc.name),
                     "state": states.get(svc.name), "health_url": svc.health_url}
                    for svc in self.config.services]
        return {"pipeline": status.pipeline, "epoch": status.epoch, "up": status.up,
                "total": status.total, "restarts": status.restarts, "drops": status.drops,
                "supervisor": {**own, "loop_lag_ms": round(self._loop_lag_ms, 2)},
                "instances": instances, "services": services,
                "latency": self._latency_summary()}

    def _on_metrics_event(self, fields: Mapping[str, Any]) -> None:
        data = fields.get("event")
        if not isinstance(data, Mapping) or data.get("type") != "metrics.turn_latency":
            return
        total, segments = data.get("total_ms"), data.get("segments_ms")
        if isinstance(total, int | float) and isinstance(segments, Mapping):
            self._latency.append({"total_ms": float(total), "user_text": str(
                data.get("user_text") or ""), "segments_ms": {
                str(k): float(v) for k, v in segments.items() if isinstance(v, int | float)}})

    def _latency_summary(self) -> dict[str, Any] | None:
        """Voice-to-voice latency over the turns seen (for sys.metrics), or None."""
        if not self._latency:
            return None
        median, p90 = median_p90([turn["total_ms"] for turn in self._latency])
        return {"turns": len(self._latency), "median_ms": round(median, 1),
                "p90_ms": round(p90, 1), "last": self._latency[-1]}

    # -- epochs -----------------------------------------------------------------------------
    async def _follow_turns(self) -> None:
        """Bump the epoch when the user starts a turn while the agent is audible.

        Until some sink reports playback, every TurnStartedEvent bumps (a
        pipeline that cannot tell whether the agent speaks must still let the
        user interrupt it); afterwards only while a sink last said playing.
        """
        assert self._ctx is not None
        wanted = supervisor_topics(self.config)
        # Turn-latency events from any node (the console publishes them on
        # <node>.metrics) are kept for sys.metrics and `va-launch status`.
        for actor in self.config.actors:
            if actor.category is Category.NODE:
                wanted.setdefault(actor.name, []).append(f"{actor.name}.metrics")
        if not wanted:
            return
        sub = self._ctx.socket(zmq.SUB)
        sub.setsockopt(zmq.LINGER, 0)
        sub.setsockopt(zmq.RECONNECT_IVL, 20)
        for inst in self._instances.values():
            if inst.actor.name in wanted and not inst.dispatcher:
                sub.connect(inst.endpoint)
        for topic_list in wanted.values():
            for topic in topic_list:
                sub.setsockopt(zmq.SUBSCRIBE, topic.encode())
        try:
            while True:
                frames = await sub.recv_multipart()
                try:
                    message = decode(frames)
                except WireError:
                    continue
                if message.stream == "playback":
                    self._on_playback(message.source, message.fields)
                elif message.stream == "turn":
                    self._on_turn(message.topic, message.fields)
                elif message.stream == "events":
                    self._on_source_event(message.source, message.fields)
                elif message.stream == "metrics":
                    self._on_metrics_event(message.fields)
        finally:
            sub.close(0)

    def _on_playback(self, source: str, fields: Mapping[str, Any]) -> None:
        playing = fields.get("playing")
        event = fields.get("event")
        if playing is None and isinstance(event, Mapping):
            playing = event.get("playing")
        if isinstance(playing, bool):
            self._playing[source] = playing

    def _on_source_event(self, source: str, fields: Mapping[str, Any]) -> None:
        event = fields.get("event")
        if not isinstance(event, Mapping) or event.get("type") != _SOURCE_FINISHED:
            return
        self._finished_sources.add(source)
        sources = {i.name for i in self._instances.values() if not i.actor.inputs}
        if sources <= self._finished_sources and self._drain is None:
            logger.info("every source finished; stopping once the sinks have played out")
            self._drain = asyncio.create_task(self._stop_when_drained(), name="drain")

    async def _stop_when_drained(self) -> None:
        """Stop once no sink has played for DRAIN_QUIET_S (at most DRAIN_MAX_S)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + DRAIN_MAX_S
        quiet_since = loop.time()
        while loop.time() < deadline:
            await asyncio.sleep(0.05)
            if any(self._playing.values()):
                quiet_since = loop.time()
            elif loop.time() - quiet_since >= DRAIN_QUIET_S:
                break
        self.request_stop("every source finished")

    def _on_turn(self, topic: str, fields: Mapping[str, Any]) -> None:
        event = fields.get("event")
        if not isinstance(event, Mapping) or event.get("type") != _TURN_STARTED:
            return
        if self._playing and not any(self._playing.values()):
            logger.debug("turn started on %s while nothing plays: no barge-in", topic)
            return
        self.bump_epoch(f"turn started on {topic}")

    # -- shutdown ---------------------------------------------------------------------------
    async def _shutdown(self) -> None:
        """Stop layer by layer, sources first: shutdown, deadline, SIGTERM, SIGKILL."""
        self._stopping = True
        for layer in self.config.layers():
            members = [i for i in self._instances.values() if i.actor.name in layer]
            await self._stop_layer(members)
        tasks = [inst.task for inst in self._instances.values() if inst.task is not None]
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _stop_layer(self, members: list[_Instance]) -> None:
        for inst in members:
            inst.stopping = True
            inst.wake.set()  # abandon a pending restart: it must not happen later
        alive = [inst for inst in members if inst.alive]
        if not alive:
            return
        deadline = max(inst.settings.shutdown_deadline_s for inst in alive)
        self._publish(wire_topics.CONTROL, "shutdown",
                      {"targets": [inst.name for inst in alive], "deadline_s": deadline})
        await asyncio.gather(*(self._stop_one(inst) for inst in alive))

    async def _stop_one(self, inst: _Instance) -> None:
        steps: list[tuple[int | None, float]] = [
            (None, inst.settings.shutdown_deadline_s), (signal.SIGTERM, TERM_GRACE_S),
            (signal.SIGKILL, 5.0)]
        for signum, wait_s in steps:
            if signum is not None:
                logger.warning("%s did not stop in time; sending %s", inst.name,
                               signal.Signals(signum).name)
                self._signal(inst, signum)
            if await self._exited_within(inst, wait_s):
                return
        logger.error("%s (pid %s) survived SIGKILL", inst.name, inst.pid)

    @staticmethod
    async def _exited_within(inst: _Instance, seconds: float) -> bool:
        if inst.proc is None:
            return True
        try:
            await asyncio.wait_for(asyncio.shield(inst.proc.wait()), seconds)
        except TimeoutError:
            return False
        return True

    async def _cleanup(self) -> None:
        """Whatever happened: no child left, no task left, no socket, no run dir."""
        self._stopping = True
        self._begin_stop("supervisor exiting")
        for inst in self._instances.values():
            inst.stopping = True
            inst.wake.set()
            self._signal(inst, signal.SIGKILL)
        for inst in self._instances.values():
            if inst.proc is not None and inst.proc.returncode is None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(inst.proc.wait(), 5.0)
        watchers = [inst.task for inst in self._instances.values() if inst.task is not None]
        if self._drain is not None:
            watchers.append(self._drain)
        for task in [*self._tasks, *watchers]:
            task.cancel()
        await asyncio.gather(*self._tasks, *watchers, return_exceptions=True)
        await self._services.stop()
        if self._pub is not None:
            self._pub.close(0)
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
        self._exit_code = EXIT_GAVE_UP
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

    def _set_state(self, inst: _Instance, state: State, *, reason: str = "",
                   **extra: Any) -> None:
        inst.state = state
        if reason:
            inst.reason = reason
        self._publish(wire_topics.ACTOR_STATE, "state", {
            "instance": inst.name, "actor": inst.actor.name, "state": state.value,
            "pid": inst.pid, "exit_code": inst.exit_code, "restarts": inst.tracker.restarts,
            "reason": reason, **extra})
        self._write_manifest()
        self._changed.set()

    def _write_manifest(self) -> None:
        if self._manifest is None or self._run_dir is None:
            return
        self._manifest.epoch = self._epoch
        self._manifest.instances = [
            rundir.InstanceRecord(
                instance=inst.name, actor=inst.actor.name, replica=inst.replica,
                endpoint=inst.endpoint, topics=list(inst.topics), pid=inst.pid if inst.alive
                else None, state=inst.state.value, restarts=inst.tracker.restarts)
            for inst in self._instances.values()]
        with contextlib.suppress(OSError):
            rundir.write_manifest(self._run_dir, self._manifest)

