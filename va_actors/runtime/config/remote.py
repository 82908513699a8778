"""Checking what reaches past this machine: ``[transport]``, ``[[worker]]``, placement.

::

    [transport]
    listen = "tcp://0.0.0.0:7070"     # workers register here; ports 7071.. follow
    advertise = "10.0.0.1"            # how other machines reach this one
    keys = "keys/supervisor.key_secret"   # else $VA_CURVE_SECRET_KEY / $VA_CURVE_KEY_FILE
    trust = ["keys/workers"]          # more workers allowed to register

    [[worker]]
    name = "gpu-0"
    address = "tcp://10.0.0.2:7000"   # omit when the worker registers itself
    public_key = "keys/gpu-0.key"     # or its z85 text

    [[actor]]
    name = "ocr"
    placement = { labels = { gpu = "1" } }   # or: worker = "gpu-0"

String values of ``[transport]`` and ``[[worker]]`` may name environment
variables (``advertise = "${POD_IP}"``); they are public settings, resolved
when the file is loaded.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from va_actors.runtime import env_refs, transport
from va_actors.runtime.config.checker import Checker, Number, did_you_mean, short, toml_type
from va_actors.runtime.config.lines import PathKey
from va_actors.runtime.config.settings import Placement, TransportConfig, WorkerConfig
from va_actors.wire.topics import TopicError, check_name

__all__ = ["PLACEMENT_KEYS", "TRANSPORT_KEYS", "WORKER_KEYS", "check_remote", "placement",
           "transport_table", "worker_table"]

TRANSPORT_KEYS: tuple[str, ...] = ("listen", "advertise", "keys", "trust", "insecure",
                                   "worker_grace_s", "max_age_ms", "wait_workers_s")
WORKER_KEYS: tuple[str, ...] = ("name", "address", "public_key")
PLACEMENT_KEYS: tuple[str, ...] = ("labels",)
_AT: PathKey = ("transport",)
_SECONDS = Number(float, 0, inclusive=False)
_WILDCARD = ("0.0.0.0", "*", "::", "")


def _text(chk: Checker, table: Mapping[str, Any], key: str, path: PathKey,
          what: str) -> str | None:
    """A string setting with ``$VARS`` resolved now (public values only)."""
    raw = chk.string(table, key, path, what)
    if raw is None:
        return None
    try:
        return env_refs.expand(raw, os.environ)
    except ValueError as exc:
        chk.issue((*path, key), f"{what}{key}: {exc}",
                  "export the variable before va-launch, or give a default: ${NAME:-value}")
        return None


def _tcp(chk: Checker, value: str | None, where: PathKey, what: str) -> str | None:
    if value is None:
        return None
    try:
        transport.endpoint_port(value)
    except transport.TransportError as exc:
        chk.issue(where, f"{what}{exc}", 'write "tcp://HOST:PORT", e.g. "tcp://0.0.0.0:7070"')
        return None
    return value


def _path(value: str, base: Path) -> Path:
    path = Path(os.path.expanduser(value))
    return path if path.is_absolute() else base / path


def _keys_of(chk: Checker, value: str, where: PathKey, what: str, base: Path) -> list[str]:
    source = value if len(value.strip()) == 40 else str(_path(value, base))
    try:
        return transport.public_keys(source)
    except transport.TransportError as exc:
        chk.issue(where, f"{what}{exc}", "make a key pair with `va-launch keys DIR`")
        return []


# -- [transport] ------------------------------------------------------------------------
def transport_table(chk: Checker, doc: Mapping[str, Any], base: Path) -> TransportConfig | None:
    """The checked ``[transport]`` table, or None when the file has none."""
    table = chk.table(doc, "transport", (), "")
    if table is None:
        return None
    chk.unknown_keys(table, TRANSPORT_KEYS, _AT, "[transport]")
    what = "[transport] "
    listen = _tcp(chk, _text(chk, table, "listen", _AT, what), (*_AT, "listen"), what)
    advertise = _text(chk, table, "advertise", _AT, what)
    keys = _text(chk, table, "keys", _AT, what)
    insecure = table.get("insecure", False)
    if not isinstance(insecure, bool):
        chk.issue((*_AT, "insecure"), f"{what}insecure must be true or false, got "
                                      f"{toml_type(insecure)} {short(insecure)}")
        insecure = False
    numbers: dict[str, float] = {}
    for key in ("worker_grace_s", "max_age_ms", "wait_workers_s"):
        value = chk.number(table, key, _AT, what, _SECONDS)
        if value is not None:
            numbers[key] = value
    trust = _trust(chk, table, base)
    if keys is not None:
        keys = str(_path(keys, base))
        try:
            transport.load_keypair(keys)
        except transport.TransportError as exc:
            chk.issue((*_AT, "keys"), f"{what}{exc}",
                      "make a key pair with `va-launch keys DIR` and point keys at "
                      "DIR/NAME.key_secret")
    result = TransportConfig(listen=listen, advertise=advertise, keys=keys, trust=tuple(trust),
                             insecure=insecure, **numbers)
    _check_addresses(chk, result)
    return result


def _trust(chk: Checker, table: Mapping[str, Any], base: Path) -> list[str]:
    raw = table.get("trust", [])
    items = [raw] if isinstance(raw, str) else raw
    if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
        chk.issue((*_AT, "trust"), "[transport] trust must be a string or an array of strings "
                                   "(z85 keys, .key files or directories)")
        return []
    found: list[str] = []
    for item in items:
        found += _keys_of(chk, env_refs.expand(item, os.environ), (*_AT, "trust"),
                          "[transport] trust: ", base)
    return found


def _check_addresses(chk: Checker, config: TransportConfig) -> None:
    host = transport.endpoint_host(config.listen) if config.listen else None
    if host in _WILDCARD and not config.advertise:
        chk.issue((*_AT, "advertise"), "[transport] listen binds every address, so other "
                                       "machines need advertise = the host they reach this "
                                       "one at", 'e.g. advertise = "10.0.0.1" or "${POD_IP}"')
    if not config.insecure:
        return
    for label, value in (("listen", host), ("advertise", config.advertise)):
        if value is not None and not transport.is_loopback(value):
            chk.issue((*_AT, "insecure"), f"[transport] insecure = true allows plaintext tcp "
                                          f"on loopback only, but {label} is {value!r}",
                      "remove insecure and give Curve keys (`va-launch keys DIR`)")


# -- [[worker]] -------------------------------------------------------------------------
def worker_table(chk: Checker, table: Mapping[str, Any], index: int, base: Path,
                 insecure: bool) -> WorkerConfig | None:
    """One checked ``[[worker]]`` table."""
    path: PathKey = ("worker", index)
    label = f"[[worker]] #{index + 1}: "
    chk.unknown_keys(table, WORKER_KEYS, path, label.rstrip(": "))
    name = chk.string(table, "name", path, label)
    if name is None:
        if "name" not in table:
            chk.issue(path, f"{label}missing name", 'add name = "..." (the worker\'s --name)')
        return None
    try:
        check_name(name, "worker name")
    except TopicError as exc:
        chk.issue((*path, "name"), f"{label}{exc}")
        return None
    what = f"worker {name!r}: "
    address = _tcp(chk, _text(chk, table, "address", path, what), (*path, "address"), what)
    if address is not None:
        host = transport.endpoint_host(address)
        if host in _WILDCARD:
            chk.issue((*path, "address"), f"{what}address {address!r} names no host",
                      'write the worker\'s host, e.g. "tcp://10.0.0.2:7000"')
        elif insecure and not transport.is_loopback(host):
            chk.issue((*path, "address"), f"{what}insecure = true allows plaintext tcp on "
                                          f"loopback only, but the worker is at {host}")
    key_text = _text(chk, table, "public_key", path, what)
    key = None
    if key_text is not None:
        keys = _keys_of(chk, key_text, (*path, "public_key"), what, base)
        key = keys[0] if keys else None
    elif not insecure:
        chk.issue(path, f"{what}missing public_key (tcp between machines is CurveZMQ)",
                  "the worker prints it at start; `va-launch keys DIR` makes one")
    return WorkerConfig(name=name, address=address, public_key=key, line=chk.line(path))


# -- placement ------------------------------------------------------------------------------
def placement(chk: Checker, table: Mapping[str, Any], path: PathKey, what: str) -> Placement:
    """``placement = { labels = {...} }`` and ``worker = "..."`` of one ``[[actor]]``."""
    worker = chk.string(table, "worker", path, what)
    spec = chk.table(table, "placement", path, what) or {}
    chk.unknown_keys(spec, PLACEMENT_KEYS, (*path, "placement"), f"{what}placement")
    raw = chk.table(spec, "labels", (*path, "placement"), f"{what}placement.")
    labels: dict[str, str] = {}
    for key, value in (raw or {}).items():
        if isinstance(value, str):
            labels[key] = value
        else:
            chk.issue((*path, "placement", "labels", key),
                      f"{what}placement label {key} must be a string, got {toml_type(value)} "
                      f"{short(value)}", f'quote it: {key} = "{value}"')
    return Placement(labels=labels, worker=worker)


def _env_keys(chk: Checker) -> bool:
    try:
        return transport.keypair_from_env() is not None
    except transport.TransportError as exc:
        chk.issue(_AT, f"[transport]: {exc}")
        return True


def check_remote(chk: Checker, actors: Sequence[tuple[str, Placement, PathKey]],
                 config: TransportConfig | None, workers: Sequence[WorkerConfig]) -> None:
    """Cross checks: remote actors need ``[transport] listen``; pinned workers exist."""
    names = {w.name for w in workers}
    seen: dict[str, int] = {}
    for index, worker in enumerate(workers):
        if worker.name in seen:
            chk.issue(("worker", index, "name"), f"duplicate worker name {worker.name!r} "
                                                 f"(first defined on line {seen[worker.name]})")
        seen.setdefault(worker.name, worker.line)
    if any(where.remote for _, where, _ in actors) and config is not None and \
            not config.insecure and config.keys is None and not _env_keys(chk):
        chk.issue(_AT, "[transport]: this machine has no Curve key pair for tcp: set keys = "
                       f"\"DIR/NAME.key_secret\", or ${transport.ENV_SECRET_KEY} / "
                       f"${transport.ENV_KEY_FILE} in the environment",
                  "make one with `va-launch keys DIR`")
    for name, where, path in actors:
        if not where.remote:
            continue
        if config is None or config.listen is None:
            chk.issue((*path, "worker" if where.worker else "placement"),
                      f"actor {name!r} runs on workers, but the pipeline has no [transport] "
                      "listen: the workers' actors could not reach this machine",
                      'add [transport] listen = "tcp://0.0.0.0:7070" and advertise = "HOST"')
        if where.worker is not None and where.worker not in names and \
                (config is None or not config.trust):
            chk.issue((*path, "worker"), f"actor {name!r}: no [[worker]] is named "
                                         f"{where.worker!r}",
                      did_you_mean(where.worker, names) if names else
                      f'add [[worker]] name = "{where.worker}" with its public_key')
