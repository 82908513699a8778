"""Section 4: start-up time and idle memory of a 6-actor pipeline.

The pipeline is the barge-in one plus an STT (user, turn, stt, agent, tts,
speaker), started with the real command, ``va-launch run FILE --run-dir DIR
--quiet``. Start-up = the command started -> every instance ``running`` in the
run directory's manifest. After 2 s of idle, RSS (and USS, the pages only that
process holds) of every actor host and of the supervisor, by psutil. The
in-process baseline runs the same six stages in one process
(``python -m bench.inprocess``): start-up = process started -> every stage
started.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil

from bench import bargein
from bench.pipeline import ROOT, Stage, inprocess_command, parse_inprocess, write_pipeline
from bench.report import Row, fmt
from bench.stats import median
from va_actors.runtime import rundir

TARGET_RSS_MB = 60.0
IDLE_S = 2.0
MB = 1024 * 1024


def stages(work: Path) -> list[Stage]:
    """Six actors: user, turn, stt, agent, tts, speaker."""
    out = bargein.stages(1, "sleep", work / "startup-user.jsonl", work / "startup-speaker.jsonl")
    for stage in out:
        if stage.name == "user":
            stage.params["duration_s"] = 600
        if stage.name == "stt":
            stage.params["mode"] = "none"
    return out


def _memory(pid: int) -> tuple[float, float]:
    proc = psutil.Process(pid)
    full = proc.memory_full_info()
    return full.rss / MB, full.uss / MB


def _wait_running(run_dir: Path, proc: subprocess.Popen[bytes], timeout: float) -> rundir.Manifest:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"va-launch exited with {proc.returncode} before running")
        with contextlib.suppress(rundir.RunDirError, FileNotFoundError):
            manifest = rundir.read_manifest(run_dir)
            if manifest.instances and all(i.state == "running" for i in manifest.instances):
                return manifest
        time.sleep(0.005)
    raise TimeoutError("pipeline not running in time")


def _ours(work: Path) -> dict[str, Any]:
    config = write_pipeline(work, "startup", stages(work))
    run_dir = work / "run-startup"
    cmd = [sys.executable, "-m", "va_actors.cli.main", "run", str(config), "--run-dir",
           str(run_dir), "--quiet"]
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=ROOT, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        manifest = _wait_running(run_dir, proc, 60)
        startup_s = time.monotonic() - t0
        time.sleep(IDLE_S)
        actors = {i.instance: _memory(i.pid) for i in manifest.instances if i.pid}
        supervisor = _memory(proc.pid)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return {"startup_s": startup_s, "actors": actors, "supervisor": supervisor}


def _inprocess(work: Path) -> dict[str, Any]:
    cmd = inprocess_command(stages(work), 600, work, "startup")
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        startup_s = time.monotonic() - t0
        if not parse_inprocess(line, 0).started_ns:
            raise RuntimeError(f"in-process runner did not start: {line!r}")
        time.sleep(IDLE_S)
        rss, uss = _memory(proc.pid)
    finally:
        proc.kill()
        proc.wait()
    return {"startup_s": startup_s, "rss_mb": rss, "uss_mb": uss}


def run(quick: bool, work: Path, say: Any = print) -> list[Row]:
    """Start-up and RSS, actors next to in-process."""
    say("start-up and RSS: va-launch run, 6 actors")
    ours = _ours(work)
    say("start-up and RSS: in-process")
    base = _inprocess(work)
    rss = [m[0] for m in ours["actors"].values()]
    uss = [m[1] for m in ours["actors"].values()]
    total = sum(rss) + ours["supervisor"][0]
    total_uss = sum(uss) + ours["supervisor"][1]
    per_actor = ", ".join(f"{name} {fmt(m[0], 0)}" for name, m in sorted(ours["actors"].items()))
    rows = [
        Row("4 start-up", "6-actor pipeline", "actors",
            f"start-up {fmt(ours['startup_s'], 2)} s (va-launch run -> all running); idle RSS "
            f"per actor median {fmt(median(rss), 0)} / max {fmt(max(rss), 0)} MB "
            f"({per_actor}; USS median {fmt(median(uss), 0)} MB); supervisor "
            f"{fmt(ours['supervisor'][0], 0)} MB; total RSS {fmt(total, 0)} MB "
            f"(USS {fmt(total_uss, 0)} MB)",
            f"RSS per actor < {TARGET_RSS_MB:.0f} MB", max(rss) < TARGET_RSS_MB,
            {**ours, "total_rss_mb": total, "total_uss_mb": total_uss}),
        Row("4 start-up", "6-actor pipeline", "in-process",
            f"start-up {fmt(base['startup_s'], 2)} s (process -> all stages started); "
            f"idle RSS {fmt(base['rss_mb'], 0)} MB (USS {fmt(base['uss_mb'], 0)} MB)",
            data=base),
    ]
    return rows
