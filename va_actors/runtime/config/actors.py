"""Checking one ``[[actor]]`` table: name, plugin, inputs, env, params, supervision.

The result is a :class:`Draft` (fields None where the file was wrong); the
graph of all drafts is checked in :mod:`.wiring` and finished in
:mod:`.document`.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from va_actors.core.checks import ParamProblem
from va_actors.runtime import env_refs
from va_actors.runtime.categories import Category, info
from va_actors.runtime.config.checker import Checker, short, toml_type
from va_actors.runtime.config.lines import PathKey
from va_actors.runtime.config.remote import placement
from va_actors.runtime.config.settings import InputOptions, Placement, SupervisorDefaults
from va_actors.runtime.config.tables import (
    ACTOR_KEYS,
    COUNT,
    POSITIVE,
    SUPERVISOR_KEYS,
    check_params_fit,
    env_table,
    params_table,
    supervision,
)
from va_actors.runtime.environments import Environment, EnvironmentProblem, EnvKind, prepare
from va_actors.runtime.plugins import PluginError, category, resolve
from va_actors.runtime.probe import ProbeFailed, ProbeReport, run_probe
from va_actors.wire.limits import PROTOCOL_VERSION
from va_actors.wire.topics import SYSTEM_ACTOR, TopicError, check_name

__all__ = ["Draft", "actor_draft", "plugin_issues"]

@dataclass
class Draft:
    """An actor while being checked; fields are None where the file was wrong."""

    index: int
    line: int
    name: str | None = None
    plugin: str | None = None
    plugin_class: type | None = None
    """None when the plugin runs in another environment (only its probe saw it)."""
    category: Category | None = None
    declared_outputs: tuple[str, ...] | None = None
    """Streams a node says it publishes (its ``outputs``), or None."""
    environment: Environment | None = None
    probed: bool = False
    """The plugin was checked by the probe in its environment."""
    inputs: list[tuple[str, str, int]] = field(default_factory=list)  # (actor, stream, #)
    params: dict[str, Any] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    replicas: int = 1
    max_inflight: int = 1
    input_options: dict[str, InputOptions] = field(default_factory=dict)
    supervisor: SupervisorDefaults = field(default_factory=SupervisorDefaults)
    placement: Placement = field(default_factory=Placement)

    @property
    def path(self) -> PathKey:
        return ("actor", self.index)

    @property
    def label(self) -> str:
        return f"actor {self.name!r}: " if self.name else f"[[actor]] #{self.index + 1}: "


def actor_draft(chk: Checker, table: Mapping[str, Any], index: int,
                defaults: SupervisorDefaults, base_dir: Path) -> Draft:
    """Check the ``index``-th ``[[actor]]`` table; relative paths are taken from ``base_dir``."""
    draft = Draft(index=index, line=chk.line(("actor", index)))
    path = draft.path
    draft.name = _actor_name(chk, table, path, index)
    what = draft.label
    chk.unknown_keys(table, (*ACTOR_KEYS, *SUPERVISOR_KEYS), path, what.rstrip(": "))
    draft.env = env_table(chk, table, path, what)
    draft.params = params_table(chk, table, path, what, draft.env)
    given, draft.environment = _actor_environment(chk, table, path, what, base_dir)
    if not given:
        draft.plugin, draft.plugin_class, draft.category = _actor_plugin(chk, table, path, what,
                                                                         [base_dir])
        draft.declared_outputs = _declared_outputs(draft.plugin_class)
    elif draft.environment is not None:
        _probe_plugin(chk, table, draft, base_dir)
    else:  # the environment is wrong (reported): its plugin cannot be checked
        draft.plugin = chk.string(table, "plugin", path, what)
    draft.inputs = _actor_inputs(chk, table, path, what, draft.input_options)
    _one_video_input(chk, draft)
    for key in ("replicas", "max_inflight"):
        value = chk.number(table, key, path, what, COUNT)
        if value is not None:
            setattr(draft, key, int(value))
    draft.supervisor = supervision(chk, table, path, what, defaults)
    draft.placement = placement(chk, table, path, what)
    if draft.plugin_class is not None:
        plugin_issues(chk, draft.plugin_class, draft.params, path, what, base_dir)
    return draft


def plugin_issues(chk: Checker, cls: type, params: Mapping[str, Any], path: PathKey,
                  what: str, base_dir: Path) -> None:
    """Params against the constructor, then the plugin's own ``check_params``."""
    if check_params_fit(chk, cls, params, path, what):
        _plugin_checks(chk, cls, params, path, what, base_dir)


def _declared_outputs(cls: type | None) -> tuple[str, ...] | None:
    declared = getattr(cls, "outputs", None) if cls is not None else None
    return tuple(declared) if isinstance(declared, Sequence) else None


def _actor_name(chk: Checker, table: Mapping[str, Any], path: PathKey,
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


def _actor_plugin(chk: Checker, table: Mapping[str, Any], path: PathKey, what: str,
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


def _actor_environment(chk: Checker, table: Mapping[str, Any], path: PathKey, what: str,
                       base_dir: Path) -> tuple[bool, Environment | None]:
    """``environment`` / ``python``: (given at all, the environment if usable)."""
    given = [kind for kind in EnvKind if kind.value in table]
    if not given:
        return False, None
    if len(given) > 1:
        chk.issue((*path, "python"), f"{what}set environment or python, not both",
                  "environment is a uv project directory va-launch syncs; python an "
                  "interpreter used as it is")
        return True, None
    kind = given[0]
    written = chk.string(table, kind.value, path, what)
    if written is None:
        return True, None
    if not written.strip():
        chk.issue((*path, kind.value), f"{what}{kind.value} is empty",
                  "remove it to run the actor in va-launch's own environment")
        return True, None
    expanded = Path(os.path.expandvars(os.path.expanduser(written)))
    env = Environment(kind, written, expanded if expanded.is_absolute()
                      else (base_dir / expanded).absolute())
    try:
        prepare(env)
    except EnvironmentProblem as exc:
        chk.issue((*path, kind.value), f"{what}{env.describe()}: {exc.message}", exc.hint)
        return True, None
    return True, env


def _probe_plugin(chk: Checker, table: Mapping[str, Any], draft: Draft, base_dir: Path) -> None:
    """Check the plugin in its own environment (:mod:`va_actors.runtime.probe`)."""
    path, what, env = draft.path, draft.label, draft.environment
    assert env is not None
    if "plugin" not in table:
        chk.issue(path, f"{what}missing plugin",
                  'add plugin = "package.module:Class" or an installed plugin name')
        return
    ref = chk.string(table, "plugin", path, what)
    if ref is None:
        return
    draft.plugin = ref
    where = f"{what}{env.describe()}: "
    environ = {**os.environ, **env_refs.expand(draft.env, os.environ)}
    try:
        report = run_probe(env.python, ref, draft.params, base_dir, what, environ)
    except ProbeFailed as exc:
        chk.issue((*path, env.kind.value), f"{where}{exc.message}", exc.hint)
        return
    if not _probe_versions(chk, draft, report):
        return
    if report.error is not None or report.category is None:
        chk.issue((*path, "plugin"), f"{where}plugin {ref!r}: {report.error}", report.hint)
        return
    draft.category = Category(report.category)
    draft.declared_outputs = report.outputs
    draft.probed = True
    for issue in report.issues:
        chk.issue((*path, *issue.at), issue.message, issue.hint)


def _probe_versions(chk: Checker, draft: Draft, report: ProbeReport) -> bool:
    """The environment's va-actors must speak our protocol and have what it needs."""
    env = draft.environment
    assert env is not None
    where = (*draft.path, env.kind.value)
    label = f"{draft.label}{env.describe()}: "
    if report.requirements:
        chk.issue(where, f"{label}version clash: va-actors' host needs "
                         f"{'; '.join(report.requirements)}",
                  "upgrade those packages there, or use a uv project (environment = ...) so "
                  "uv resolves them together")
        return False
    if report.protocol != PROTOCOL_VERSION:
        chk.issue(where, f"{label}its va-actors {report.va_actors} speaks wire protocol "
                         f"{report.protocol}, this supervisor {PROTOCOL_VERSION}",
                  "install va-actors there from this workspace (a path dependency)")
        return False
    return True


def _actor_inputs(chk: Checker, table: Mapping[str, Any], path: PathKey, what: str,
                  options: dict[str, InputOptions]) -> list[tuple[str, str, int]]:
    raw = table.get("inputs", [])
    where = (*path, "inputs")
    if not isinstance(raw, list):
        hint = f'write inputs = ["{raw}"]' if isinstance(raw, str) else None
        chk.issue(where, f"{what}inputs must be an array of \"<actor>.<stream>\" strings, "
                         f"got {toml_type(raw)} {short(raw)}", hint)
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


def _one_video_input(chk: Checker, draft: Draft) -> None:
    """Refuse a second video input where the plugin has one track for them all."""
    if draft.category is None or not info(draft.category).one_video_track:
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


def _input_table(chk: Checker, item: dict[str, Any], where: PathKey,
                 what: str) -> tuple[str | None, InputOptions | None]:
    """``{ topic = "cam.video", fps = 5, max_age_ms = 400 }`` -> (topic, options)."""
    chk.unknown_keys(item, _INPUT_TABLE_KEYS, where, f"{what}input table")
    if "topic" not in item:
        chk.issue(where, f"{what}an input table needs a topic",
                  'write { topic = "camera.video", fps = 5 }')
        return None, None
    topic = chk.string(item, "topic", where, what)
    fps = chk.number(item, "fps", where, what, POSITIVE)
    max_age = chk.number(item, "max_age_ms", where, what, POSITIVE)
    return topic, InputOptions(fps=fps, max_age_ms=max_age)


def _one_input(chk: Checker, item: object, where: PathKey,
               what: str) -> tuple[str, str] | None:
    if not isinstance(item, str):
        chk.issue(where, f"{what}inputs entries must be strings or tables, got "
                         f"{toml_type(item)} {short(item)}",
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


def _plugin_checks(chk: Checker, cls: type, params: Mapping[str, Any], path: PathKey,
                   what: str, base_dir: Path) -> None:
    """Run the plugin's own ``check_params`` (files it reads, values it needs), if any."""
    hook = getattr(cls, "check_params", None)
    if not callable(hook):
        return
    try:
        problems: list[ParamProblem] = list(hook(params, base_dir))
    except Exception as exc:  # a broken hook must not hide the rest of the file
        chk.issue((*path, "plugin"), f"{what}{cls.__qualname__}.check_params failed: "
                                     f"{type(exc).__name__}: {exc}")
        return
    for problem in problems:
        key = problem.param.split(".")[0].split("[")[0]
        where = (*path, "params", key) if key else (*path, "params")
        chk.issue(where, f"{what}params.{problem.param}: {problem.message}", problem.hint)
