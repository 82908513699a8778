"""Video across processes: intact frames, fps requests, staleness bounds, replicas.

Real actor processes and sockets (tests.actors.frames); each test runs a
pipeline under a supervisor on its loop and reaps every process afterwards.
"""

from __future__ import annotations

import itertools
import os
import signal
import statistics
import time
from pathlib import Path
from typing import Any

import pytest

from tests.actors.frames import make_frame
from tests.runtime.harness import data, load, read_jsonl, supervising, until

FRAMES = """
[[actor]]
name = "cam"
plugin = "tests.actors.frames:FrameSource"
params = {{ width = {width}, height = {height}, fps = {fps} }}
"""


def camera(fps: float = 30, width: int = 320, height: int = 240) -> str:
    return FRAMES.format(fps=fps, width=width, height=height)


def recorder(path: Path, inputs: str) -> str:
    return f"""
[[actor]]
name = "sink"
plugin = "tests.actors.record:RecordingSink"
inputs = [{inputs}]
params = {{ path = "{path}" }}
"""


def stage(path: Path, inputs: str, *, delay_ms: float, blocking: bool = False,
          extra: str = "") -> str:
    return f"""
[[actor]]
name = "stage"
plugin = "tests.actors.frames:SlowStage"
inputs = [{inputs}]
params = {{ path = "{path}", delay_ms = {delay_ms}, blocking = {str(blocking).lower()} }}
{extra}
"""


async def test_frames_arrive_intact_through_two_hops(tmp_path: Path) -> None:
    rec = tmp_path / "rec.jsonl"
    config = load(tmp_path, camera(fps=30, width=640, height=480) + """
[[actor]]
name = "echo"
plugin = "tests.actors.echo:Echo"
inputs = ["cam.video"]
""" + recorder(rec, '"echo.out"'))
    async with supervising(config, tmp_path):
        got = await until(lambda: len(data(rec)) >= 45 and data(rec), 15, "45 frames")
    expected = {pts: make_frame(pts, 640, 480).checksum() for pts in {r["pts"] for r in got}}
    assert all(r["crc"] == expected[r["pts"]] for r in got)
    pts = [r["pts"] for r in got]
    assert pts == sorted(pts)  # in order, none twice
    assert all(r["ref"]["src"] == "cam" and r["ref"]["seq"] == r["pts"] for r in got)


async def test_an_fps_request_holds_within_ten_percent(tmp_path: Path) -> None:
    rec = tmp_path / "rec.jsonl"
    config = load(tmp_path, camera(fps=30) + recorder(rec, '{ topic = "cam.video", fps = 10 }'))
    async with supervising(config, tmp_path) as (sup, _):
        first = await until(lambda: data(rec), 10, "the first frame")
        start_ns = first[0]["recv_ns"]
        await until(lambda: data(rec)[-1]["recv_ns"] - start_ns > 4e9, 10, "4 s of frames")
        status = {i.instance: i for i in sup.status().instances}
    got = [r for r in data(rec) if r["recv_ns"] - start_ns <= 4e9]
    rate = (len(got) - 1) / ((got[-1]["recv_ns"] - got[0]["recv_ns"]) / 1e9)
    assert 9.0 <= rate <= 11.0, f"{rate:.2f} fps for a 10 fps request"
    gaps = [b["pts"] - a["pts"] for a, b in itertools.pairwise(got)]
    assert statistics.median(gaps) == 3  # every third frame of 30 fps: the newest each time
    assert status["sink"].drops.get("throttled", 0) > 0


@pytest.mark.parametrize("blocking", [False, True], ids=["async", "blocking"])
async def test_a_slow_stage_never_gets_a_frame_older_than_its_bound(
        tmp_path: Path, blocking: bool) -> None:
    log = tmp_path / "stage.jsonl"
    config = load(tmp_path, camera(fps=30) + stage(
        log, '{ topic = "cam.video", max_age_ms = 60 }', delay_ms=150, blocking=blocking))
    async with supervising(config, tmp_path):
        await until(lambda: len(read_jsonl(log)) >= 12, 15, "12 frames handled")
    handled = read_jsonl(log)
    # The newest frame, never a backlog: consecutive frames are ~150 ms apart.
    assert max(r["age_ms"] for r in handled) <= 60 * 1.05, handled
    spans = [b["pts"] - a["pts"] for a, b in itertools.pairwise(handled)]
    assert statistics.median(spans) >= 4


# -- replicas ----------------------------------------------------------------------------
def _replica_pids(sup: Any, n: int) -> dict[int, str]:
    return {sup.pid_of(f"stage-{i}"): f"stage-{i}" for i in range(n)}


async def test_replicas_share_the_work_and_results_name_their_input(tmp_path: Path) -> None:
    log, rec = tmp_path / "stage.jsonl", tmp_path / "rec.jsonl"
    config = load(tmp_path, camera(fps=20) + stage(
        log, '"cam.video"', delay_ms=200, extra="replicas = 4") + recorder(rec, '"stage.result"'))
    async with supervising(config, tmp_path) as (sup, _):
        await until(lambda: len(data(rec)) >= 60, 20, "60 results")
        pids = _replica_pids(sup, 4)
        status = {i.instance: i for i in sup.status().instances}
    handled = read_jsonl(log)
    per_replica = {name: sum(1 for r in handled if pids.get(r["pid"]) == name)
                   for name in pids.values()}
    assert all(count >= 8 for count in per_replica.values()), per_replica
    pts = [r["pts"] for r in handled]
    assert len(pts) == len(set(pts)), "a frame went to two replicas"
    # 4 x 5 fps of work keep up with 20 fps: few frames replaced while waiting.
    results = data(rec)
    assert all(r["ref"]["src"] == "cam" and str(r["ref"]["pts"]) == r["text"] for r in results)
    assert all(r["ref"]["seq"] == r["ref"]["pts"] for r in results)
    assert len(results) / (results[-1]["ref"]["pts"] - results[0]["ref"]["pts"] + 1) > 0.8
    work = status["stage-dispatch"].work["replicas"]
    assert set(work) == {f"stage-{i}" for i in range(4)} and all(
        w["lost"] == 0 and w["done"] > 0 for w in work.values())


async def test_killing_a_replica_under_load_loses_only_its_in_flight_item(
        tmp_path: Path) -> None:
    log, rec = tmp_path / "stage.jsonl", tmp_path / "rec.jsonl"
    config = load(tmp_path, """
[supervisor]
backoff_initial_s = 0.05
""" + camera(fps=10) + stage(log, '"cam.video"', delay_ms=400, extra="replicas = 2") +
        recorder(rec, '"stage.result"'))
    async with supervising(config, tmp_path) as (sup, state):
        await until(lambda: len(data(rec)) >= 8, 15, "8 results")
        victim = sup.pid_of("stage-0")
        assert victim is not None
        # Kill it in the middle of an item: right after it logged taking one.
        await until(lambda: read_jsonl(log) and read_jsonl(log)[-1]["pid"] == victim, 5,
                    "stage-0 to take an item")
        os.kill(victim, signal.SIGKILL)
        killed_ns = time.time_ns()
        await state.wait("stage-0", "running", restarts=1)
        await until(lambda: sum(r["recv_ns"] > killed_ns for r in data(rec)) >= 10, 15,
                    "results after the restart")
        await until(lambda: sup.status().instances and any(
            i.work.get("replicas", {}).get("stage-0", {}).get("lost") for i in
            sup.status().instances), 5, "the dispatcher to count the lost item")
        status = {i.instance: i for i in sup.status().instances}
    work = status["stage-dispatch"].work["replicas"]
    assert work["stage-0"]["lost"] == 1 and work["stage-1"]["lost"] == 0
    taken = {r["pts"]: r["pid"] for r in read_jsonl(log)}
    answered = {int(r["text"]) for r in data(rec)}
    unanswered = {pts for pts, pid in taken.items() if pts not in answered}
    # Only the victim's in-flight frame (and frames still in flight at the end).
    lost = {pts for pts in unanswered if taken[pts] == victim}
    assert len(lost) == 1, (lost, unanswered)
    last = max(taken)
    assert all(pts >= last - 4 for pts in unanswered - lost), unanswered


async def test_a_restarted_dispatcher_picks_up_the_replicas(tmp_path: Path) -> None:
    log, rec = tmp_path / "stage.jsonl", tmp_path / "rec.jsonl"
    config = load(tmp_path, """
[supervisor]
backoff_initial_s = 0.05
""" + camera(fps=20) + stage(log, '"cam.video"', delay_ms=100, extra="replicas = 2") +
        recorder(rec, '"stage.result"'))
    async with supervising(config, tmp_path) as (sup, state):
        await until(lambda: len(data(rec)) >= 5, 15, "results")
        old = sup.pid_of("stage-dispatch")
        assert old is not None
        os.kill(old, signal.SIGKILL)
        killed_ns = time.time_ns()
        await state.wait("stage-dispatch", "running", restarts=1)
        # Both replicas (never restarted) get work from the new dispatcher.
        await until(lambda: {r["pid"] for r in read_jsonl(log) if r["got_ns"] > killed_ns}
                    == {sup.pid_of("stage-0"), sup.pid_of("stage-1")}, 15,
                    "both replicas to work again")
        await until(lambda: sum(r["recv_ns"] > killed_ns for r in data(rec)) >= 10, 10,
                    "results after the restart")
        status = {i.instance: i for i in sup.status().instances}
    assert status["stage-0"].restarts == 0 and status["stage-1"].restarts == 0
