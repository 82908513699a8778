"""Pipeline files: load a TOML pipeline, check all of it, return frozen settings.

::

    [pipeline]
    name = "voice"              # optional; default: the file name without .toml
    on_give_up = "stop"         # or "degrade": keep running without a given-up actor
    stop_when_sources_finish = false  # true: stop once every source said it is done

    [supervisor]                # defaults every actor inherits
    restart = "on-failure"
    hang_timeout_s = 5.0

    [[actor]]
    name = "stt"
    plugin = "mymod:MySTT"      # or an installed plugin's entry-point name
    inputs = ["mic.audio"]
    replicas = 2
    restart = "always"          # any [supervisor] key overrides the default here
    [actor.params]              # keyword arguments of the plugin class
    model = "tiny"

:func:`load_pipeline` reports every problem of a file at once, each with the
file and line it comes from, as a :class:`ConfigError`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import difflib
import inspect
import os
import re
import tomllib
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, cast

from va_actors.runtime import env_refs
from va_actors.runtime.plugins import Category, PluginError, category, outputs, resolve
from va_actors.wire.topics import SYSTEM_ACTOR, TopicError, check_name

__all__ = [
    "ACTOR_KEYS",
    "SERVICE_KEYS",
    "SUPERVISOR_KEYS",
    "TOP_LEVEL_KEYS",
    "ActorConfig",
    "ConfigError",
    "ConfigIssue",
    "GiveUpPolicy",
    "InputOptions",
    "LineMap",
    "PipelineConfig",
    "RestartPolicyName",
    "ServiceConfig",
    "SupervisorDefaults",
    "load_pipeline",
    "parse_pipeline",
    "scan_lines",
]

RestartPolicyName = Literal["never", "on-failure", "always"]
GiveUpPolicy = Literal["stop", "degrade"]

RESTART_CHOICES: tuple[str, ...] = ("never", "on-failure", "always")
GIVE_UP_CHOICES: tuple[str, ...] = ("stop", "degrade")


# --------------------------------------------------------------------------
# Issues
# --------------------------------------------------------------------------


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


# --------------------------------------------------------------------------
# Settings
# --------------------------------------------------------------------------


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
    """

    restart: RestartPolicyName = "on-failure"
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
        plugin_class: the resolved class.
        category: what kind of plugin it is (decides how the host drives it).
        inputs: topics it subscribes to, ``<actor>.<stream>``.
        params: keyword arguments for the plugin class.
        env: extra environment variables of the actor process.
        replicas: number of processes.
        max_inflight: work items in flight per replica.
        input_options: per-input settings (fps, staleness bound) by topic.
        supervisor: effective supervision settings (defaults plus overrides).
        outputs: streams it publishes. For a node: the streams other actors
            read from it, plus ``events``.
        line: line of its ``[[actor]]`` header.
    """

    name: str
    plugin: str
    plugin_class: type
    category: Category
    inputs: tuple[str, ...] = ()
    params: Mapping[str, Any] = field(default_factory=dict)
    env: Mapping[str, str] = field(default_factory=dict)
    replicas: int = 1
    max_inflight: int = 1
    input_options: Mapping[str, InputOptions] = field(default_factory=dict)
    supervisor: SupervisorDefaults = field(default_factory=SupervisorDefaults)
    outputs: tuple[str, ...] = ()
    line: int = 1

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
        path: absolute path of the file.
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
    on_give_up: GiveUpPolicy = "stop"
    run_dir: str | None = None
    stop_when_sources_finish: bool = False
    supervisor: SupervisorDefaults = field(default_factory=SupervisorDefaults)
    actors: tuple[ActorConfig, ...] = ()
    services: tuple[ServiceConfig, ...] = ()

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
        return _layers(self.actors)

    def topological_order(self) -> list[str]:
        """Actor names, every producer before its consumers (see :meth:`layers`)."""
        return [name for layer in self.layers() for name in layer]


# --------------------------------------------------------------------------
# Schema
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Number:
    """A numeric setting: int or float, with a lower bound."""

    kind: type[int] | type[float]
    minimum: float
    inclusive: bool = True

    def describe(self) -> str:
        noun = "an integer" if self.kind is int else "a number"
        op = ">=" if self.inclusive else ">"
        return f"{noun} {op} {self.minimum:g}"

    def in_range(self, value: float) -> bool:
        return value >= self.minimum if self.inclusive else value > self.minimum


_SUPERVISOR_NUMBERS: dict[str, _Number] = {
    "backoff_initial_s": _Number(float, 0),
    "backoff_factor": _Number(float, 1),
    "backoff_cap_s": _Number(float, 0),
    "max_restarts": _Number(int, 0),
    "restart_window_s": _Number(float, 0, inclusive=False),
    "hang_timeout_s": _Number(float, 0, inclusive=False),
    "heartbeat_interval_s": _Number(float, 0, inclusive=False),
    "memory_limit_mb": _Number(int, 0),
    "shutdown_deadline_s": _Number(float, 0),
    "start_timeout_s": _Number(float, 0, inclusive=False),
}

SUPERVISOR_KEYS: tuple[str, ...] = ("restart", *_SUPERVISOR_NUMBERS)
ACTOR_KEYS: tuple[str, ...] = ("name", "plugin", "inputs", "params", "env", "replicas",
                               "max_inflight")
SERVICE_KEYS: tuple[str, ...] = ("name", "command", "health_url", "startup_timeout_s", "env")
TOP_LEVEL_KEYS: tuple[str, ...] = ("pipeline", "supervisor", "actor", "service")
PIPELINE_KEYS: tuple[str, ...] = ("name", "on_give_up", "run_dir", "stop_when_sources_finish")
_AT_PIPELINE: tuple[str, ...] = ("pipeline",)

_COUNT = _Number(int, 1)
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

# --------------------------------------------------------------------------
# Lines: tomllib keeps no positions, so scan the raw text for them.
# --------------------------------------------------------------------------

PathKey = tuple[str | int, ...]

_BARE = r"[A-Za-z0-9_-]+"
_BASIC = r'"(?:[^"\\]|\\.)*"'
_LITERAL = r"'[^']*'"
_KEY_PART = rf"\s*(?:{_BARE}|{_BASIC}|{_LITERAL})\s*"
_KEY_LINE = re.compile(rf"^(?P<key>{_KEY_PART}(?:\.{_KEY_PART})*)=")
_PART = re.compile(rf"\s*({_BARE}|{_BASIC}|{_LITERAL})\s*")


def _split_key(raw: str) -> list[str]:
    """``a . "b" . 'c'`` -> ``["a", "b", "c"]`` (escapes inside quotes are kept)."""
    parts: list[str] = []
    pos = 0
    while (match := _PART.match(raw, pos)) is not None:
        token = match.group(1)
        parts.append(token[1:-1] if token[0] in "\"'" else token)
        pos = match.end()
        if pos >= len(raw) or raw[pos] != ".":
            break
        pos += 1
    return parts


@dataclass
class _LexState:
    """Carried from line to line: inside a multi-line string, or a value's brackets."""

    string: str | None = None
    depth: int = 0

    @property
    def at_statement(self) -> bool:
        return self.string is None and self.depth == 0

    def advance(self, text: str) -> None:
        """Consume ``text``: strings, comments and brackets."""
        i = 0
        while i < len(text):
            if self.string is not None:
                end = text.find(self.string, i)
                if end < 0:
                    return
                self.string, i = None, end + 3
            elif text[i] == "#":
                return
            elif text.startswith(('"""', "'''"), i):
                self.string, i = text[i:i + 3], i + 3
            elif text[i] in "\"'":
                i = _string_end(text, i)
            else:
                if text[i] in "[{":
                    self.depth += 1
                elif text[i] in "]}":
                    self.depth = max(0, self.depth - 1)
                i += 1


def _string_end(text: str, start: int) -> int:
    quote, i = text[start], start + 1
    while i < len(text):
        if quote == '"' and text[i] == "\\":
            i += 2
        elif text[i] == quote:
            return i + 1
        else:
            i += 1
    return i


@dataclass
class LineMap:
    """1-based lines of table headers and keys, addressed like the parsed document.

    ``("actor", 1, "params", "model")`` is ``params.model`` of the second
    ``[[actor]]``. Lookups fall back to the closest recorded ancestor, so a key
    that cannot be located (inside an inline table) gets its table's line.
    """

    lines: dict[PathKey, int] = field(default_factory=dict)
    spans: dict[PathKey, tuple[int, int]] = field(default_factory=dict)
    text: list[str] = field(default_factory=list)
    last_line: int = 1

    def line(self, path: PathKey) -> int:
        """Line of ``path``, else of its closest recorded ancestor, else 1."""
        for end in range(len(path), 0, -1):
            found = self.lines.get(path[:end])
            if found is not None:
                return found
        return 1

    def element_line(self, path: PathKey, element: str) -> int:
        """Line of the string ``element`` inside the (multi-line) value of ``path``."""
        span = self.spans.get(path)
        if span is not None:
            for quoted in (f'"{element}"', f"'{element}'"):
                for lineno in range(span[0], span[1] + 1):
                    if quoted in self.text[lineno - 1]:
                        return lineno
        return self.line(path)

    def record(self, path: PathKey, line: int) -> None:
        """Remember the first line where ``path`` appears."""
        self.lines.setdefault(path, line)


class _LineScanner:
    """Walks a TOML text line by line, recording where headers and keys are."""

    def __init__(self) -> None:
        self.map = LineMap()
        self.state = _LexState()
        self.prefix: PathKey = ()
        self.arrays: dict[tuple[str, ...], int] = {}
        self.value: tuple[PathKey, int] | None = None  # a key whose value spans lines

    def feed(self, lineno: int, line: str) -> None:
        self.map.text.append(line)
        if not self.state.at_statement:
            self.state.advance(line)
            self._close_value(lineno)
            return
        text = line.strip()
        if not text or text.startswith("#"):
            return
        if text.startswith("[["):
            self._header(lineno, text[2:].split("]]", 1)[0], array=True)
        elif text.startswith("["):
            self._header(lineno, text[1:].split("]", 1)[0], array=False)
        elif (match := _KEY_LINE.match(text)) is not None:
            parts = _split_key(match.group("key"))
            for end in range(1, len(parts) + 1):
                self.map.record((*self.prefix, *parts[:end]), lineno)
            self.value = ((*self.prefix, *parts), lineno)
            self.state.advance(text[match.end():])
            self._close_value(lineno)

    def _close_value(self, lineno: int) -> None:
        if self.value is not None and self.state.at_statement:
            path, start = self.value
            self.map.spans.setdefault(path, (start, lineno))
            self.value = None

    def _header(self, lineno: int, raw: str, *, array: bool) -> None:
        names = _split_key(raw)
        path: list[str | int] = []
        for depth, name in enumerate(names):
            path.append(name)
            self.map.record(tuple(path), lineno)
            so_far = tuple(names[: depth + 1])
            if array and depth == len(names) - 1:
                self.arrays[so_far] = self.arrays.get(so_far, -1) + 1
                path.append(self.arrays[so_far])
            elif so_far in self.arrays:
                path.append(self.arrays[so_far])
        self.prefix = tuple(path)
        self.map.record(self.prefix, lineno)


def scan_lines(text: str) -> LineMap:
    """Map every table header and key of the TOML ``text`` to its line."""
    scanner = _LineScanner()
    lines = text.splitlines()
    for lineno, line in enumerate(lines, start=1):
        scanner.feed(lineno, line)
    scanner.map.last_line = max(1, len(lines))
    return scanner.map


# --------------------------------------------------------------------------
# Checking
# --------------------------------------------------------------------------

_TOML_TYPES: tuple[tuple[type, str], ...] = (
    (bool, "boolean"), (int, "integer"), (float, "float"), (str, "string"),
    (list, "array"), (dict, "table"), (dt.datetime, "datetime"), (dt.date, "date"),
    (dt.time, "time"),
)


def _toml_type(value: object) -> str:
    for py_type, name in _TOML_TYPES:
        if isinstance(value, py_type):
            return name
    return type(value).__name__


def _did_you_mean(word: str, choices: Iterable[str]) -> str | None:
    options = sorted(set(choices))
    close = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    if close:
        return f"did you mean {close[0]!r}?"
    return f"expected one of: {', '.join(options)}" if options else None


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


class _Checker:
    """Collects issues with the file name and line of each."""

    def __init__(self, file: str, lines: LineMap) -> None:
        self.file = file
        self.lines = lines
        self.issues: list[ConfigIssue] = []

    def issue(self, path: PathKey, message: str, hint: str | None = None, *,
              element: str | None = None) -> None:
        """Record a problem at ``path`` (at the string ``element`` of its value, if given)."""
        line = (self.lines.line(path) if element is None
                else self.lines.element_line(path, element))
        self.issues.append(ConfigIssue(self.file, line, message, hint))

    def line(self, path: PathKey) -> int:
        return self.lines.line(path)

    # -- typed getters: return the value, or None after recording an issue --
    def string(self, table: Mapping[str, Any], key: str, path: PathKey, what: str) -> str | None:
        value = table.get(key)
        if value is None:
            return None
        if not isinstance(value, str):
            self.issue((*path, key), f"{what}{key} must be a string, got "
                                     f"{_toml_type(value)} {_short(value)}",
                       f'write {key} = "..."')
            return None
        return value

    def number(self, table: Mapping[str, Any], key: str, path: PathKey, what: str,
               spec: _Number) -> float | None:
        value = table.get(key)
        if value is None:
            return None
        ok_type = isinstance(value, int) if spec.kind is int else isinstance(value, int | float)
        if isinstance(value, bool) or not ok_type:
            hint = f"write {key} = {value}" if isinstance(value, str) and _numeric(value) else None
            self.issue((*path, key), f"{what}{key} must be {spec.describe()}, got "
                                     f"{_toml_type(value)} {_short(value)}", hint)
            return None
        number = float(value)
        if not spec.in_range(number):
            self.issue((*path, key), f"{what}{key} = {value} is out of range: it must be "
                                     f"{spec.describe()}")
            return None
        return number

    def choice(self, table: Mapping[str, Any], key: str, path: PathKey, what: str,
               choices: Sequence[str]) -> str | None:
        value = self.string(table, key, path, what)
        if value is None or value in choices:
            return value
        self.issue((*path, key), f"{what}{key} = {value!r} is not one of "
                                 f"{', '.join(repr(c) for c in choices)}",
                   _did_you_mean(value, choices))
        return None

    def table(self, parent: Mapping[str, Any], key: str, path: PathKey,
              what: str) -> dict[str, Any] | None:
        value = parent.get(key)
        if value is None:
            return None
        if not isinstance(value, dict):
            self.issue((*path, key), f"{what}{key} must be a table, got "
                                     f"{_toml_type(value)} {_short(value)}",
                       f"write [{key}] or {key} = {{ ... }}")
            return None
        return value

    def unknown_keys(self, table: Mapping[str, Any], known: Sequence[str], path: PathKey,
                     what: str) -> None:
        for key, value in table.items():
            if key not in known:
                self.issue((*path, key), f"unknown {_kind(value)} {key!r} in {what}",
                           _did_you_mean(key, known))


def _kind(value: object) -> str:
    """'table' for a table or an array of tables, else 'key'."""
    if isinstance(value, dict):
        return "table"
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        return "table"
    return "key"


def _numeric(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


# -- supervisor settings ------------------------------------------------------


def _supervision(chk: _Checker, table: Mapping[str, Any], path: PathKey, what: str,
                 base: SupervisorDefaults) -> SupervisorDefaults:
    """``base`` with the supervisor keys found in ``table`` applied (bad ones skipped)."""
    changes: dict[str, Any] = {}
    restart = chk.choice(table, "restart", path, what, RESTART_CHOICES)
    if restart is not None:
        changes["restart"] = restart
    for key, spec in _SUPERVISOR_NUMBERS.items():
        value = chk.number(table, key, path, what, spec)
        if value is not None:
            changes[key] = spec.kind(value)
    result = dataclasses.replace(base, **changes)
    _cross_check(chk, result, changes, path, what)
    return result


def _cross_check(chk: _Checker, sup: SupervisorDefaults, changed: Mapping[str, Any],
                 path: PathKey, what: str) -> None:
    # Only check pairs this table touched, so a bad default is reported once.
    if {"hang_timeout_s", "heartbeat_interval_s"} & changed.keys() and \
            sup.hang_timeout_s <= sup.heartbeat_interval_s:
        key = "hang_timeout_s" if "hang_timeout_s" in changed else "heartbeat_interval_s"
        chk.issue((*path, key), f"{what}hang_timeout_s ({sup.hang_timeout_s:g}) must be longer "
                                f"than heartbeat_interval_s ({sup.heartbeat_interval_s:g})",
                  "otherwise every healthy actor counts as hung; allow a few heartbeats")
    if {"backoff_cap_s", "backoff_initial_s"} & changed.keys() and \
            sup.backoff_cap_s < sup.backoff_initial_s:
        key = "backoff_cap_s" if "backoff_cap_s" in changed else "backoff_initial_s"
        chk.issue((*path, key), f"{what}backoff_cap_s ({sup.backoff_cap_s:g}) is below "
                                f"backoff_initial_s ({sup.backoff_initial_s:g})")


# -- env and params -------------------------------------------------------------


def _env(chk: _Checker, parent: Mapping[str, Any], path: PathKey, what: str) -> dict[str, str]:
    table = chk.table(parent, "env", path, what)
    env: dict[str, str] = {}
    for key, value in (table or {}).items():
        where = (*path, "env", key)
        if not _ENV_NAME.match(key):
            chk.issue(where, f"{what}env: {key!r} is not a valid environment variable name",
                      "use letters, digits and '_', not starting with a digit")
        elif not isinstance(value, str):
            chk.issue(where, f"{what}env.{key} must be a string, got {_toml_type(value)} "
                             f"{_short(value)}", f'quote it: {key} = "{value}"')
        elif _refs_resolve(chk, where, f"{what}env.{key}", value, os.environ):
            env[key] = value
    return env


def _refs_resolve(chk: _Checker, where: PathKey, label: str, value: object,
                  environ: Mapping[str, str]) -> bool:
    """Report malformed or unset ``$NAME`` references in ``value``; True if none."""
    try:
        missing = env_refs.unset(value, environ)
    except env_refs.MalformedReferenceError as exc:
        chk.issue(where, f"{label}: {exc}")
        return False
    for name in missing:
        chk.issue(where, f"{label} refers to ${name}, which is not set",
                  f"export {name}=... before va-launch, or give a default: "
                  f"${{{name}:-value}}; $$ is a literal $")
    return not missing


def _plain_data(value: object) -> str | None:
    """Name of the first TOML date/time inside ``value`` (those do not reach an actor)."""
    if isinstance(value, dt.date | dt.time):
        return _toml_type(value)
    if isinstance(value, list):
        return next((k for v in value if (k := _plain_data(v))), None)
    if isinstance(value, dict):
        return next((k for v in value.values() if (k := _plain_data(v))), None)
    return None


def _params(chk: _Checker, parent: Mapping[str, Any], path: PathKey,
            what: str, env: Mapping[str, str]) -> dict[str, Any]:
    """The actor's params; references may name its ``env`` table's variables too."""
    table = chk.table(parent, "params", path, what)
    params = dict(table or {})
    environ = {**os.environ, **env}
    for key, value in params.items():
        kind = _plain_data(value)
        if kind is not None:
            chk.issue((*path, "params", key), f"{what}params.{key} holds a TOML {kind}, which "
                                              "cannot be passed to an actor process",
                      "write it as a string")
        _refs_resolve(chk, (*path, "params", key), f"{what}params.{key}", value, environ)
    return params


def _check_params_fit(chk: _Checker, cls: type, params: Mapping[str, Any], path: PathKey,
                      what: str) -> None:
    """Report params the plugin class does not take and required ones that are missing."""
    try:
        signature = inspect.signature(cls)
    except (TypeError, ValueError):
        return
    accepted = {name: p for name, p in signature.parameters.items()
                if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    open_ended = any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values())
    if not open_ended:
        for key in params:
            if key not in accepted:
                hint = _did_you_mean(key, accepted) if accepted else \
                    f"{cls.__qualname__} takes no parameters"
                chk.issue((*path, "params", key),
                          f"{what}{cls.__qualname__} has no parameter {key!r}", hint)
    missing = [name for name, p in accepted.items()
               if p.default is p.empty and name not in params]
    if missing:
        chk.issue((*path, "params"), f"{what}{cls.__qualname__} needs parameter(s) "
                                     f"{', '.join(missing)}",
                  f"add them under [actor.params], e.g. {missing[0]} = ...")


# -- actors -------------------------------------------------------------------------


@dataclass
class _Draft:
    """An actor while being checked; fields are None where the file was wrong."""

    index: int
    line: int
    name: str | None = None
    plugin: str | None = None
    plugin_class: type | None = None
    category: Category | None = None
    inputs: list[tuple[str, str, int]] = field(default_factory=list)  # (actor, stream, #)
    params: dict[str, Any] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    replicas: int = 1
    max_inflight: int = 1
    input_options: dict[str, InputOptions] = field(default_factory=dict)
    supervisor: SupervisorDefaults = field(default_factory=SupervisorDefaults)

    @property
    def path(self) -> PathKey:
        return ("actor", self.index)

    @property
    def label(self) -> str:
        return f"actor {self.name!r}: " if self.name else f"[[actor]] #{self.index + 1}: "


def _actor_draft(chk: _Checker, table: Mapping[str, Any], index: int,
                 defaults: SupervisorDefaults, search: Sequence[Path]) -> _Draft:
    draft = _Draft(index=index, line=chk.line(("actor", index)))
    path = draft.path
    draft.name = _actor_name(chk, table, path, index)
    what = draft.label
    chk.unknown_keys(table, (*ACTOR_KEYS, *SUPERVISOR_KEYS), path, what.rstrip(": "))
    draft.plugin, draft.plugin_class, draft.category = _actor_plugin(chk, table, path, what,
                                                                     search)
    draft.inputs = _actor_inputs(chk, table, path, what, draft.input_options)
    _one_video_input(chk, draft)
    draft.env = _env(chk, table, path, what)
    draft.params = _params(chk, table, path, what, draft.env)
    for key in ("replicas", "max_inflight"):
        value = chk.number(table, key, path, what, _COUNT)
        if value is not None:
            setattr(draft, key, int(value))
    draft.supervisor = _supervision(chk, table, path, what, defaults)
    if draft.plugin_class is not None:
        _check_params_fit(chk, draft.plugin_class, draft.params, path, what)
    return draft


def _actor_name(chk: _Checker, table: Mapping[str, Any], path: PathKey,
                index: int) -> str | None:
    label = f"[[actor]] #{index + 1}: "
    if "name" not in table:
        chk.issue(path, f"{label}missing name", 'add name = "..." (used in topics, e.g. stt)')
        return None
    name = chk.string(table, "name", path, label)
    if name is None:
        return None
    try:
        check_name(name)
    except TopicError as exc:
        chk.issue((*path, "name"), f"{label}{exc}")
        return None
    if name == SYSTEM_ACTOR:
        chk.issue((*path, "name"), f"actor name {name!r} is reserved for the supervisor's "
                                   "topics", "pick another name")
        return None
    return name


def _actor_plugin(chk: _Checker, table: Mapping[str, Any], path: PathKey, what: str,
                  search: Sequence[Path]) -> tuple[str | None, type | None, Category | None]:
    if "plugin" not in table:
        chk.issue(path, f"{what}missing plugin",
                  'add plugin = "package.module:Class" or an installed plugin name')
        return None, None, None
    ref = chk.string(table, "plugin", path, what)
    if ref is None:
        return None, None, None
    where = (*path, "plugin")
    try:
        cls = resolve(ref, search)
        cat = category(cls)
    except PluginError as exc:
        chk.issue(where, f"{what}plugin {ref!r}: {exc.message}", exc.hint or None)
        return ref, None, None
    if inspect.isabstract(cls):
        missing = ", ".join(sorted(getattr(cls, "__abstractmethods__", ())))
        chk.issue(where, f"{what}plugin {ref!r} is abstract: it does not implement {missing}",
                  f"implement them in {cls.__qualname__}, or point at a concrete subclass")
        return ref, None, None
    return ref, cls, cat


def _actor_inputs(chk: _Checker, table: Mapping[str, Any], path: PathKey, what: str,
                  options: dict[str, InputOptions]) -> list[tuple[str, str, int]]:
    raw = table.get("inputs", [])
    where = (*path, "inputs")
    if not isinstance(raw, list):
        hint = f'write inputs = ["{raw}"]' if isinstance(raw, str) else None
        chk.issue(where, f"{what}inputs must be an array of \"<actor>.<stream>\" strings, "
                         f"got {_toml_type(raw)} {_short(raw)}", hint)
        return []
    found: list[tuple[str, str, int]] = []
    seen: set[str] = set()
    for position, item in enumerate(raw):
        option: InputOptions | None = None
        if isinstance(item, dict):
            item, option = _input_table(chk, item, (*where, position), what)
            if item is None:
                continue
        parsed = _one_input(chk, item, where, what)
        if parsed is None:
            continue
        topic = f"{parsed[0]}.{parsed[1]}"
        if topic in seen:
            chk.issue(where, f"{what}input {topic!r} is listed twice", "list it once",
                      element=topic)
            continue
        seen.add(topic)
        found.append((*parsed, position))
        if option is not None:
            options[topic] = option
    return found


_ONE_TRACK = (Category.VIDEO_PROCESSOR, Category.VLM, Category.REALTIME)
"""Categories whose plugin sees its video input as one track."""


def _one_video_input(chk: _Checker, draft: _Draft) -> None:
    """Refuse a second video input where the plugin has one track for them all."""
    if draft.category not in _ONE_TRACK:
        return
    videos = [f"{actor}.{stream}" for actor, stream, _ in draft.inputs if stream == "video"]
    if len(videos) > 1:
        chk.issue((*draft.path, "inputs"),
                  f"{draft.label}reads {len(videos)} video streams ({', '.join(videos)}), but "
                  f"a {draft.category} plugin sees one video track: their frames would "
                  "interleave in it",
                  "give it one video input; for another camera, add another actor",
                  element=videos[1])


_INPUT_TABLE_KEYS = ("topic", "fps", "max_age_ms")
_POSITIVE = _Number(float, 0, inclusive=False)


def _input_table(chk: _Checker, item: dict[str, Any], where: PathKey,
                 what: str) -> tuple[str | None, InputOptions | None]:
    """``{ topic = "cam.video", fps = 5, max_age_ms = 400 }`` -> (topic, options)."""
    chk.unknown_keys(item, _INPUT_TABLE_KEYS, where, f"{what}input table")
    if "topic" not in item:
        chk.issue(where, f"{what}an input table needs a topic",
                  'write { topic = "camera.video", fps = 5 }')
        return None, None
    topic = chk.string(item, "topic", where, what)
    fps = chk.number(item, "fps", where, what, _POSITIVE)
    max_age = chk.number(item, "max_age_ms", where, what, _POSITIVE)
    return topic, InputOptions(fps=fps, max_age_ms=max_age)


def _one_input(chk: _Checker, item: object, where: PathKey,
               what: str) -> tuple[str, str] | None:
    if not isinstance(item, str):
        chk.issue(where, f"{what}inputs entries must be strings or tables, got "
                         f"{_toml_type(item)} {_short(item)}",
                  'write "<actor>.<stream>", e.g. "mic.audio", or '
                  '{ topic = "camera.video", fps = 5 }')
        return None
    actor, dot, stream = item.partition(".")
    if not dot:
        chk.issue(where, f"{what}input {item!r} names no stream",
                  f'write "<actor>.<stream>", e.g. "{item}.audio"', element=item)
        return None
    try:
        check_name(actor)
        check_name(stream, "stream name")
    except TopicError as exc:
        chk.issue(where, f"{what}input {item!r}: {exc}", element=item)
        return None
    if actor == SYSTEM_ACTOR:
        chk.issue(where, f"{what}input {item!r}: 'sys' topics are the supervisor's control "
                         "channel, not data", "every actor already receives the epoch; remove it",
                  element=item)
        return None
    return actor, stream


# -- the graph ----------------------------------------------------------------------


Edges = dict[str, list[tuple[str, str]]]
"""producer -> [(consumer, stream it reads)]."""


def _check_graph(chk: _Checker, drafts: Sequence[_Draft]) -> None:
    by_name = _index_names(chk, drafts)
    edges: Edges = {name: [] for name in by_name}
    for draft in drafts:
        for actor, stream, _ in draft.inputs:
            if _check_edge(chk, draft, actor, stream, by_name) and draft.name is not None:
                edges[actor].append((draft.name, stream))
    _check_cycles(chk, edges, by_name)


def _index_names(chk: _Checker, drafts: Sequence[_Draft]) -> dict[str, _Draft]:
    by_name: dict[str, _Draft] = {}
    for draft in drafts:
        if draft.name is None:
            continue
        first = by_name.get(draft.name)
        if first is not None:
            chk.issue((*draft.path, "name"), f"duplicate actor name {draft.name!r} (first "
                                             f"defined on line {first.line})",
                      "actor names must be unique; rename one")
            continue
        by_name[draft.name] = draft
    return by_name


def _check_edge(chk: _Checker, draft: _Draft, actor: str, stream: str,
                by_name: Mapping[str, _Draft]) -> bool:
    """Report what is wrong with input ``actor.stream`` of ``draft``; True if nothing."""
    where = (*draft.path, "inputs")
    topic = f"{actor}.{stream}"
    if actor == draft.name:
        chk.issue(where, f"{draft.label}reads its own output {topic!r}",
                  "an actor cannot subscribe to itself; remove it from inputs", element=topic)
        return False
    producer = by_name.get(actor)
    if producer is None:
        chk.issue(where, f"{draft.label}input {topic!r} names unknown actor {actor!r}",
                  _did_you_mean(actor, by_name) or "no actors are defined", element=topic)
        return False
    if producer.category is None or producer.category is Category.NODE:
        return True  # unknown (already reported) or a node: publishes whatever it publishes
    published = outputs(producer.category)
    if stream in published:
        return True
    close = difflib.get_close_matches(stream, sorted(published), n=1, cutoff=0.6)
    hint = f"did you mean '{actor}.{close[0]}'?" if close else None
    listing = ", ".join(sorted(published))
    chk.issue(where, f"{draft.label}input {topic!r}: {actor} ({producer.category} plugin) "
                     f"publishes no stream {stream!r}; it publishes {listing}", hint,
              element=topic)
    return False


def _check_cycles(chk: _Checker, edges: Edges, by_name: Mapping[str, _Draft]) -> None:
    # A node (a transport) may close a loop: it plays agent audio and captures
    # the user. Loops made of plugins alone feed the agent its own output.
    plugins = {name: d for name, d in by_name.items()
               if d.category is not None and d.category is not Category.NODE}
    among: Edges = {name: [(c, s) for c, s in edges[name] if c in plugins] for name in plugins}
    for component in _strongly_connected(list(plugins), among):
        if len(component) > 1:
            _report_cycle(chk, component, among, plugins)


def _strongly_connected(names: Sequence[str],
                        edges: Mapping[str, Sequence[tuple[str, str]]]) -> list[list[str]]:
    """Tarjan's algorithm (iterative); components come out with members in file order."""
    order = {name: i for i, name in enumerate(names)}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    result: list[list[str]] = []
    for root in names:
        if root in index:
            continue
        work: list[tuple[str, Iterator[tuple[str, str]]]] = [(root, iter(edges[root]))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, successors = work[-1]
            step = next(successors, None)
            if step is not None:
                nxt = step[0]
                if nxt not in index:
                    index[nxt] = low[nxt] = len(index)
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(edges[nxt])))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component: list[str] = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                result.append(sorted(component, key=order.__getitem__))
    return sorted(result, key=lambda c: order[c[0]])


def _shortest_cycle(start: str, members: set[str],
                    edges: Mapping[str, Sequence[tuple[str, str]]]) -> list[tuple[str, str]]:
    """[(actor, stream it publishes to the next)] around the shortest loop through start."""
    previous: dict[str, tuple[str, str]] = {}
    queue: deque[str] = deque([start])
    while queue:
        node = queue.popleft()
        for nxt, stream in edges[node]:
            if nxt not in members:
                continue
            if nxt == start:
                hops = [(node, stream)]
                while node != start:
                    node, via = previous[node]
                    hops.append((node, via))
                return list(reversed(hops))
            if nxt not in previous:
                previous[nxt] = (node, stream)
                queue.append(nxt)
    return []


def _report_cycle(chk: _Checker, component: Sequence[str],
                  edges: Mapping[str, Sequence[tuple[str, str]]],
                  by_name: Mapping[str, _Draft]) -> None:
    start = component[0]
    hops = _shortest_cycle(start, set(component), edges)
    route = " -> ".join([*(actor for actor, _ in hops), start])
    agent_audio = any(stream == "audio" and by_name[actor].category in
                      (Category.TTS, Category.REALTIME) for actor, stream in hops)
    effect = ("would feed agent audio back into itself" if agent_audio
              else f"would feed {start}'s output back into its own input")
    closing = f"{hops[-1][0]}.{hops[-1][1]}" if hops else start
    chk.issue((*by_name[start].path, "inputs"),
              f"input cycle {route} {effect} ({start} reads {closing!r})",
              "remove one of these inputs; only a transport node, which plays agent "
              "audio and captures the user, may close a loop", element=closing)


def _layers(actors: Sequence[ActorConfig]) -> list[list[str]]:
    names = [a.name for a in actors]
    waiting = {a.name: {p for p in a.producers if p in names and p != a.name} for a in actors}
    nodes = [a.name for a in actors if a.category is Category.NODE]
    done: set[str] = set()
    layers: list[list[str]] = []
    while len(done) < len(names):
        ready = [n for n in names if n not in done and waiting[n] <= done]
        if not ready:
            # Only a loop through a node remains: that node acts as the source.
            ready = [next((n for n in nodes if n not in done),
                          next(n for n in names if n not in done))]
        layers.append(ready)
        done.update(ready)
    return layers


# -- services -------------------------------------------------------------------------


def _service(chk: _Checker, table: Mapping[str, Any], index: int) -> ServiceConfig | None:
    path: PathKey = ("service", index)
    label = f"[[service]] #{index + 1}: "
    chk.unknown_keys(table, SERVICE_KEYS, path, label.rstrip(": "))
    name = _service_name(chk, table, path, label)
    what = f"service {name!r}: " if name else label
    command = _command(chk, table, path, what)
    url = chk.string(table, "health_url", path, what)
    if url is not None and not url.startswith(("http://", "https://")):
        chk.issue((*path, "health_url"), f"{what}health_url {url!r} is not an http(s) URL",
                  'e.g. health_url = "http://127.0.0.1:8080/health"')
        url = None
    timeout = chk.number(table, "startup_timeout_s", path, what, _Number(float, 0, False))
    env = _env(chk, table, path, what)
    if name is None or command is None:
        return None
    return ServiceConfig(name=name, command=tuple(command), health_url=url,
                         startup_timeout_s=float(timeout if timeout is not None else 60.0),
                         env=env, line=chk.line(path))


def _service_name(chk: _Checker, table: Mapping[str, Any], path: PathKey,
                  label: str) -> str | None:
    if "name" not in table:
        chk.issue(path, f"{label}missing name", 'add name = "..."')
        return None
    name = chk.string(table, "name", path, label)
    if name is None:
        return None
    try:
        return check_name(name, "service name")
    except TopicError as exc:
        chk.issue((*path, "name"), str(exc))
        return None


def _command(chk: _Checker, table: Mapping[str, Any], path: PathKey,
             what: str) -> list[str] | None:
    if "command" not in table:
        chk.issue(path, f"{what}missing command", 'add command = ["program", "arg", ...]')
        return None
    value = table["command"]
    if (not isinstance(value, list) or not value
            or not all(isinstance(v, str) and v for v in value)):
        hint = f"write command = {value.split()!r}" if isinstance(value, str) else None
        chk.issue((*path, "command"), f"{what}command must be a non-empty array of strings, "
                                      f"got {_short(value)}", hint)
        return None
    return list(value)


# -- top level ------------------------------------------------------------------------


def _array_of_tables(chk: _Checker, doc: Mapping[str, Any], key: str) -> list[dict[str, Any]]:
    value = doc.get(key, [])
    if isinstance(value, dict):
        chk.issue((key,), f"[{key}] must be an array of tables", f"write [[{key}]]")
        return []
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        chk.issue((key,), f"{key} must be written as [[{key}]] tables, got "
                          f"{_toml_type(value)}", f"write [[{key}]]")
        return []
    return value


def _pipeline_name(chk: _Checker, doc: Mapping[str, Any], path: Path) -> str:
    name = chk.string(doc, "name", _AT_PIPELINE, "")
    if name is not None:
        try:
            return check_name(name, "pipeline name")
        except TopicError as exc:
            chk.issue((*_AT_PIPELINE, "name"), str(exc))
    stem = re.sub(r"[^A-Za-z0-9_-]", "-", path.stem).lstrip("-_0123456789") or "pipeline"
    return stem[:63]


def _flag(chk: _Checker, table: Mapping[str, Any], key: str) -> bool:
    value = table.get(key, False)
    if not isinstance(value, bool):
        chk.issue((*_AT_PIPELINE, key), f"{key} must be true or false, got "
                                        f"{_toml_type(value)} {_short(value)}")
        return False
    return value


def _run_dir(chk: _Checker, doc: Mapping[str, Any], base: Path) -> str | None:
    raw = chk.string(doc, "run_dir", _AT_PIPELINE, "")
    if raw is None:
        return None
    if not raw.strip():
        chk.issue((*_AT_PIPELINE, "run_dir"), "run_dir is empty", "remove it to use the default")
        return None
    expanded = Path(os.path.expandvars(os.path.expanduser(raw)))
    return str(expanded if expanded.is_absolute() else (base / expanded).resolve())


def _finish_actor(draft: _Draft, node_outputs: Mapping[str, set[str]]) -> ActorConfig:
    assert draft.name and draft.plugin and draft.plugin_class and draft.category
    if draft.category is Category.NODE:
        streams = sorted(node_outputs.get(draft.name, set()) | {"events"})
    else:
        streams = sorted(outputs(draft.category))
    return ActorConfig(
        name=draft.name, plugin=draft.plugin, plugin_class=draft.plugin_class,
        category=draft.category, inputs=tuple(f"{a}.{s}" for a, s, _ in draft.inputs),
        params=draft.params, env=draft.env, replicas=draft.replicas,
        max_inflight=draft.max_inflight, input_options=dict(draft.input_options),
        supervisor=draft.supervisor,
        outputs=tuple(streams), line=draft.line,
    )


def _check_document(chk: _Checker, doc: Mapping[str, Any], path: Path) -> PipelineConfig:
    chk.unknown_keys(doc, TOP_LEVEL_KEYS, (), "the pipeline file")
    pipe = chk.table(doc, "pipeline", (), "") or {}
    chk.unknown_keys(pipe, PIPELINE_KEYS, _AT_PIPELINE, "[pipeline]")
    name = _pipeline_name(chk, pipe, path)
    on_give_up = chk.choice(pipe, "on_give_up", _AT_PIPELINE, "", GIVE_UP_CHOICES) or "stop"
    run_dir = _run_dir(chk, pipe, path.parent)
    stop_when_done = _flag(chk, pipe, "stop_when_sources_finish")
    sup_table = chk.table(doc, "supervisor", (), "")
    if sup_table is not None:
        chk.unknown_keys(sup_table, SUPERVISOR_KEYS, ("supervisor",), "[supervisor]")
    defaults = _supervision(chk, sup_table or {}, ("supervisor",), "[supervisor] ",
                            SupervisorDefaults())
    search = [path.parent]
    drafts = [_actor_draft(chk, table, i, defaults, search)
              for i, table in enumerate(_array_of_tables(chk, doc, "actor"))]
    if not drafts and not chk.issues:
        chk.issue(("actor",), "the pipeline defines no actors",
                  'add an [[actor]] table with name = "..." and plugin = "..."')
    _check_graph(chk, drafts)
    services = [_service(chk, table, i)
                for i, table in enumerate(_array_of_tables(chk, doc, "service"))]
    _check_unique_services(chk, services)
    if chk.issues:
        raise ConfigError(sorted(chk.issues, key=lambda issue: issue.line or 0))
    node_outputs: dict[str, set[str]] = {}
    for draft in drafts:
        for actor, stream, _ in draft.inputs:
            node_outputs.setdefault(actor, set()).add(stream)
    return PipelineConfig(
        name=name, path=path, on_give_up=cast(GiveUpPolicy, on_give_up), run_dir=run_dir,
        stop_when_sources_finish=stop_when_done, supervisor=defaults,
        actors=tuple(_finish_actor(d, node_outputs) for d in drafts),
        services=tuple(s for s in services if s is not None),
    )


def _check_unique_services(chk: _Checker, services: Sequence[ServiceConfig | None]) -> None:
    seen: dict[str, int] = {}
    for index, service in enumerate(services):
        if service is None:
            continue
        if service.name in seen:
            chk.issue(("service", index, "name"), f"duplicate service name {service.name!r} "
                                                  f"(first defined on line {seen[service.name]})",
                      "service names must be unique; rename one")
        else:
            seen[service.name] = service.line


# --------------------------------------------------------------------------
# Entry points
# --------------------------------------------------------------------------

_POSITION = re.compile(r"\s*\(at line (\d+), column (\d+)\)\s*$")
_AT_END = re.compile(r"\s*\(at end of document\)\s*$")


def _syntax_issue(file: str, exc: tomllib.TOMLDecodeError, last_line: int) -> ConfigIssue:
    text = str(exc)
    if (match := _POSITION.search(text)) is not None:
        message = f"invalid TOML: {text[:match.start()]} (column {match.group(2)})"
        line = int(match.group(1))
    else:
        message = f"invalid TOML: {_AT_END.sub('', text)} (at the end of the file)"
        line = last_line
    return ConfigIssue(file, line, message,
                       "fix the syntax first; nothing else was checked")


def parse_pipeline(text: str, path: str | os.PathLike[str], *,
                   display: str | None = None) -> PipelineConfig:
    """Check the pipeline TOML ``text`` as if read from ``path``.

    ``path`` decides the pipeline's directory (plugin modules and relative
    ``run_dir`` are looked up there); ``display`` is the file name shown in
    issues (default: ``path`` as given).

    Raises:
        ConfigError: with every problem found.
    """
    shown = display if display is not None else os.fspath(path)
    absolute = Path(path).resolve()
    lines = scan_lines(text)
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([_syntax_issue(shown, exc, lines.last_line)]) from None
    return _check_document(_Checker(shown, lines), doc, absolute)


def load_pipeline(path: str | os.PathLike[str]) -> PipelineConfig:
    """Load and check the pipeline file at ``path``.

    Issues name the file as given, so they read naturally next to the command
    the user typed.

    Raises:
        ConfigError: the file is missing, unreadable, not UTF-8, not TOML, or
            describes an invalid pipeline; every problem found is listed.
    """
    shown = os.fspath(path)
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise ConfigError([ConfigIssue(shown, None, "pipeline file not found",
                                       f"looked in {Path(path).resolve().parent}")]) from None
    except IsADirectoryError:
        raise ConfigError([ConfigIssue(shown, None, "is a directory, not a pipeline file",
                                       "pass a .toml file")]) from None
    except OSError as exc:
        raise ConfigError([ConfigIssue(shown, None, f"cannot read the pipeline file: "
                                                    f"{exc.strerror or exc}")]) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ConfigError([ConfigIssue(shown, line, "the file is not valid UTF-8",
                                       "save it as UTF-8")]) from None
    return parse_pipeline(text, path, display=shown)
