"""``va-launch status``: one row per actor instance of a running pipeline.

Reads the manifest (instances, pids, states, restarts) and listens briefly on
``sys.metrics`` for CPU, RSS, message counters, drops and loop lag. Without a
metrics message in time (a busy supervisor) the table still shows what the
manifest knows, with ``-`` for the rest.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click
import zmq

from va_actors.runtime import rundir
from va_actors.wire import Kind, WireError, decode
from va_actors.wire import topics as wire_topics

__all__ = ["collect", "format_table", "status"]

LISTEN_S = 2.5
"""How long to wait for a metrics message (they come once a second)."""
EXIT_NOT_FOUND = 2
_COLUMNS = ("INSTANCE", "PID", "STATE", "RESTARTS", "CPU%", "RSS", "IN", "OUT", "DROPS",
            "LAG ms")


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


def collect(manifest: rundir.Manifest, metrics: Mapping[str, Any] | None) -> dict[str, Any]:
    """The status as data: pipeline facts plus one merged row per instance."""
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
                "drops", "drops_total", "loop_lag_ms", "queue", "heartbeat_age_s")})
        rows.append(row)
    return {"pipeline": manifest.pipeline, "path": manifest.path,
            "supervisor_pid": manifest.supervisor_pid, "run_dir": manifest.run_dir,
            "epoch": metrics.get("epoch", manifest.epoch) if metrics else manifest.epoch,
            "metrics": metrics is not None,
            "supervisor": metrics.get("supervisor") if metrics else None,
            "instances": rows}


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
    widths = [max(len(row[i]) for row in table) for i in range(len(_COLUMNS))]
    lines = ["  ".join(cell.ljust(widths[i]) if i == 0 or i == 2 else cell.rjust(widths[i])
                       for i, cell in enumerate(row)).rstrip() for row in table]
    return head + "\n" + "\n".join(lines)


def _show(data: Mapping[str, Any], as_json: bool) -> None:
    click.echo(json.dumps(data, default=str) if as_json else format_table(data))


@click.command("status")
@click.option("--run-dir", type=click.Path(file_okay=False, exists=True), default=None,
              help="Run directory of the pipeline (default: the newest running one).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.option("--watch", is_flag=True, help="Refresh every second until Ctrl-C.")
def status(run_dir: str | None, as_json: bool, watch: bool) -> None:
    """Show every instance of a running pipeline: pid, state, restarts, CPU, memory, drops."""
    where = Path(run_dir) if run_dir else None
    try:
        manifest = rundir.find_manifest(where)
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
