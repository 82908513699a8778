"""The checked settings of a pipeline file, and the errors that name its problems.

Everything here is frozen data: what the supervisor, the restart policy and
the CLI read once a file has been checked (:mod:`.loader`). Nothing in this
module reads files or imports plugins.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from va_actors.runtime.categories import Category
from va_actors.runtime.config.graph import layers
from va_actors.runtime.environments import Environment

__all__ = [
    "ActorConfig",
    "ConfigError",
    "ConfigIssue",
    "GiveUpPolicy",
    "InputOptions",
    "PipelineConfig",
    "Placement",
    "RestartMode",
    "ServiceConfig",
    "SupervisorDefaults",
    "TransportConfig",
    "WorkerConfig",
]


class RestartMode(enum.StrEnum):
    """When an exited instance is started again (``restart`` in a pipeline file)."""

    NEVER = "never"
    ON_FAILURE = "on-failure"
    ALWAYS = "always"


class GiveUpPolicy(enum.StrEnum):
    """What the pipeline does when an actor is given up (``on_give_up``)."""

    STOP = "stop"
    DEGRADE = "degrade"


@dataclass(frozen=True)
class ConfigIssue:
    """One problem in a pipeline file.

    ``line`` is 1-based, or None when the problem is the file itself (missing,
    unreadable). ``hint`` says how to fix it, or is None.
    """

    file: str
    line: int | None
    message: str
    hint: str | None = None

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        suffix = f" (hint: {self.hint})" if self.hint else ""
        return f"{where}: {self.message}{suffix}"


class ConfigError(Exception):
    """A pipeline file has problems; ``issues`` lists every one of them."""

    def __init__(self, issues: Iterable[ConfigIssue]) -> None:
        self.issues: tuple[ConfigIssue, ...] = tuple(issues)
        super().__init__("\n".join(str(issue) for issue in self.issues))


@dataclass(frozen=True)
class SupervisorDefaults:
    """Supervision settings; ``[supervisor]`` sets them for all, an actor may override.

    Attributes:
        restart: when an exited instance is started again.
        backoff_initial_s, backoff_factor, backoff_cap_s: exponential backoff
            between restarts.
        max_restarts: restarts allowed within ``restart_window_s`` before the
            instance is given up (then ``on_give_up`` applies).
        hang_timeout_s: no heartbeat for this long = hung: killed and restarted.
        heartbeat_interval_s: how often an actor reports.
        memory_limit_mb: RSS above this is killed and restarted (0 = no limit).
        shutdown_deadline_s: time an actor gets to stop before SIGTERM/SIGKILL.
        start_timeout_s: time an actor gets to report ready.
        warm_spares: processes kept ready with the plugin imported, built and
            started, taken by a restart instead of a cold start (0: none).
        replay_s, replay_bytes: what an instance keeps of each stream it
            publishes (audio, events, text; never video) for a consumer that
            restarts: the last ``replay_s`` seconds, at most ``replay_bytes``
            bytes per stream (either 0: no replay from this actor).
    """

    restart: RestartMode = RestartMode.ON_FAILURE
    backoff_initial_s: float = 0.2
    backoff_factor: float = 2.0
    backoff_cap_s: float = 5.0
    max_restarts: int = 5
    restart_window_s: float = 60.0
    hang_timeout_s: float = 5.0
    heartbeat_interval_s: float = 0.25
    memory_limit_mb: int = 0
    shutdown_deadline_s: float = 3.0
    start_timeout_s: float = 60.0
    warm_spares: int = 0
    replay_s: float = 5.0
    replay_bytes: int = 4 * 2**20


@dataclass(frozen=True)
class InputOptions:
    """Per-input settings, from an inline table in ``inputs``.

    ``inputs = [{ topic = "camera.video", fps = 5, max_age_ms = 400 }]``

    Attributes:
        fps: video: hand on at most this many frames per second, the newest.
        max_age_ms: drop what is older than this when the actor would get it.
    """

    fps: float | None = None
    max_age_ms: float | None = None


@dataclass(frozen=True)
class Placement:
    """Where an actor's instances run: this machine, or workers (``va-launch worker``).

    ``placement = { labels = { gpu = "1" } }`` or ``worker = "gpu-0"`` in an
    ``[[actor]]``. No labels and no worker: on the supervisor's machine.

    Attributes:
        labels: a worker must carry every one of these labels.
        worker: the one worker (by name) the instances run on.
    """

    labels: Mapping[str, str] = field(default_factory=dict)
    worker: str | None = None

    @property
    def remote(self) -> bool:
        """The instances run on workers."""
        return bool(self.labels) or self.worker is not None

    def matches(self, name: str, labels: Mapping[str, str]) -> bool:
        """Worker ``name`` with ``labels`` may run these instances."""
        if self.worker is not None and name != self.worker:
            return False
        return all(labels.get(k) == v for k, v in self.labels.items())

    def describe(self) -> str:
        """``worker gpu-0`` / ``labels gpu=1, zone=a``, for messages."""
        parts = [f"worker {self.worker}"] if self.worker else []
        if self.labels:
            parts.append("labels " + ", ".join(f"{k}={v}" for k, v in
                                                sorted(self.labels.items())))
        return " and ".join(parts) or "this machine"


@dataclass(frozen=True)
class WorkerConfig:
    """One ``[[worker]]``: a worker this pipeline expects.

    Attributes:
        name: the worker's ``--name``.
        address: where the supervisor connects to it (``va-launch worker
            --listen``), or None when the worker registers itself
            (``va-launch worker --supervisor``).
        public_key: its Curve public key (z85); None only with ``insecure``.
        line: line of its ``[[worker]]`` header.
    """

    name: str
    address: str | None = None
    public_key: str | None = None
    line: int = 1


@dataclass(frozen=True)
class TransportConfig:
    """``[transport]``: how this machine talks to workers on others.

    Attributes:
        listen: ``tcp://HOST:PORT`` the supervisor binds for workers that
            register; its other tcp sockets take the ports after it.
        advertise: the host other machines reach this one at.
        keys: this machine's secret certificate file (else the environment:
            ``VA_CURVE_SECRET_KEY`` / ``VA_CURVE_KEY_FILE``).
        trust: public keys (z85, ``.key`` files or directories of them) of
            workers allowed to register, besides those of ``[[worker]]``.
        insecure: plaintext tcp, allowed on loopback addresses only.
        worker_grace_s: a worker silent this long is lost: its instances
            count as exited, and the worker stops them itself.
        max_age_ms: default staleness bound of inputs that cross machines
            (what a cut link queued is dropped as ``expired``, not played late).
        wait_workers_s: how long start-up waits for the workers it needs.
    """

    listen: str | None = None
    advertise: str | None = None
    keys: str | None = None
    trust: tuple[str, ...] = ()
    insecure: bool = False
    worker_grace_s: float = 30.0
    max_age_ms: float = 1000.0
    wait_workers_s: float = 60.0


@dataclass(frozen=True)
class ActorConfig:
    """One ``[[actor]]``, checked and resolved.

    Attributes:
        name: actor name; its topics are ``<name>.<stream>``.
        plugin: the plugin reference as written.
        plugin_class: the resolved class; None when the actor runs in its own
            ``environment`` (its plugin was checked there by the probe).
        category: what kind of plugin it is (decides how the host drives it).
        inputs: topics it subscribes to, ``<actor>.<stream>``.
        params: keyword arguments for the plugin class.
        env: extra environment variables of the actor process.
        replicas: number of processes.
        max_inflight: work items in flight per replica.
        input_options: per-input settings (fps, staleness bound) by topic.
        supervisor: effective supervision settings (defaults plus overrides).
        environment: the Python environment its host runs in (``environment``
            or ``python`` in the file), or None for va-launch's own.
        outputs: streams it publishes. For a node that declares none: the
            streams other actors read from it, plus ``events``.
        line: line of its ``[[actor]]`` header.
        placement: where its instances run (this machine, or workers).
    """

    name: str
    plugin: str
    plugin_class: type | None
    category: Category
    inputs: tuple[str, ...] = ()
    params: Mapping[str, Any] = field(default_factory=dict)
    env: Mapping[str, str] = field(default_factory=dict)
    replicas: int = 1
    max_inflight: int = 1
    input_options: Mapping[str, InputOptions] = field(default_factory=dict)
    supervisor: SupervisorDefaults = field(default_factory=SupervisorDefaults)
    environment: Environment | None = None
    outputs: tuple[str, ...] = ()
    line: int = 1
    placement: Placement = field(default_factory=Placement)

    def host_python(self, default: str) -> str:
        """The interpreter of this actor's host: its environment's, else ``default``."""
        return default if self.environment is None else str(self.environment.python)

    @property
    def dispatcher(self) -> str | None:
        """Name of the dispatcher process of a replicated actor, else None."""
        return f"{self.name}-dispatch" if self.replicas > 1 else None

    @property
    def instances(self) -> list[str]:
        """Process names: the actor name, or ``<name>-<i>`` per replica."""
        if self.replicas == 1:
            return [self.name]
        return [f"{self.name}-{i}" for i in range(self.replicas)]

    @property
    def producers(self) -> list[str]:
        """Names of the actors it reads from, in input order, without repeats."""
        return list(dict.fromkeys(topic.partition(".")[0] for topic in self.inputs))


@dataclass(frozen=True)
class ServiceConfig:
    """One ``[[service]]``: a managed helper process (e.g. a local LLM server).

    Started by the supervisor before any actor and stopped after them
    (:mod:`va_actors.runtime.services`).
    """

    name: str
    command: tuple[str, ...]
    health_url: str | None = None
    startup_timeout_s: float = 60.0
    env: Mapping[str, str] = field(default_factory=dict)
    line: int = 1


@dataclass(frozen=True)
class PipelineConfig:
    """A checked pipeline file.

    Attributes:
        name: pipeline name (run directory and status use it).
        path: absolute path of the file. Its directory is the pipeline's
            working directory: actors and services run there, so relative
            paths in the file (assets, models, outputs, ``module:Class``
            files) are taken from the file's own directory.
        on_give_up: ``stop`` the pipeline or ``degrade`` (run without the actor)
            when an actor is given up.
        run_dir: where to put the run directory (absolute; ``~`` and
            ``$VARS`` expanded, relative paths taken from the file's
            directory), or None for the default.
        state: the conversation store's file (SQLite; ``~``, ``$VARS`` and
            relative paths as for ``run_dir``), or None for ``state.db`` in
            the run directory (gone with the run).
        keep_state: False (``state = false``): no conversation store; a
            restarted LLM or Realtime actor starts with an empty history.
        stop_when_sources_finish: stop the pipeline once every source actor
            has sent a ``SourceFinishedEvent`` (demos, batch runs).
        supervisor: the ``[supervisor]`` defaults.
        actors: actors in file order.
        services: services in file order.
        transport: ``[transport]`` (None: everything on this machine).
        workers: the ``[[worker]]`` tables.
    """

    name: str
    path: Path
    on_give_up: GiveUpPolicy = GiveUpPolicy.STOP
    run_dir: str | None = None
    state: str | None = None
    keep_state: bool = True
    stop_when_sources_finish: bool = False
    supervisor: SupervisorDefaults = field(default_factory=SupervisorDefaults)
    actors: tuple[ActorConfig, ...] = ()
    services: tuple[ServiceConfig, ...] = ()
    transport: TransportConfig | None = None
    workers: tuple[WorkerConfig, ...] = ()

    @property
    def remote(self) -> bool:
        """Some actor runs on workers."""
        return any(a.placement.remote for a in self.actors)

    @property
    def directory(self) -> Path:
        """The file's directory: where actors and services run."""
        return self.path.parent

    def actor(self, name: str) -> ActorConfig:
        """The actor called ``name`` (KeyError if there is none)."""
        for actor in self.actors:
            if actor.name == name:
                return actor
        raise KeyError(f"pipeline {self.name!r} has no actor {name!r}")

    def consumers(self, topic: str) -> list[ActorConfig]:
        """Actors that subscribe to ``topic`` (``<actor>.<stream>``)."""
        return [actor for actor in self.actors if topic in actor.inputs]

    def layers(self) -> list[list[str]]:
        """Actor names grouped in start/shutdown order: sources first, sinks last.

        Each layer only reads from earlier layers, except where a node closes a
        loop (a transport that captures the user and plays agent audio): such a
        node is placed as a source.
        """
        return layers([a.name for a in self.actors],
                      {a.name: a.producers for a in self.actors},
                      [a.name for a in self.actors if a.category is Category.NODE])

    def topological_order(self) -> list[str]:
        """Actor names, every producer before its consumers (see :meth:`layers`)."""
        return [name for layer in self.layers() for name in layer]
