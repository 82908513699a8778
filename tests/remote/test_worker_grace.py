"""No orphans across machines: a worker that loses its supervisor stops what it runs.

On loopback (plaintext, ``insecure = true``, allowed there only): a worker
agent listening, a pipeline naming it with one actor pinned to it, and a
grace of 2 s. The supervisor is killed with SIGKILL, so it cannot say
goodbye; within the grace (and a margin) the instance on the worker is gone,
and the worker agent itself keeps running for the next supervisor.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from va_actors.runtime import rundir
from va_actors.testing import free_port, stop_group

REPO = Path(__file__).resolve().parents[2]
VA_LAUNCH = str(Path(sys.executable).with_name("va-launch"))
GRACE_S = 2.0

PIPELINE = """
[pipeline]
name = "grace"

[transport]
listen = "tcp://127.0.0.1:{sup_port}"
insecure = true
worker_grace_s = {grace}

[[worker]]
name = "w1"
address = "tcp://127.0.0.1:{worker_port}"

[[actor]]
name = "cam"
plugin = "tests.actors.frames:FrameSource"
params = {{ width = 32, height = 24, fps = 10 }}

[[actor]]
name = "stage"
plugin = "tests.actors.frames:SlowStage"
inputs = ["cam.video"]
params = {{ delay_ms = 10, path = "{tmp}/stage.jsonl" }}
worker = "w1"
"""


def _stop(proc: subprocess.Popen[bytes]) -> None:
    stop_group(proc, signal.SIGTERM, 15)


@pytest.mark.slow
@pytest.mark.timeout(90)
def test_a_worker_stops_its_instances_when_the_supervisor_is_gone(tmp_path: Path) -> None:
    sup_port, worker_port = free_port(), free_port()
    (tmp_path / "pipeline.toml").write_text(PIPELINE.format(
        sup_port=sup_port, worker_port=worker_port, grace=GRACE_S, tmp=tmp_path))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    log = open(tmp_path / "worker.log", "wb")  # noqa: SIM115 - the child keeps it
    worker = subprocess.Popen([VA_LAUNCH, "worker", "--name", "w1", "--listen",
                               f"tcp://127.0.0.1:{worker_port}", "--insecure",
                               "--workdir", str(tmp_path / "work")],
                              env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT,
                              process_group=0)
    supervisor = subprocess.Popen([VA_LAUNCH, "run", str(tmp_path / "pipeline.toml"),
                                   "--run-dir", str(tmp_path / "run"), "--quiet"],
                                  env=env, cwd=tmp_path, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL, process_group=0)
    log.close()
    try:
        deadline = time.monotonic() + 40
        remote_pid = None
        while remote_pid is None:
            assert time.monotonic() < deadline, (tmp_path / "worker.log").read_text()
            time.sleep(0.25)
            if not (tmp_path / "run" / rundir.MANIFEST).exists():
                continue
            manifest = rundir.read_manifest(tmp_path / "run")
            stage = next((i for i in manifest.instances if i.instance == "stage"), None)
            if stage is not None and stage.state == "running" and stage.worker == "w1":
                remote_pid = stage.pid
        remote = psutil.Process(remote_pid)
        assert worker.pid in {p.pid for p in remote.parents()}  # it runs under the agent
        os.kill(supervisor.pid, signal.SIGKILL)  # no goodbye
        killed = time.monotonic()
        remote.wait(GRACE_S + 8)
        gone_after = time.monotonic() - killed
        assert gone_after >= GRACE_S - 0.5, gone_after  # not before the grace
        assert worker.poll() is None  # the agent waits for the next supervisor
    finally:
        _stop(supervisor)
        _stop(worker)
