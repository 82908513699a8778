"""``va-launch tap`` and ``va-launch status`` against a real running pipeline.

Every pipeline runs as a ``va-launch run`` subprocess with its own
``XDG_RUNTIME_DIR``, so lookups without ``--run-dir`` only ever see this
test's pipeline. The fixture stops it and reaps every actor, even on failure.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pytest

from va_actors.runtime import rundir

ROOT = Path(__file__).resolve().parents[2]


def pipeline_toml(rec: Path, *, rate: int = 16000, channels: int = 1, replicas: int = 1) -> str:
    return f"""
[pipeline]
name = "taptest"
[[actor]]
name = "mic"
plugin = "tests.actors.tone:ToneSource"
params = {{ rate = {rate}, channels = {channels} }}
[[actor]]
name = "echo"
plugin = "tests.actors.echo:Echo"
inputs = ["mic.audio"]
replicas = {replicas}
[[actor]]
name = "sink"
plugin = "tests.actors.record:RecordingSink"
inputs = ["mic.audio"]
params = {{ path = "{rec}" }}
"""


@dataclass
class Running:
    proc: subprocess.Popen[bytes]
    manifest: rundir.Manifest
    run_dir: Path
    env: dict[str, str]
    rec: Path

    def cli(self, *args: str, timeout: float = 20) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "va_actors.cli.main", *args], cwd=ROOT,
                              env=self.env, capture_output=True, text=True, timeout=timeout,
                              check=False)

    def popen(self, *args: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen([sys.executable, "-m", "va_actors.cli.main", *args], cwd=ROOT,
                                env=self.env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)

    def processes(self) -> list[psutil.Process]:
        """The supervisor and its actors."""
        sup = psutil.Process(self.proc.pid)
        return [sup, *sup.children(recursive=True)]


def wait_running(run_dir: Path, timeout: float = 20.0) -> rundir.Manifest:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(rundir.RunDirError):
            manifest = rundir.read_manifest(run_dir)
            if manifest.instances and all(i.state == "running" for i in manifest.instances):
                return manifest
        time.sleep(0.05)
    raise AssertionError(f"pipeline in {run_dir} not running after {timeout} s")


def stop(proc: subprocess.Popen[bytes]) -> None:
    actors = []
    with contextlib.suppress(psutil.Error):
        actors = psutil.Process(proc.pid).children(recursive=True)
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    for actor in actors:
        with contextlib.suppress(psutil.Error):
            actor.kill()
    psutil.wait_procs(actors, timeout=5)


@pytest.fixture
def launch(tmp_path: Path) -> Iterator[Callable[..., Running]]:
    """Start a pipeline with ``va-launch run``; stop it and reap its actors afterwards."""
    started: list[subprocess.Popen[bytes]] = []
    helpers: list[subprocess.Popen[bytes]] = []
    xdg = tmp_path / "xdg"
    xdg.mkdir()
    env = {**os.environ, "XDG_RUNTIME_DIR": str(xdg)}

    def start(body: str | None = None, *, run_dir: Path | None = None,
              **toml: Any) -> Running:
        rec = tmp_path / "rec.jsonl"
        path = tmp_path / "pipeline.toml"
        path.write_text(body if body is not None else pipeline_toml(rec, **toml))
        args = ["run", str(path), "--quiet"]
        if run_dir is not None:
            args += ["--run-dir", str(run_dir)]
        proc = subprocess.Popen([sys.executable, "-m", "va_actors.cli.main", *args], cwd=ROOT,
                                env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        started.append(proc)
        where = run_dir
        if where is None:
            where = xdg / "va-actors" / f"taptest-{proc.pid}"
        running = Running(proc, wait_running(where), where, env, rec)
        original = running.popen

        def tracked(*args: str) -> subprocess.Popen[bytes]:
            helper = original(*args)
            helpers.append(helper)
            return helper
        running.popen = tracked  # type: ignore[method-assign]
        return running

    yield start
    for helper in helpers:
        with contextlib.suppress(ProcessLookupError):
            helper.send_signal(signal.SIGCONT)
            helper.kill()
        helper.wait(5)
    for proc in started:
        stop(proc)


def arrivals(rec: Path, since_ns: int, until_ns: int) -> list[float]:
    """Inter-arrival times (ms) of sink records received in [since, until)."""
    times = []
    for line in rec.read_text().splitlines():
        with contextlib.suppress(json.JSONDecodeError):
            record = json.loads(line)
            if "recv_ns" in record and since_ns <= record["recv_ns"] < until_ns:
                times.append(record["recv_ns"])
    return [(b - a) / 1e6 for a, b in itertools.pairwise(times)]


def rss(processes: list[psutil.Process]) -> dict[int, int]:
    return {p.pid: p.memory_info().rss for p in processes}


# -- tap -------------------------------------------------------------------------------------
def test_a_tap_started_after_the_pipeline_sees_live_messages(
        launch: Callable[..., Running]) -> None:
    running = launch()
    time.sleep(0.5)  # the pipeline is well under way before the tap attaches
    result = running.cli("tap", "mic.audio", "--count", "5", "--timeout", "10",
                         "--run-dir", str(running.run_dir))
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(lines) == 5
    assert {(m["topic"], m["kind"], m["src"]) for m in lines} == {("mic.audio", "audio", "mic")}
    seqs = [m["seq"] for m in lines]
    assert seqs[0] > 0 and seqs == list(range(seqs[0], seqs[0] + 5))
    assert all(m["payload_sizes"] == [640] and m["fields"]["sample_rate"] == 16000
               for m in lines)
    assert all(m["epoch"] == 0 and m["ts"] > 0 for m in lines)


def test_tap_finds_the_newest_pipeline_prints_readable_lines_and_sys_topics(
        launch: Callable[..., Running]) -> None:
    running = launch()
    result = running.cli("tap", "echo", "sys.metrics", "--pretty", "--count", "60",
                         "--timeout", "10")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert any(" echo.out " in line and "16000 Hz 1 ch s16 20.0 ms (640 B)" in line
               for line in lines)
    assert any(" sys.metrics " in line and "metrics" in line for line in lines)
    assert not any(" mic.audio " in line for line in lines)


def test_tap_hz_prints_per_topic_rates(launch: Callable[..., Running]) -> None:
    running = launch()
    result = running.cli("tap", "mic.", "echo.", "--hz", "--timeout", "2.5")
    assert result.returncode == 0, result.stderr
    rates = [json.loads(line)["hz"] for line in result.stdout.splitlines()]
    assert len(rates) >= 2
    for topic in ("mic.audio", "echo.out"):
        assert 40 <= rates[-1][topic] <= 60, rates


def test_tap_with_nothing_to_see_times_out_with_status_1(
        launch: Callable[..., Running]) -> None:
    running = launch()
    result = running.cli("tap", "nobody.here", "--timeout", "0.5")
    assert result.returncode == 1
    assert "0 message(s) on 'nobody.here' within 0.5 s" in result.stderr


def test_tap_and_status_without_a_pipeline_exit_2(tmp_path: Path) -> None:
    env = {**os.environ, "XDG_RUNTIME_DIR": str(tmp_path)}
    for args in (["tap", "mic.audio", "--timeout", "1"], ["status"]):
        result = subprocess.run([sys.executable, "-m", "va_actors.cli.main", *args], cwd=ROOT,
                                env=env, capture_output=True, text=True, timeout=20,
                                check=False)
        assert result.returncode == 2
        assert "no running pipeline found" in result.stderr


def test_a_stalled_tap_neither_slows_the_pipeline_nor_grows_its_memory(
        launch: Callable[..., Running]) -> None:
    # 48 kHz stereo: 3,840-byte chunks, 50 a second on mic.audio and echo.out.
    running = launch(rate=48000, channels=2)
    processes = running.processes()
    window_s = 3.0
    time.sleep(0.5)
    base_start, rss_base_start = time.time_ns(), rss(processes)
    time.sleep(window_s)
    base_end, rss_base_end = time.time_ns(), rss(processes)
    tap = running.popen("tap", "")
    assert tap.stdout is not None
    assert json.loads(tap.stdout.readline())["topic"]  # subscribed and flowing
    os.kill(tap.pid, signal.SIGSTOP)  # stops reading: its queues fill, then drop
    stall_start, rss_stall_start = time.time_ns(), rss(processes)
    time.sleep(window_s)
    stall_end, rss_stall_end = time.time_ns(), rss(processes)

    baseline = arrivals(running.rec, base_start, base_end)
    stalled = arrivals(running.rec, stall_start, stall_end)
    expected = window_s * 1000 / 20
    assert len(stalled) >= 0.9 * expected and len(baseline) >= 0.9 * expected
    assert abs(statistics.median(stalled) - statistics.median(baseline)) < 2.0
    p95 = statistics.quantiles(stalled, n=20)[-1]
    p95_base = statistics.quantiles(baseline, n=20)[-1]
    assert p95 < max(2 * p95_base, p95_base + 10.0), (p95, p95_base)
    # Memory: growth while the tap is stalled vs growth over as long without a tap
    # (what the pipeline does on its own is not the tap's doing).
    extra_mb = {pid: ((rss_stall_end[pid] - rss_stall_start[pid])
                      - (rss_base_end[pid] - rss_base_start[pid])) / 2**20
                for pid in rss_base_start}
    assert max(extra_mb.values()) < 3.0, extra_mb  # a stalled tap queues ~100 messages at most
    assert tap.poll() is None  # still there, still stalled


# -- status ----------------------------------------------------------------------------------
def test_status_shows_every_instance(launch: Callable[..., Running]) -> None:
    running = launch(replicas=2)
    result = running.cli("status", "--json", "--run-dir", str(running.run_dir))
    assert result.returncode == 0, result.stderr
    status = json.loads(result.stdout)
    assert status["pipeline"] == "taptest" and status["metrics"] is True
    rows = {row["instance"]: row for row in status["instances"]}
    assert set(rows) == {"mic", "echo-dispatch", "echo-0", "echo-1", "sink"}
    for name, row in rows.items():
        assert row["state"] == "running", row
        assert row["pid"] == running.manifest.instance(name).pid
        assert row["rss_bytes"] > 10 * 2**20 and row["restarts"] == 0
        assert row["cpu_percent"] is not None and row["loop_lag_ms"] is not None
    assert rows["mic"]["msgs_out"] > 0 and rows["sink"]["msgs_in"] > 0
    assert rows["echo-0"]["msgs_in"] > 0 and rows["echo-1"]["msgs_in"] > 0
    # The dispatcher shares the stream between the replicas and reports each one.
    work = rows["echo-dispatch"]["work"]["replicas"]
    assert set(work) == {"echo-0", "echo-1"}
    assert all(w["sent"] > 0 and w["capacity"] == 1 and w["lost"] == 0 for w in work.values())

    table = running.cli("status").stdout.splitlines()
    assert table[0].startswith("pipeline taptest") and "5/5 running" in table[0]
    assert table[1].split()[:4] == ["INSTANCE", "PID", "STATE", "RESTARTS"]
    assert sorted(line.split()[0] for line in table[2:7]) == [
        "echo-0", "echo-1", "echo-dispatch", "mic", "sink"]
    replica_rows = table[table.index("") + 1:]
    assert replica_rows[0].split() == ["REPLICA", "IN", "FLIGHT", "MAX", "SENT", "DONE", "LOST"]
    assert [line.split()[0] for line in replica_rows[1:3]] == ["echo-0", "echo-1"]


def test_status_reflects_a_restart(launch: Callable[..., Running]) -> None:
    running = launch()
    old = running.manifest.instance("echo").pid
    assert old is not None
    os.kill(old, signal.SIGKILL)
    deadline = time.monotonic() + 15
    rows: dict[str, Any] = {}
    while time.monotonic() < deadline:
        result = running.cli("status", "--json")
        rows = {row["instance"]: row for row in json.loads(result.stdout)["instances"]}
        if rows["echo"]["state"] == "running" and rows["echo"]["restarts"] == 1:
            break
        time.sleep(0.2)
    assert rows["echo"]["restarts"] == 1 and rows["echo"]["pid"] != old
    assert rows["mic"]["restarts"] == 0


def test_default_run_dir_is_private_and_removed_at_exit(launch: Callable[..., Running]) -> None:
    running = launch()
    assert running.run_dir.parent == Path(running.env["XDG_RUNTIME_DIR"]) / "va-actors"
    assert running.run_dir.stat().st_mode & 0o777 == 0o700
    assert running.manifest.supervisor_pid == running.proc.pid
    stop(running.proc)
    assert running.proc.returncode == 0
    assert not running.run_dir.exists()


def test_status_shows_voice_to_voice_latency(launch: Callable[..., Running]) -> None:
    running = launch(pipeline_toml(Path(os.devnull)) + """
[[actor]]
name = "console"
plugin = "tests.actors.latency:LatencyReporter"
""")
    deadline = time.monotonic() + 15
    latency: dict[str, Any] | None = None
    while time.monotonic() < deadline:
        result = running.cli("status", "--json")
        latency = json.loads(result.stdout).get("latency")
        if latency and latency["turns"] >= 3:
            break
        time.sleep(0.3)
    assert latency is not None and latency["turns"] >= 3, latency
    assert latency["last"]["segments_ms"]["first_token"] == 100.0
    assert latency["median_ms"] >= 700.0
    table = running.cli("status").stdout
    line = next(x for x in table.splitlines() if x.startswith("voice-to-voice"))
    assert "turn 200 + transcript 200 + first token 100 + first audio 200" in line
