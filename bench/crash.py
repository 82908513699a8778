"""Section 3: crash recovery, from ``kill -9`` of a stage to its first output after restart.

Pipeline: ``mic`` (20 ms chunks in real time) -> ``echo`` -> ``sink`` (logs
arrivals with the echo's sequence numbers). The bench SIGKILLs ``echo``
mid-stream; the supervisor restarts it under its default policy (the first
failure after a stable run restarts at once; backoff only for a failure in a
row). ``restart_window_s = 2.5`` here so that a 3 s run counts as stable and
every kill is such a one-off crash (the default window, 60 s, caps the
stable run at 10 s and would make the section 10 s per kill). Recovery ends
at the first echo output the sink receives from the new process (its
sequence numbers restart).

Warm spare: the same, with ``warm_spares = 1`` on echo: a process that has
already imported, built and started the plugin waits in the supervisor's
pool, and the restart takes it instead of starting Python cold (the bench
waits for the pool to refill before each kill).

In-process counterpart: the same three stages in one process. A kill -9 of
any stage is a kill of the whole agent; the bench starts a new process at once
(what a service manager with no restart delay does) and times the first
output of the new process. Everything in the session starts over.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from bench.pipeline import (
    ROOT,
    Stage,
    inprocess_command,
    read_jsonl,
    supervised,
    until,
    write_pipeline,
)
from bench.report import Row, fmt
from bench.stats import median

TARGET_S = 2.0
WARM_TARGET_MS = 200.0
SPACING_S = 3.0


def stages(sink_log: Path) -> list[Stage]:
    """mic -> echo -> sink."""
    return [
        Stage("mic", "tests.actors.tone:ToneSource"),
        Stage("echo", "tests.actors.echo:Echo", ["mic.audio"]),
        Stage("sink", "tests.actors.record:RecordingSink", ["echo.out"], {"path": str(sink_log)}),
    ]


def _first_new_output(sink_log: Path, kill_ns: int, last_seq: int) -> int | None:
    for r in read_jsonl(sink_log):
        if "topic" in r and r["recv_ns"] > kill_ns and r["seq"] <= last_seq:
            return int(r["recv_ns"])
    return None


def _state_at(states: list[dict[str, Any]], state: str, after_ns: int) -> int | None:
    for s in states:
        if s["instance"] == "echo" and s["state"] == state and s["ts_ns"] > after_ns:
            return int(s["ts_ns"])
    return None


async def _ours(kills: int, work: Path, warm: bool = False) -> list[dict[str, float]]:
    name = "crash-warm" if warm else "crash"
    sink_log = work / f"{name}-actors.jsonl"
    settings: dict[str, Any] = {"restart_window_s": 2.5}
    if warm:
        settings["warm_spares"] = 1
    config = write_pipeline(work, name, stages(sink_log), settings)
    out = []
    async with supervised(config, work / f"run-{name}") as (sup, listener):
        await until(lambda: len(read_jsonl(sink_log)) >= 10, 10, "audio at the sink")
        for _ in range(kills):
            await asyncio.sleep(SPACING_S)
            pool = sup._launch.pool
            if pool is not None:
                echo = sup.config.actor("echo")
                await until(lambda p=pool, a=echo: p.ready(a) >= 1, 60,  # type: ignore[misc]
                            "a warm spare of echo")
            pid = sup.pid_of("echo")
            assert pid is not None
            last_seq = max(r["seq"] for r in read_jsonl(sink_log) if "topic" in r)
            kill_ns = time.time_ns()
            os.kill(pid, signal.SIGKILL)
            first = await until(functools.partial(_first_new_output, sink_log, kill_ns, last_seq),
                                15, "echo output after the restart")
            await asyncio.sleep(0.2)  # let the state messages arrive
            exited = _state_at(listener.states, "exited", kill_ns)
            running = _state_at(listener.states, "running", kill_ns)
            out.append({"recovery_ms": (first - kill_ns) / 1e6,
                        "exit_seen_ms": ((exited or kill_ns) - kill_ns) / 1e6,
                        "running_ms": ((running or kill_ns) - kill_ns) / 1e6})
    return out


def _wait_first_output(log: Path, after_ns: int, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        hits = [r["recv_ns"] for r in read_jsonl(log) if "topic" in r and r["recv_ns"] > after_ns]
        if hits:
            return int(hits[0])
        time.sleep(0.005)
    raise TimeoutError(f"no output in {log} within {timeout} s")


def _inprocess(kills: int, work: Path) -> list[dict[str, float]]:
    out = []
    procs: list[subprocess.Popen[bytes]] = []
    try:
        log = work / "crash-inprocess-0.jsonl"
        cmd = inprocess_command(stages(log), 600, work, "crash-0")
        procs.append(subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL))
        _wait_first_output(log, 0, 30)
        for k in range(1, kills + 1):
            time.sleep(SPACING_S)
            new_log = work / f"crash-inprocess-{k}.jsonl"
            new_cmd = inprocess_command(stages(new_log), 600, work, f"crash-{k}")
            kill_ns = time.time_ns()
            procs[-1].send_signal(signal.SIGKILL)
            procs.append(subprocess.Popen(new_cmd, cwd=ROOT, stdout=subprocess.DEVNULL))
            first = _wait_first_output(new_log, kill_ns, 30)
            out.append({"recovery_ms": (first - kill_ns) / 1e6})
    finally:
        for proc in procs:
            with contextlib.suppress(OSError):
                proc.kill()
            proc.wait()
    return out


def _row(design: str, trials: list[dict[str, float]]) -> Row:
    rec = [t["recovery_ms"] for t in trials]
    ours = design != "in-process"
    figures = (f"kill -9 -> first output p50 {fmt(median(rec), 0)} / max "
               f"{fmt(max(rec), 0)} ms over {len(rec)} kills")
    if ours:
        figures += (f" (exit seen p50 {fmt(median([t['exit_seen_ms'] for t in trials]), 0)} ms,"
                    f" running again p50 {fmt(median([t['running_ms'] for t in trials]), 0)}"
                    " ms); the other stages keep running")
    else:
        figures += " (the whole agent restarts; session state lost)"
    data = {"per_kill": trials, "p50_ms": median(rec), "max_ms": max(rec)}
    if design == "actors, warm spare":
        return Row("3 crash", "kill -9 of the echo stage", design, figures,
                   f"p50 < {WARM_TARGET_MS:.0f} ms", median(rec) < WARM_TARGET_MS, data)
    return Row("3 crash", "kill -9 of the echo stage", design, figures,
               f"< {TARGET_S:.0f} s" if ours else "",
               (max(rec) < TARGET_S * 1000) if ours else None, data)


def run(quick: bool, work: Path, say: Any = print) -> list[Row]:
    """Both designs."""
    kills = 2 if quick else 5
    say(f"crash: actors, {kills} kills")
    rows = [_row("actors", asyncio.run(_ours(kills, work)))]
    say(f"crash: actors with a warm spare, {kills} kills")
    rows.append(_row("actors, warm spare", asyncio.run(_ours(kills, work, warm=True))))
    say(f"crash: in-process, {kills} kills")
    rows.append(_row("in-process", _inprocess(kills, work)))
    return rows
