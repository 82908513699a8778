"""Checks shared by the tables of a pipeline file: supervision settings, env, params.

Also the schema: which keys each table takes.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import inspect
import os
import re
from collections.abc import Mapping
from typing import Any

from va_actors.runtime import env_refs
from va_actors.runtime.config.checker import Checker, Number, did_you_mean, short, toml_type
from va_actors.runtime.config.lines import PathKey
from va_actors.runtime.config.settings import GiveUpPolicy, RestartMode, SupervisorDefaults
from va_actors.runtime.session_vars import RUN_SESSION, SESSION_ID

__all__ = [
    "ACTOR_KEYS",
    "GIVE_UP_CHOICES",
    "PIPELINE_KEYS",
    "RESTART_CHOICES",
    "SERVICE_KEYS",
    "SUPERVISOR_KEYS",
    "TOP_LEVEL_KEYS",
    "check_params_fit",
    "env_table",
    "params_table",
    "supervision",
]

RESTART_CHOICES: tuple[str, ...] = tuple(mode.value for mode in RestartMode)
GIVE_UP_CHOICES: tuple[str, ...] = tuple(policy.value for policy in GiveUpPolicy)

_SUPERVISOR_NUMBERS: dict[str, Number] = {
    "backoff_initial_s": Number(float, 0),
    "backoff_factor": Number(float, 1),
    "backoff_cap_s": Number(float, 0),
    "max_restarts": Number(int, 0),
    "restart_window_s": Number(float, 0, inclusive=False),
    "hang_timeout_s": Number(float, 0, inclusive=False),
    "heartbeat_interval_s": Number(float, 0, inclusive=False),
    "memory_limit_mb": Number(int, 0),
    "shutdown_deadline_s": Number(float, 0),
    "start_timeout_s": Number(float, 0, inclusive=False),
    "warm_spares": Number(int, 0),
    "replay_s": Number(float, 0),
    "replay_bytes": Number(int, 0),
}

SUPERVISOR_KEYS: tuple[str, ...] = ("restart", *_SUPERVISOR_NUMBERS)
ACTOR_KEYS: tuple[str, ...] = ("name", "plugin", "inputs", "params", "env", "replicas",
                               "max_inflight", "environment", "python", "placement", "worker")
SERVICE_KEYS: tuple[str, ...] = ("name", "command", "health_url", "startup_timeout_s", "env")
TOP_LEVEL_KEYS: tuple[str, ...] = ("pipeline", "supervisor", "actor", "service", "transport",
                                   "worker")
PIPELINE_KEYS: tuple[str, ...] = ("name", "on_give_up", "run_dir", "state",
                                  "stop_when_sources_finish")
AT_PIPELINE: PathKey = ("pipeline",)
COUNT = Number(int, 1)
"""replicas, max_inflight: whole numbers from 1."""
POSITIVE = Number(float, 0, inclusive=False)

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

# -- supervisor settings ------------------------------------------------------


def supervision(chk: Checker, table: Mapping[str, Any], path: PathKey, what: str,
                 base: SupervisorDefaults) -> SupervisorDefaults:
    """``base`` with the supervisor keys found in ``table`` applied (bad ones skipped)."""
    changes: dict[str, Any] = {}
    restart = chk.choice(table, "restart", path, what, RESTART_CHOICES)
    if restart is not None:
        changes["restart"] = RestartMode(restart)
    for key, spec in _SUPERVISOR_NUMBERS.items():
        value = chk.number(table, key, path, what, spec)
        if value is not None:
            changes[key] = spec.kind(value)
    result = dataclasses.replace(base, **changes)
    _cross_check(chk, result, changes, path, what)
    return result


def _cross_check(chk: Checker, sup: SupervisorDefaults, changed: Mapping[str, Any],
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


def env_table(chk: Checker, parent: Mapping[str, Any], path: PathKey,
              what: str) -> dict[str, str]:
    table = chk.table(parent, "env", path, what)
    env: dict[str, str] = {}
    for key, value in (table or {}).items():
        where = (*path, "env", key)
        if not _ENV_NAME.match(key):
            chk.issue(where, f"{what}env: {key!r} is not a valid environment variable name",
                      "use letters, digits and '_', not starting with a digit")
        elif not isinstance(value, str):
            chk.issue(where, f"{what}env.{key} must be a string, got {toml_type(value)} "
                             f"{short(value)}", f'quote it: {key} = "{value}"')
        elif _refs_resolve(chk, where, f"{what}env.{key}", value, os.environ):
            env[key] = value
    return env


def _refs_resolve(chk: Checker, where: PathKey, label: str, value: object,
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
        return toml_type(value)
    if isinstance(value, list):
        return next((k for v in value if (k := _plain_data(v))), None)
    if isinstance(value, dict):
        return next((k for v in value.values() if (k := _plain_data(v))), None)
    return None


def params_table(chk: Checker, parent: Mapping[str, Any], path: PathKey,
            what: str, env: Mapping[str, str]) -> dict[str, Any]:
    """The actor's params; references may name its ``env`` table's variables too."""
    table = chk.table(parent, "params", path, what)
    params = dict(table or {})
    # VA_SESSION_ID is always given to actors (va_actors.runtime.session_vars).
    environ = {**os.environ, SESSION_ID: RUN_SESSION, **env}
    for key, value in params.items():
        kind = _plain_data(value)
        if kind is not None:
            chk.issue((*path, "params", key), f"{what}params.{key} holds a TOML {kind}, which "
                                              "cannot be passed to an actor process",
                      "write it as a string")
        _refs_resolve(chk, (*path, "params", key), f"{what}params.{key}", value, environ)
    return params


def check_params_fit(chk: Checker, cls: type, params: Mapping[str, Any], path: PathKey,
                     what: str) -> bool:
    """Report params the plugin class does not take and required ones that are missing.

    Returns True when the params fit the class's signature.
    """
    before = len(chk.issues)
    try:
        signature = inspect.signature(cls)
    except (TypeError, ValueError):
        return True
    accepted = {name: p for name, p in signature.parameters.items()
                if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    open_ended = any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values())
    if not open_ended:
        for key in params:
            if key not in accepted:
                hint = did_you_mean(key, accepted) if accepted else \
                    f"{cls.__qualname__} takes no parameters"
                chk.issue((*path, "params", key),
                          f"{what}{cls.__qualname__} has no parameter {key!r}", hint)
    missing = [name for name, p in accepted.items()
               if p.default is p.empty and name not in params]
    if missing:
        chk.issue((*path, "params"), f"{what}{cls.__qualname__} needs parameter(s) "
                                     f"{', '.join(missing)}",
                  f"add them under [actor.params], e.g. {missing[0]} = ...")
    return len(chk.issues) == before

