"""``va-launch status``: one row per actor instance of a running pipeline.

Reads the manifest (instances, pids, states, restarts) and listens briefly on
``sys.metrics`` for CPU, RSS, message counters, drops and loop lag. Without a
metrics message in time (a busy supervisor) the table still shows what the
manifest knows, with ``-`` for the rest.

The pipeline's ``[[service]]`` processes (from ``sys.metrics``) follow in a
second table: name, pid, state and health, which is checked here and now by
one GET of the service's ``health_url``.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import click
import zmq

from va_actors.core.latency import TurnLatencyEvent, format_latency
from va_actors.runtime import rundir
from va_actors.runtime.services import check_health
from va_actors.runtime.state.database import is_url
from va_actors.runtime.state.store import store_bytes
from va_actors.wire import Kind, WireError, decode
from va_actors.wire import topics as wire_topics

__all__ = ["collect", "format_table", "status"]

LISTEN_S = 2.5
"""How long to wait for a metrics message (they come once a second)."""
EXIT_NOT_FOUND = 2
_COLUMNS = ("INSTANCE", "PID", "STATE", "RESTARTS", "CPU%", "RSS", "IN", "OUT", "DROPS",
            "LAG ms")
_SERVICE_COLUMNS = ("SERVICE", "PID", "STATE", "HEALTH")
HEALTH_TIMEOUT_S = 1.0
"""How long one service's health_url may take to answer."""


def _subscribe(manifest: rundir.Manifest) -> zmq.Socket[bytes]:
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context.instance()
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.setsockopt(zmq.RCVHWM, 10)
    sub.setsockopt(zmq.SUBSCRIBE, wire_topics.METRICS.encode())
    sub.connect(manifest.sys_pub)
    return sub


def _next_metrics(sub: zmq.Socket[bytes], wait_s: float) -> dict[str, Any] | None:
    deadline = time.monotonic() + wait_s
    while (left := deadline - time.monotonic()) > 0:
        if not sub.poll(int(left * 1000) + 1):
            break
        try:
            message = decode(sub.recv_multipart())
        except WireError:
            continue
        if message.kind is Kind.CONTROL and message.topic == wire_topics.METRICS:
            return dict(message.control().args)
    return None


def _health(service: Mapping[str, Any], check: Callable[[str, float], bool]) -> str | None:
    """``ok`` / ``failing`` for a running service with a health_url, else None."""
    url = service.get("health_url")
    if service.get("state") != "running" or not isinstance(url, str) or not url:
        return None
    return "ok" if check(url, HEALTH_TIMEOUT_S) else "failing"


def collect_services(metrics: Mapping[str, Any] | None,
                     check: Callable[[str, float], bool] = check_health) -> list[dict[str, Any]]:
    """One row per ``[[service]]``: name, pid, state, health_url and health (checked now)."""
    services = metrics.get("services") if metrics else None
    if not isinstance(services, list):
        return []
    return [{"name": svc.get("name"), "pid": svc.get("pid"), "state": svc.get("state"),
             "health_url": svc.get("health_url"), "health": _health(svc, check)}
            for svc in services if isinstance(svc, Mapping)]


def collect(manifest: rundir.Manifest, metrics: Mapping[str, Any] | None,
            check: Callable[[str, float], bool] = check_health) -> dict[str, Any]:
    """The status as data: pipeline facts, one merged row per instance, one per service."""
    live = metrics.get("instances", {}) if metrics else {}
    rows = []
    for record in manifest.instances:
        row: dict[str, Any] = {"instance": record.instance, "actor": record.actor,
                               "replica": record.replica, "pid": record.pid,
                               "state": record.state, "restarts": record.restarts}
        sample = live.get(record.instance)
        if isinstance(sample, Mapping):
            row.update({k: sample.get(k) for k in (
                "pid", "state", "restarts", "cpu_percent", "rss_bytes", "msgs_in", "msgs_out",
                "drops", "drops_total", "loop_lag_ms", "queue", "heartbeat_age_s", "work",
                "refused", "worker", "replay")})
        rows.append(row)
    return {"pipeline": manifest.pipeline, "path": manifest.path,
            "supervisor_pid": manifest.supervisor_pid, "run_dir": manifest.run_dir,
            "epoch": metrics.get("epoch", manifest.epoch) if metrics else manifest.epoch,
            "metrics": metrics is not None,
            "supervisor": metrics.get("supervisor") if metrics else None,
            "instances": rows, "services": collect_services(metrics, check),
            "latency": metrics.get("latency") if metrics else None,
            "remote": metrics.get("remote") if metrics else None,
            "state_store": _store_facts(manifest.state_store)}


def _store_facts(path: str | None) -> dict[str, Any] | None:
    """The conversation store's file and size (None: the pipeline has none yet)."""
    if not path or not (is_url(path) or Path(path).exists()):
        return None  # no store, or nothing stored yet (no LLM / Realtime actor wrote)
    return {"path": path, "bytes": store_bytes(path)}


def _cell(value: Any, kind: str = "") -> str:
    if value is None:
        return "-"
    if kind == "rss":
        return f"{value / 2**20:.1f}M"
    if kind == "pct":
        return f"{value:.1f}"
    if kind == "ms":
        return f"{value:.1f}"
    return str(value)


def format_table(data: Mapping[str, Any]) -> str:
    """The status as a text table with a one-line header."""
    rows = data["instances"]
    up = sum(1 for r in rows if r.get("state") == "running")
    head = (f"pipeline {data['pipeline']} (supervisor pid {data['supervisor_pid']}, "
            f"epoch {data['epoch']}, {up}/{len(rows)} running)  {data['run_dir']}")
    if not data["metrics"]:
        head += "\n(no metrics received yet: showing the manifest only)"
    table = [list(_COLUMNS)]
    for r in rows:
        table.append([r["instance"], _cell(r.get("pid")), _cell(r.get("state")),
                      _cell(r.get("restarts")), _cell(r.get("cpu_percent"), "pct"),
                      _cell(r.get("rss_bytes"), "rss"), _cell(r.get("msgs_in")),
                      _cell(r.get("msgs_out")), _cell(r.get("drops_total")),
                      _cell(r.get("loop_lag_ms"), "ms")])
    text = head + "\n" + _layout(table, left=(0, 2))
    latency = data.get("latency")
    if isinstance(latency, Mapping) and isinstance(latency.get("last"), Mapping):
        text += "\n\n" + _latency_line(latency)
    replay = _replay_text(rows)
    if replay:
        text += "\n\n" + replay
    replicas = _replica_rows(rows)
    if len(replicas) > 1:
        text += "\n\n" + _layout(replicas, left=(0,))
    services = data.get("services") or []
    if services:
        rows_s = [list(_SERVICE_COLUMNS)] + [
            [str(svc.get("name")), _cell(svc.get("pid")), _cell(svc.get("state")),
             _cell(svc.get("health")) + (f" ({svc['health_url']})" if svc.get("health_url")
                                         else "")]
            for svc in services]
        text += "\n\n" + _layout(rows_s, left=(0, 2, 3))
    remote = data.get("remote")
    if isinstance(remote, Mapping):
        text += "\n\n" + _remote_text(remote, rows)
    store = data.get("state_store")
    if isinstance(store, Mapping):
        text += (f"\n\nconversation store {store['path']}: {store['bytes'] / 1024:.1f} KiB "
                 "(va-launch history prints it)")
    return text


_REPLAY_COLUMNS = ("REPLAY", "REPLAYED OUT", "TOO OLD OUT", "REPLAYED IN", "TOO OLD IN",
                   "DUPLICATES", "TIMEOUTS")
_REPLAY_KEYS = ("replayed_out", "too_old_out", "replayed_in", "too_old_in", "duplicates",
                "timeouts")


def _replay_text(rows: list[dict[str, Any]]) -> str:
    """Replay of missed input per instance that replayed or was replayed to (else nothing)."""
    table = [list(_REPLAY_COLUMNS)]
    for r in rows:
        replay = r.get("replay")
        if isinstance(replay, Mapping) and any(replay.get(k) for k in _REPLAY_KEYS):
            table.append([str(r["instance"]), *(str(replay.get(k) or 0) for k in _REPLAY_KEYS)])
    return _layout(table, left=(0,)) if len(table) > 1 else ""


_WORKER_COLUMNS = ("WORKER", "STATE", "ADDRESS", "LABELS", "SILENT s", "JOINS", "INSTANCES")


def _remote_text(remote: Mapping[str, Any], rows: list[dict[str, Any]]) -> str:
    """Workers, and every peer refused at the tcp handshake (by us or by an actor)."""
    table = [list(_WORKER_COLUMNS)]
    for w in remote.get("workers") or []:
        if isinstance(w, Mapping):
            labels = ",".join(f"{k}={v}" for k, v in sorted((w.get("labels") or {}).items()))
            table.append([str(w.get("name")), str(w.get("state")), _cell(w.get("address")),
                          labels or "-", _cell(w.get("silent_s")), _cell(w.get("joins")),
                          ",".join(w.get("instances") or []) or "-"])
    mode = "PLAINTEXT (insecure, loopback)" if remote.get("insecure") else "+ CurveZMQ"
    text = (f"transport: tcp {mode}, listening on {remote.get('listen')}, advertised as "
            f"{remote.get('advertise')}")
    if len(table) > 1:
        text += "\n" + _layout(table, left=(0, 1, 2, 3, 6))
    refusals = [("supervisor", remote.get("refused"))]
    refusals += [(str(r["instance"]), r.get("refused")) for r in rows if r.get("refused")]
    refusals += [(f"worker {w.get('name')}", w.get("refused"))
                 for w in remote.get("workers") or [] if isinstance(w, Mapping)]
    for who, refused in refusals:
        if isinstance(refused, Mapping) and refused.get("total"):
            text += "\n" + _refused_line(who, refused)
    if remote.get("refused_names"):
        text += (f"\nrefused {remote['refused_names']} worker hello(s) whose key did not match "
                 "their [[worker]] public_key")
    return text


def _refused_line(who: str, refused: Mapping[str, Any]) -> str:
    """``REFUSED supervisor: 3 handshakes (refused_auth 3); last key ... from 10.0.0.9``."""
    counts = ", ".join(f"{k} {v}" for k, v in sorted((refused.get("counts") or {}).items()))
    line = f"REFUSED {who}: {refused.get('total')} handshake(s) ({counts})"
    if refused.get("last_key"):
        line += f"; last unknown key {refused['last_key']}"
    if refused.get("last_address"):
        line += f" from {refused['last_address']}"
    if refused.get("last_endpoint"):
        line += f" on {refused['last_endpoint']}"
    return line


def _latency_line(latency: Mapping[str, Any]) -> str:
    """Voice-to-voice latency: median / p90 over the turns, and the last turn's breakdown."""
    last = latency["last"]
    event = TurnLatencyEvent(total_ms=float(last.get("total_ms") or 0.0),
                             segments_ms=dict(last.get("segments_ms") or {}))
    return (f"voice-to-voice median {latency.get('median_ms', 0):.0f} ms, p90 "
            f"{latency.get('p90_ms', 0):.0f} ms over {latency.get('turns')} turn(s); "
            f"last turn: {format_latency(event)}")


_REPLICA_COLUMNS = ("REPLICA", "IN FLIGHT", "MAX", "SENT", "DONE", "LOST")


def _replica_rows(rows: list[dict[str, Any]]) -> list[list[str]]:
    """Per-replica work figures, from each dispatcher's heartbeat."""
    where = {r["instance"]: r.get("worker") for r in rows}
    remote = any(where.values())
    table = [[*_REPLICA_COLUMNS, *(["WORKER"] if remote else [])]]
    for row in rows:
        work = row.get("work")
        replicas = work.get("replicas") if isinstance(work, Mapping) else None
        if not isinstance(replicas, Mapping):
            continue
        for name, fig in sorted(replicas.items()):
            if isinstance(fig, Mapping):
                worker = where.get(name) or "-"
                if fig.get("connected") == 0:
                    worker += " (silent)"
                table.append([str(name), *(_cell(fig.get(k)) for k in (
                    "inflight", "capacity", "sent", "done", "lost")), *([worker] if remote
                                                                      else [])])
    return table


def _layout(table: list[list[str]], left: tuple[int, ...]) -> str:
    """Columns padded to their widest cell; ``left`` columns left-aligned."""
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    return "\n".join("  ".join(cell.ljust(widths[i]) if i in left else cell.rjust(widths[i])
                               for i, cell in enumerate(row)).rstrip() for row in table)


def _show(data: Mapping[str, Any], as_json: bool) -> None:
    click.echo(json.dumps(data, default=str) if as_json else format_table(data))


@click.command("status")
@click.option("--run-dir", type=click.Path(file_okay=False, exists=True), default=None,
              help="Run directory of the pipeline (default: the newest running one).")
@click.option("--session", default=None,
              help="A session of `va-launch serve` (its id, as POST /sessions returned it).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.option("--watch", is_flag=True, help="Refresh every second until Ctrl-C.")
def status(run_dir: str | None, session: str | None, as_json: bool, watch: bool) -> None:
    """Show every instance of a running pipeline: pid, state, restarts, CPU, memory, drops."""
    where = Path(run_dir) if run_dir else None
    try:
        manifest = rundir.find_manifest(where, session=session)
    except rundir.RunDirError as exc:
        click.echo(f"va-launch status: {exc}", err=True)
        sys.exit(EXIT_NOT_FOUND)
    sub = _subscribe(manifest)
    try:
        metrics = _next_metrics(sub, LISTEN_S)
        _show(collect(manifest, metrics), as_json)
        while watch:
            metrics = _next_metrics(sub, LISTEN_S)
            try:
                manifest = rundir.read_manifest(Path(manifest.run_dir))
            except rundir.RunDirError:
                click.echo("va-launch status: the pipeline stopped", err=True)
                return
            if not as_json and sys.stdout.isatty():
                click.echo("\x1b[H\x1b[2J", nl=False)
            _show(collect(manifest, metrics), as_json)
    except KeyboardInterrupt:
        pass
    finally:
        sub.close(0)
