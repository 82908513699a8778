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
    "RestartMode",
    "ServiceConfig",
    "SupervisorDefaults",
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
        stop_when_sources_finish: stop the pipeline once every source actor
            has sent a ``SourceFinishedEvent`` (demos, batch runs).
        supervisor: the ``[supervisor]`` defaults.
        actors: actors in file order.
        services: services in file order.
    """

    name: str
    path: Path
    on_give_up: GiveUpPolicy = GiveUpPolicy.STOP
    run_dir: str | None = None
    stop_when_sources_finish: bool = False
    supervisor: SupervisorDefaults = field(default_factory=SupervisorDefaults)
    actors: tuple[ActorConfig, ...] = ()
    services: tuple[ServiceConfig, ...] = ()

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
