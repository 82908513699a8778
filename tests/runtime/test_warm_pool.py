"""Warm spares: a restart takes a process whose plugin is already built and started."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from tests.runtime.harness import load, read_jsonl, supervising, until


def pipeline(tmp_path: Path, spares: int) -> str:
    return f"""
[[actor]]
name = "mic"
plugin = "tests.actors.tone:ToneSource"
params = {{ realtime = true }}

[[actor]]
name = "echo"
plugin = "tests.actors.echo:Echo"
inputs = ["mic.audio"]
warm_spares = {spares}

[[actor]]
name = "sink"
plugin = "tests.actors.record:RecordingSink"
inputs = ["echo.out"]
params = {{ path = "{tmp_path / 'rec.jsonl'}" }}
"""


@pytest.mark.timeout(180)
async def test_a_killed_actor_restarts_from_a_warm_spare_and_output_resumes(
        tmp_path: Path) -> None:
    rec = tmp_path / "rec.jsonl"
    async with supervising(load(tmp_path, pipeline(tmp_path, 1)), tmp_path) as (sup, _):
        pool = sup._launch.pool
        assert pool is not None
        # Refill at once: other tests may keep the machine busy (the gate's own test
        # is in test_warm_host.py).
        pool.refill_cpu_percent = 101.0
        echo = sup.config.actor("echo")
        await until(lambda: pool.ready(echo) == 1, 60, "one warm spare of echo")
        for kill in range(2):
            pid = sup.pid_of("echo")
            assert pid is not None
            os.kill(pid, signal.SIGKILL)
            await until(lambda p=pid: sup.pid_of("echo") not in (None, p), 10,  # type: ignore[misc]
                        "echo restarted")
            seen = len(read_jsonl(rec))
            await until(lambda n=seen: len(read_jsonl(rec)) > n + 5, 10,  # type: ignore[misc]
                        "output of the restarted echo")
            status = next(i for i in sup.status().instances if i.instance == "echo")
            assert status.warm_starts == kill + 1  # taken from the pool, not started cold
            assert status.restarts == kill + 1
            await until(lambda: pool.ready(echo) == 1, 60, "the pool refilled")
    # The recorded stream went on after each restart, in order per incarnation.
    echoed = [r for r in read_jsonl(rec) if r.get("topic") == "echo.out"]
    assert len(echoed) > 20


async def test_without_warm_spares_there_is_no_pool(tmp_path: Path) -> None:
    async with supervising(load(tmp_path, pipeline(tmp_path, 0)), tmp_path) as (sup, _):
        assert sup._launch.pool is None
