"""The supervisor with real actor processes, real sockets and the test actors.

Each test writes a pipeline TOML into ``tmp_path`` (plugins from
``tests.actors``, or small plugin modules written next to the pipeline), runs
a :class:`Supervisor` on the test's loop, and checks what the actors and the
``sys.actor`` channel show. Every actor process is reaped in the fixture, also
when the test fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest

from tests.runtime.harness import (
    ROOT,
    TONE,
    data,
    host_processes,
    kill_all,
    load,
    read_jsonl,
    sink,
    supervising,
    until,
)
from va_actors.runtime import rundir
from va_actors.runtime.supervisor import (
    EXIT_GAVE_UP,
    EXIT_OK,
    InstanceStatus,
    PipelineStatus,
    Supervisor,
    expected_subscribers,
    supervisor_topics,
)


# -- graph helpers ---------------------------------------------------------------------------
def test_expected_subscribers_count_consumers_and_the_supervisor(tmp_path: Path) -> None:
    (tmp_path / "turny.py").write_text(TURN_MODULE)
    config = load(tmp_path, TONE + f"""
[[actor]]
name = "echo"
plugin = "tests.actors.echo:Echo"
inputs = ["mic.audio"]
replicas = 3
[[actor]]
name = "turn"
plugin = "turny:FileTurn"
inputs = ["mic.audio"]
params = {{ trigger = "{tmp_path / 'go'}" }}
""" + sink(tmp_path / "rec.jsonl"))
    # echo's 3 replicas subscribe once, through their dispatcher.
    assert expected_subscribers(config, config.actor("mic")) == {
        "mic.audio": 3, "mic.playback": 1}
    assert expected_subscribers(config, config.actor("turn")) == {"turn.turn": 1}
    assert supervisor_topics(config)["turn"] == ["turn.turn"]
    assert supervisor_topics(config)["sink"] == ["sink.playback"]


# -- restarts --------------------------------------------------------------------------------
async def test_kill_9_mid_stream_restarts_the_actor_and_the_stream_resumes(
        tmp_path: Path) -> None:
    rec = tmp_path / "rec.jsonl"
    config = load(tmp_path, """
[supervisor]
backoff_initial_s = 0.05
""" + TONE + """
[[actor]]
name = "echo"
plugin = "tests.actors.echo:Echo"
inputs = ["mic.audio"]
""" + sink(rec, "echo.out"))
    async with supervising(config, tmp_path) as (sup, log):
        await until(lambda: len(data(rec)) >= 10, 10, "audio at the sink")
        old = sup.pid_of("echo")
        assert old is not None
        os.kill(old, signal.SIGKILL)
        exited = await log.wait("echo", "exited")
        assert exited["exit_code"] == -signal.SIGKILL and exited["pid"] == old
        await log.wait("echo", "restarting")
        running = await log.wait("echo", "running", restarts=1)
        assert running["pid"] not in (None, old)
        resumed_at = time.time_ns()
        await until(lambda: sum(r["recv_ns"] > resumed_at for r in data(rec)) >= 10, 10,
                    "the stream to resume at the sink")
        status = {i.instance: i for i in sup.status().instances}
        assert status["echo"].restarts == 1 and status["echo"].state == "running"
        assert status["mic"].restarts == 0 and status["sink"].restarts == 0


async def test_a_hung_actor_is_killed_and_restarted(tmp_path: Path) -> None:
    rec = tmp_path / "rec.jsonl"
    config = load(tmp_path, """
[supervisor]
hang_timeout_s = 1.0
heartbeat_interval_s = 0.1
backoff_initial_s = 0.05
""" + TONE + """
[[actor]]
name = "echo"
plugin = "tests.actors.echo:Echo"
inputs = ["mic.audio"]
""" + sink(rec, "echo.out"))
    async with supervising(config, tmp_path) as (sup, log):
        await until(lambda: len(data(rec)) >= 5, 10, "audio at the sink")
        old = sup.pid_of("echo")
        assert old is not None
        stopped_at = time.monotonic()
        os.kill(old, signal.SIGSTOP)  # no heartbeats any more, nor anything else
        exited = await log.wait("echo", "exited")
        assert "hang" in exited["reason"], exited
        assert 0.9 < time.monotonic() - stopped_at < 5.0
        running = await log.wait("echo", "running", restarts=1)
        assert running["pid"] != old
        assert not rundir.pid_alive(old)
        resumed_at = time.time_ns()
        await until(lambda: sum(r["recv_ns"] > resumed_at for r in data(rec)) >= 5, 10,
                    "the stream to resume")


async def test_a_blocked_loop_is_not_a_hang(tmp_path: Path) -> None:
    config = load(tmp_path, """
[supervisor]
hang_timeout_s = 0.6
heartbeat_interval_s = 0.1
[[actor]]
name = "slow"
plugin = "tests.actors.blocker:Blocker"
params = { every_s = 0.1, block_s = 1.2 }
""")
    async with supervising(config, tmp_path) as (sup, log):
        await until(lambda: sup.status().instances[0].loop_lag_ms > 800, 10,
                    "loop lag to be reported")
        await asyncio.sleep(1.0)
        assert sup.status().instances[0].restarts == 0
        assert [s["state"] for s in log.of("slow")].count("exited") == 0


async def test_a_stage_blocking_for_2_s_does_not_delay_audio_through_the_others(
        tmp_path: Path) -> None:
    # mic -> echo -> sink carries 20 ms chunks in real time while "slow", which
    # reads the same mic audio, blocks its loop for 2 s on every chunk.
    rec = tmp_path / "rec.jsonl"
    config = load(tmp_path, """
[supervisor]
hang_timeout_s = 5.0
""" + TONE + """
[[actor]]
name = "echo"
plugin = "tests.actors.echo:Echo"
inputs = ["mic.audio"]

[[actor]]
name = "slow"
plugin = "tests.actors.blocker:Blocker"
inputs = ["mic.audio"]
params = { block_s = 2.0 }
""" + sink(rec, "echo.out"))
    async with supervising(config, tmp_path) as (sup, _log):
        await until(lambda: any(i.loop_lag_ms > 1500 for i in sup.status().instances
                                if i.instance == "slow"), 15, "slow to report its blocked loop")
        window_start = time.time_ns()
        await asyncio.sleep(3.0)  # spans at least one whole 2 s block
        window = [r["recv_ns"] for r in data(rec) if r["recv_ns"] > window_start]
        slow = next(i for i in sup.status().instances if i.instance == "slow")
        assert slow.restarts == 0 and slow.state == "running"  # heartbeats kept answering
    gaps_ms = sorted((b - a) / 1e6 for a, b in itertools.pairwise(window))
    assert len(window) >= 120, len(window)  # ~150 chunks of 20 ms in 3 s
    # Real-time pacing: every gap near 20 ms; a 2 s stall anywhere would show here.
    assert gaps_ms[-1] < 100, gaps_ms[-5:]


async def test_memory_over_the_limit_is_killed(tmp_path: Path) -> None:
    config = load(tmp_path, """
[pipeline]
on_give_up = "degrade"
[[actor]]
name = "fat"
plugin = "tests.actors.tone:ToneSource"
memory_limit_mb = 1
max_restarts = 1
backoff_initial_s = 0.05
""" + sink(tmp_path / "rec.jsonl", "fat.audio"))
    async with supervising(config, tmp_path, start=False) as (sup, log):
        exited = await log.wait("fat", "exited")
        assert exited["reason"].startswith("killed by the supervisor (memory: RSS"), exited
        await log.wait("fat", "gave_up", timeout=20)
        assert sup.status().instances[0].restarts == 1


# -- giving up ---------------------------------------------------------------------------------
CRASH_LOOP = """
[supervisor]
max_restarts = 2
backoff_initial_s = 0.05
backoff_cap_s = 0.1
""" + TONE + """
[[actor]]
name = "crash"
plugin = "tests.actors.crasher:Crasher"
inputs = ["mic.audio"]
params = { after = 3 }
"""


async def test_give_up_with_on_give_up_stop_stops_the_pipeline_nonzero(tmp_path: Path) -> None:
    rec = tmp_path / "rec.jsonl"
    config = load(tmp_path, '[pipeline]\non_give_up = "stop"\n' + CRASH_LOOP + sink(rec))
    sup = Supervisor(config, run_dir=tmp_path / "run")
    try:
        code = await asyncio.wait_for(sup.run(), 40)
    finally:
        kill_all(leftovers := host_processes())
    assert not leftovers
    assert code == EXIT_GAVE_UP
    states = {i.instance: i for i in sup.status().instances}
    assert states["crash"].state == "gave_up" and states["crash"].restarts == 2
    assert states["mic"].state == "stopped" and states["sink"].state == "stopped"
    assert "crash was given up" in sup.stop_reason
    assert not (tmp_path / "run").exists()


async def test_give_up_with_on_give_up_degrade_keeps_the_rest_running(tmp_path: Path) -> None:
    rec = tmp_path / "rec.jsonl"
    config = load(tmp_path, '[pipeline]\non_give_up = "degrade"\n' + CRASH_LOOP + sink(rec))
    async with supervising(config, tmp_path) as (sup, log):
        gave_up = await log.wait("crash", "gave_up", timeout=30)
        assert "max_restarts 2" in gave_up["reason"]
        after = time.time_ns()
        await until(lambda: sum(r["recv_ns"] > after for r in data(rec)) >= 10, 10,
                    "the sink to keep receiving")
        states = {i.instance: i.state for i in sup.status().instances}
        assert states == {"mic": "running", "crash": "gave_up", "sink": "running"}
        await sup.stop()
    assert sup.status().instances[0].state == "stopped"


QUITTER = """
import asyncio
import os

from va_actors.core.node import Node


class Quitter(Node):
    \"\"\"Exits the process with ``code`` once started (a job that finished).\"\"\"

    async def run(self, ctx):
        await ctx.wait_started()
        await asyncio.sleep(0.2)
        os._exit(int(self.params.get("code", 0)))
"""


async def test_clean_exits_under_on_failure_stay_stopped_and_the_pipeline_ends(
        tmp_path: Path) -> None:
    (tmp_path / "quitter.py").write_text(QUITTER)
    config = load(tmp_path, """
[[actor]]
name = "job"
plugin = "quitter:Quitter"
restart = "on-failure"
[[actor]]
name = "other"
plugin = "quitter:Quitter"
restart = "never"
params = { code = 5 }
""")
    sup = Supervisor(config, run_dir=tmp_path / "run")
    try:
        code = await asyncio.wait_for(sup.run(), 30)
    finally:
        kill_all(leftovers := host_processes())
    assert not leftovers
    assert code == EXIT_OK
    status = {i.instance: i for i in sup.status().instances}
    assert status["job"].state == "stopped" and status["job"].exit_code == 0
    assert status["other"].state == "stopped" and status["other"].exit_code == 5
    assert "restart policy is 'never'" in status["other"].reason
    assert sup.stop_reason == "every instance has ended"


# -- epochs ------------------------------------------------------------------------------------
async def test_an_epoch_bump_reaches_actors_and_a_restarted_source_keeps_it(
        tmp_path: Path) -> None:
    rec = tmp_path / "rec.jsonl"
    config = load(tmp_path, "[supervisor]\nbackoff_initial_s = 0.05\n" + TONE + sink(rec))
    async with supervising(config, tmp_path) as (sup, log):
        await until(lambda: len(data(rec)) >= 5, 10, "audio at the sink")
        assert sup.bump_epoch("test") == 1
        await until(lambda: any(r.get("on_epoch") == 1 for r in read_jsonl(rec)), 5,
                    "the sink's on_epoch(1)")
        await until(lambda: data(rec)[-1]["epoch"] == 1, 5, "audio stamped with epoch 1")
        # A source restarted now must stamp epoch 1, or every hop would drop it as stale.
        mic = sup.pid_of("mic")
        assert mic is not None
        os.kill(mic, signal.SIGKILL)
        await log.wait("mic", "running", restarts=1)
        after = time.time_ns()
        await until(lambda: sum(r["recv_ns"] > after for r in data(rec)) >= 5, 10,
                    "the restarted source's audio at the sink")
        assert all(r["epoch"] == 1 for r in data(rec) if r["recv_ns"] > after)
        assert [e["epoch"] for e in log.epochs] == [1]


TURN_MODULE = '''
"""Test plugins for barge-in: a turn detector and a speaker that reports playback."""
import os
from dataclasses import dataclass, field

from va_actors.core.events.base import PluginBaseEvent
from va_actors.core.node import Node
from va_actors.core.turn_detection import TurnDetector


class FileTurn(TurnDetector):
    """Emits TurnStartedEvent on the next audio chunk after ``trigger`` appears."""

    def __init__(self, trigger: str) -> None:
        super().__init__()
        self.trigger = trigger

    async def process_audio(self, audio_data, participant=None, conversation=None):
        if os.path.exists(self.trigger):
            os.remove(self.trigger)
            self._emit_turn_started_event(confidence=0.9)


@dataclass(kw_only=True)
class PlaybackEvent(PluginBaseEvent):
    type: str = field(default="test.playback", init=False)
    playing: bool = False


class Speaker(Node):
    """Publishes ``playback`` whenever the content of ``state_file`` changes."""

    async def run(self, ctx):
        import asyncio
        await ctx.wait_started()
        last = None
        while True:
            try:
                with open(self.params["state_file"]) as handle:
                    state = handle.read().strip()
            except FileNotFoundError:
                state = None
            if state and state != last:
                ctx.publish("playback", PlaybackEvent(playing=state == "playing"))
                last = state
            await asyncio.sleep(0.02)
'''


async def test_turn_started_bumps_the_epoch_only_while_the_agent_plays(tmp_path: Path) -> None:
    (tmp_path / "turny.py").write_text(TURN_MODULE)
    trigger, state = tmp_path / "go", tmp_path / "playback"
    rec = tmp_path / "rec.jsonl"
    config = load(tmp_path, TONE + f"""
[[actor]]
name = "turn"
plugin = "turny:FileTurn"
inputs = ["mic.audio"]
params = {{ trigger = "{trigger}" }}
[[actor]]
name = "speaker"
plugin = "turny:Speaker"
params = {{ state_file = "{state}" }}
""" + sink(rec))
    async with supervising(config, tmp_path) as (sup, log):
        # No sink has reported playback yet: every turn start is a barge-in.
        trigger.touch()
        await until(lambda: sup.epoch == 1, 5, "the first epoch bump")
        await until(lambda: any(r.get("on_epoch") == 1 for r in read_jsonl(rec)), 5,
                    "the epoch to reach the sink")
        # The speaker reports it is idle: the user just talks, no bump.
        state.write_text("idle")
        await until(lambda: sup.playback == {"speaker": False}, 5, "playback idle")
        trigger.touch()
        await until(lambda: not trigger.exists(), 5, "the turn detector to fire")
        await asyncio.sleep(0.3)
        assert sup.epoch == 1
        # The agent is speaking: the user's turn interrupts it.
        state.write_text("playing")
        await until(lambda: sup.playback == {"speaker": True}, 5, "playback playing")
        trigger.touch()
        await until(lambda: sup.epoch == 2, 5, "the barge-in bump")
        assert [e["epoch"] for e in log.epochs] == [1, 2]
        assert "turn started on turn.turn" in log.epochs[-1]["reason"]


# -- shutdown and orphans --------------------------------------------------------------------
async def test_shutdown_stops_sources_first_and_leaves_nothing(tmp_path: Path) -> None:
    rec = tmp_path / "rec.jsonl"
    config = load(tmp_path, TONE + """
[[actor]]
name = "echo"
plugin = "tests.actors.echo:Echo"
inputs = ["mic.audio"]
""" + sink(rec, "echo.out"))
    async with supervising(config, tmp_path) as (sup, log):
        pids = [sup.pid_of(name) for name in ("mic", "echo", "sink")]
        run_dir = sup.run_dir
        assert run_dir is not None and (run_dir / "manifest.json").exists()
        await until(lambda: len(data(rec)) >= 5, 10, "audio at the sink")
        started = time.monotonic()
        await sup.stop()
        assert time.monotonic() - started < 3.0
        order = [s["instance"] for s in log.states if s["state"] == "stopped"]
        assert order == ["mic", "echo", "sink"]
        assert all(s["exit_code"] == 0 for s in log.states if s["state"] == "stopped")
        assert not any(rundir.pid_alive(pid) for pid in pids if pid is not None)
        assert not run_dir.exists()


async def test_an_actor_ignoring_shutdown_is_terminated_after_its_deadline(
        tmp_path: Path) -> None:
    config = load(tmp_path, """
[[actor]]
name = "stuck"
plugin = "tests.actors.tone:ToneSource"
shutdown_deadline_s = 0.3
""")
    async with supervising(config, tmp_path) as (sup, _log):
        pid = sup.pid_of("stuck")
        assert pid is not None
        os.kill(pid, signal.SIGSTOP)  # cannot answer shutdown, SIGTERM stays pending
        started = time.monotonic()
        await sup.stop()
        took = time.monotonic() - started
        assert 0.3 <= took < 0.3 + 2.0 + 2.0, took  # deadline, SIGTERM grace, SIGKILL
        assert not rundir.pid_alive(pid)


@pytest.fixture
def va_launch(tmp_path: Path) -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    """Start ``va-launch`` subprocesses; kill them and their actors afterwards."""
    started: list[subprocess.Popen[bytes]] = []

    def launch(*args: str) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen([sys.executable, "-m", "va_actors.cli.main", *args],
                                cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT)
        started.append(proc)
        return proc

    yield launch
    for proc in started:
        actors = [c for c in psutil.Process(proc.pid).children(recursive=True)] \
            if proc.poll() is None else []
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        kill_all(actors)


def wait_running(run_dir: Path, count: int, timeout: float = 20.0) -> rundir.Manifest:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(rundir.RunDirError):
            manifest = rundir.read_manifest(run_dir)
            states = [i.state for i in manifest.instances]
            if len(states) == count and all(s == "running" for s in states):
                return manifest
        time.sleep(0.05)
    raise AssertionError(f"pipeline in {run_dir} not running after {timeout} s")


def test_sigkill_of_the_supervisor_leaves_no_orphan(
        tmp_path: Path, va_launch: Callable[..., subprocess.Popen[bytes]]) -> None:
    config = tmp_path / "pipeline.toml"
    config.write_text(TONE + """
[[actor]]
name = "echo"
plugin = "tests.actors.echo:Echo"
inputs = ["mic.audio"]
replicas = 2
""" + sink(tmp_path / "rec.jsonl", "echo.out"))
    run_dir = tmp_path / "run"
    proc = va_launch("run", str(config), "--run-dir", str(run_dir), "--quiet")
    manifest = wait_running(run_dir, 5)  # mic, echo's dispatcher and 2 replicas, sink
    pids = [i.pid for i in manifest.instances]
    assert all(pid is not None and rundir.pid_alive(pid) for pid in pids)
    proc.kill()
    proc.wait(5)
    deadline = time.monotonic() + 5
    while any(rundir.pid_alive(p) for p in pids if p) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [p for p in pids if p and rundir.pid_alive(p)], "actors outlived the supervisor"


def test_va_launch_run_stops_cleanly_on_sigint(
        tmp_path: Path, va_launch: Callable[..., subprocess.Popen[bytes]]) -> None:
    config = tmp_path / "pipeline.toml"
    config.write_text(TONE + sink(tmp_path / "rec.jsonl"))
    run_dir = tmp_path / "run"
    proc = va_launch("run", str(config), "--run-dir", str(run_dir))
    manifest = wait_running(run_dir, 2)
    proc.send_signal(signal.SIGINT)
    output = proc.communicate(timeout=15)[0].decode()
    assert proc.returncode == 0, output
    assert "stopped (SIGINT): restarts 0, epoch 0" in output
    assert not run_dir.exists()
    assert not any(rundir.pid_alive(i.pid) for i in manifest.instances if i.pid)


def test_va_launch_run_exits_nonzero_when_the_pipeline_gave_up(
        tmp_path: Path, va_launch: Callable[..., subprocess.Popen[bytes]]) -> None:
    config = tmp_path / "pipeline.toml"
    config.write_text(CRASH_LOOP.replace("max_restarts = 2", "max_restarts = 0"))
    proc = va_launch("run", str(config), "--run-dir", str(tmp_path / "run"), "--quiet")
    output = proc.communicate(timeout=30)[0].decode()
    assert proc.returncode == EXIT_GAVE_UP, output
    assert "stopped (crash was given up)" in output and "gave up: crash" in output


def test_drops_are_told_by_reason_so_barge_in_is_not_mistaken_for_overload() -> None:
    def instance(name: str, drops: dict[str, int]) -> InstanceStatus:
        return InstanceStatus(instance=name, actor=name, replica=0, pid=1, state="running",
                              restarts=0, drops=drops)

    status = PipelineStatus(pipeline="p", epoch=3, up=2, total=2, restarts=0, drops=13,
                            stopping=False, instances=[instance("tts", {"stale": 9}),
                                                       instance("stt", {"overflow": 3,
                                                                        "stale": 1})])
    assert status.drops_by_reason() == {"stale": 10, "overflow": 3}
