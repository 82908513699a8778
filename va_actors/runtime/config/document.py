"""Checking a whole parsed pipeline document: [pipeline], [supervisor], the actors,
the services, the graph; then the frozen :class:`PipelineConfig`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from va_actors.runtime.config.actors import Draft, actor_draft
from va_actors.runtime.config.checker import Checker, Number, short, toml_type
from va_actors.runtime.config.lines import PathKey
from va_actors.runtime.config.remote import check_remote, transport_table, worker_table
from va_actors.runtime.config.settings import (
    ActorConfig,
    ConfigError,
    GiveUpPolicy,
    PipelineConfig,
    ServiceConfig,
    SupervisorDefaults,
)
from va_actors.runtime.config.tables import (
    AT_PIPELINE,
    GIVE_UP_CHOICES,
    PIPELINE_KEYS,
    SERVICE_KEYS,
    SUPERVISOR_KEYS,
    TOP_LEVEL_KEYS,
    env_table,
    supervision,
)
from va_actors.runtime.config.wiring import check_graph, published_streams
from va_actors.runtime.state.database import check_url
from va_actors.wire.topics import TopicError, check_name

__all__ = ["check_document"]

# -- services -------------------------------------------------------------------------


def _service(chk: Checker, table: Mapping[str, Any], index: int) -> ServiceConfig | None:
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
    timeout = chk.number(table, "startup_timeout_s", path, what, Number(float, 0, False))
    env = env_table(chk, table, path, what)
    if name is None or command is None:
        return None
    return ServiceConfig(name=name, command=tuple(command), health_url=url,
                         startup_timeout_s=float(timeout if timeout is not None else 60.0),
                         env=env, line=chk.line(path))


def _service_name(chk: Checker, table: Mapping[str, Any], path: PathKey,
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


def _command(chk: Checker, table: Mapping[str, Any], path: PathKey,
             what: str) -> list[str] | None:
    if "command" not in table:
        chk.issue(path, f"{what}missing command", 'add command = ["program", "arg", ...]')
        return None
    value = table["command"]
    if (not isinstance(value, list) or not value
            or not all(isinstance(v, str) and v for v in value)):
        hint = f"write command = {value.split()!r}" if isinstance(value, str) else None
        chk.issue((*path, "command"), f"{what}command must be a non-empty array of strings, "
                                      f"got {short(value)}", hint)
        return None
    return list(value)


# -- top level ------------------------------------------------------------------------


def _array_of_tables(chk: Checker, doc: Mapping[str, Any], key: str) -> list[dict[str, Any]]:
    value = doc.get(key, [])
    if isinstance(value, dict):
        chk.issue((key,), f"[{key}] must be an array of tables", f"write [[{key}]]")
        return []
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        chk.issue((key,), f"{key} must be written as [[{key}]] tables, got "
                          f"{toml_type(value)}", f"write [[{key}]]")
        return []
    return value


def _pipeline_name(chk: Checker, doc: Mapping[str, Any], path: Path) -> str:
    name = chk.string(doc, "name", AT_PIPELINE, "")
    if name is not None:
        try:
            return check_name(name, "pipeline name")
        except TopicError as exc:
            chk.issue((*AT_PIPELINE, "name"), str(exc))
    stem = re.sub(r"[^A-Za-z0-9_-]", "-", path.stem).lstrip("-_0123456789") or "pipeline"
    return stem[:63]


def _flag(chk: Checker, table: Mapping[str, Any], key: str) -> bool:
    value = table.get(key, False)
    if not isinstance(value, bool):
        chk.issue((*AT_PIPELINE, key), f"{key} must be true or false, got "
                                        f"{toml_type(value)} {short(value)}")
        return False
    return value


def _shown_url(raw: str) -> str:
    """``raw`` with any password masked (a config error must not print it)."""
    return re.sub(r"(://[^:/@]*):[^@]*@", r"\1:***@", raw)


def _pipeline_path(chk: Checker, doc: Mapping[str, Any], key: str, base: Path) -> str | None:
    """``run_dir`` / ``state``: a path, ``~`` and ``$VARS`` expanded, relative to ``base``;
    ``state`` may also be a ``postgresql://`` URL."""
    raw = chk.string(doc, key, AT_PIPELINE, "")
    if raw is None:
        return None
    if not raw.strip():
        chk.issue((*AT_PIPELINE, key), f"{key} is empty", "remove it to use the default")
        return None
    if "://" in raw:
        problem = check_url(raw) if key == "state" else "it must be a directory path"
        if problem is None:
            return raw  # a server: taken as written (libpq reads the password from the env)
        chk.issue((*AT_PIPELINE, key), f"{key} = {_shown_url(raw)!r}: {problem}",
                  'a file path, or "postgresql://user@host/db" with PGPASSWORD set')
        return None
    expanded = Path(os.path.expandvars(os.path.expanduser(raw)))
    return str(expanded if expanded.is_absolute() else (base / expanded).resolve())


def _finish_actor(draft: Draft, node_outputs: Mapping[str, set[str]]) -> ActorConfig:
    assert draft.name and draft.plugin and draft.category
    assert draft.plugin_class is not None or draft.environment is not None
    streams = published_streams(draft)
    if streams is None:  # a node that does not say: what others read from it
        streams = node_outputs.get(draft.name, set()) | {"events"}
    return ActorConfig(
        name=draft.name, plugin=draft.plugin, plugin_class=draft.plugin_class,
        category=draft.category, inputs=tuple(f"{a}.{s}" for a, s, _ in draft.inputs),
        params=draft.params, env=draft.env, replicas=draft.replicas,
        max_inflight=draft.max_inflight, input_options=dict(draft.input_options),
        supervisor=draft.supervisor, environment=draft.environment,
        outputs=tuple(sorted(streams)), line=draft.line, placement=draft.placement,
    )


def check_document(chk: Checker, doc: Mapping[str, Any], path: Path) -> PipelineConfig:
    """Check the parsed ``doc`` read from ``path`` (absolute).

    Raises:
        ConfigError: with every problem found, in line order.
    """
    chk.unknown_keys(doc, TOP_LEVEL_KEYS, (), "the pipeline file")
    pipe = chk.table(doc, "pipeline", (), "") or {}
    chk.unknown_keys(pipe, PIPELINE_KEYS, AT_PIPELINE, "[pipeline]")
    name = _pipeline_name(chk, pipe, path)
    on_give_up = chk.choice(pipe, "on_give_up", AT_PIPELINE, "", GIVE_UP_CHOICES) or "stop"
    # The file's directory is the pipeline's working directory (PipelineConfig.path).
    run_dir = _pipeline_path(chk, pipe, "run_dir", path.parent)
    keep_state = pipe.get("state") is not False
    state = _pipeline_path(chk, pipe, "state", path.parent) if keep_state else None
    stop_when_done = _flag(chk, pipe, "stop_when_sources_finish")
    sup_table = chk.table(doc, "supervisor", (), "")
    if sup_table is not None:
        chk.unknown_keys(sup_table, SUPERVISOR_KEYS, ("supervisor",), "[supervisor]")
    defaults = supervision(chk, sup_table or {}, ("supervisor",), "[supervisor] ",
                            SupervisorDefaults())
    drafts = [actor_draft(chk, table, i, defaults, path.parent)
              for i, table in enumerate(_array_of_tables(chk, doc, "actor"))]
    if not drafts and not chk.issues:
        chk.issue(("actor",), "the pipeline defines no actors",
                  'add an [[actor]] table with name = "..." and plugin = "..."')
    check_graph(chk, drafts)
    services = [_service(chk, table, i)
                for i, table in enumerate(_array_of_tables(chk, doc, "service"))]
    _check_unique_services(chk, services)
    reach = transport_table(chk, doc, path.parent)
    workers = [w for i, table in enumerate(_array_of_tables(chk, doc, "worker"))
               if (w := worker_table(chk, table, i, path.parent,
                                     reach is not None and reach.insecure)) is not None]
    check_remote(chk, [(d.name, d.placement, d.path) for d in drafts if d.name], reach, workers)
    if chk.issues:
        raise ConfigError(sorted(chk.issues, key=lambda issue: issue.line or 0))
    node_outputs: dict[str, set[str]] = {}
    for draft in drafts:
        for actor, stream, _ in draft.inputs:
            node_outputs.setdefault(actor, set()).add(stream)
    return PipelineConfig(
        name=name, path=path, on_give_up=GiveUpPolicy(on_give_up), run_dir=run_dir, state=state,
        keep_state=keep_state,
        stop_when_sources_finish=stop_when_done, supervisor=defaults,
        actors=tuple(_finish_actor(d, node_outputs) for d in drafts),
        services=tuple(s for s in services if s is not None),
        transport=reach, workers=tuple(workers),
    )


def _check_unique_services(chk: Checker, services: Sequence[ServiceConfig | None]) -> None:
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
