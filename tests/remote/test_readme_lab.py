"""The README's "Actors on other machines" commands, run as written (root: no sudo).

The bash block of that README section is read from README.md and run line by
line in a copy of the repository's launch/ and scripts/ (so keys/ lands in a
temporary directory): the namespace lab, the keys, two workers, the OCR
pipeline with a replica on each, status, a cut and a restore of w1's link,
and the lab taken down. If the README's commands change, this runs the new
ones; if they stop working, this fails.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.remote.netlab import unavailable
from va_actors.testing import stop_group

REPO = Path(__file__).resolve().parents[2]
RUNNING_REPLICA = re.compile(r"ocr-\d\s+\d+\s+running\b")
"""An OCR replica's row of status's instance table (pid, state)."""

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240),
              pytest.mark.skipif(bool(reason := unavailable()), reason=reason or "")]


def readme_commands() -> list[str]:
    """The section's bash block: logical lines (``\\`` joined), comments dropped."""
    text = (REPO / "README.md").read_text()
    section = text.split("## Actors on other machines", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```bash\n(.*?)```", section, flags=re.S)
    assert block is not None, "README: no bash block under 'Actors on other machines'"
    joined = block.group(1).replace("\\\n", " ")
    commands = []
    for line in joined.splitlines():
        command = re.sub(r"\s+#.*$", "", line).strip()
        if command:
            commands.append(re.sub(r"^sudo\s+", "", command))
    return commands


@contextlib.contextmanager
def lab_copy(tmp_path: Path) -> Iterator[Path]:
    root = tmp_path / "repo"
    for name in ("launch", "scripts"):
        shutil.copytree(REPO / name, root / name, symlinks=True)
    try:
        yield root
    finally:
        subprocess.run(["bash", str(root / "scripts" / "netns-lab.sh"), "down"],
                       capture_output=True, timeout=30)


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _stop(proc: subprocess.Popen[bytes]) -> None:
    stop_group(proc, signal.SIGINT, 20)  # va-launch run stops its pipeline on Ctrl-C


def _status(root: Path, command: str) -> str:
    out = subprocess.run(["bash", "-c", command], cwd=root, env=_env(), capture_output=True,
                         text=True, timeout=30)
    return out.stdout + out.stderr


def test_the_readme_commands_run_a_pipeline_across_namespaces(tmp_path: Path) -> None:
    commands = readme_commands()
    assert any("va-launch worker" in c for c in commands)
    background: list[subprocess.Popen[bytes]] = []
    seen: dict[str, str] = {}
    with lab_copy(tmp_path) as root:
        try:
            for command in commands:
                if command.endswith("&") or "va-launch run" in command:
                    log = (tmp_path / f"bg{len(background)}.log").open("wb")
                    background.append(subprocess.Popen(
                        ["bash", "-c", command.rstrip("&").strip()], cwd=root, env=_env(),
                        stdout=log, stderr=subprocess.STDOUT, start_new_session=True))
                    if "va-launch run" in command:
                        _wait_for_replicas(root, tmp_path)
                    continue
                if "va-launch status" in command:
                    seen["status"] = _status(root, command)
                    continue
                done = subprocess.run(["bash", "-c", command], cwd=root, env=_env(),
                                      capture_output=True, text=True, timeout=60)
                assert done.returncode == 0, (command, done.stdout, done.stderr)
                if "cut w1" in command:
                    time.sleep(6)  # the supervisor counts w1 silent, its work moves
                    seen["cut"] = _status(root, "ip netns exec va-sup va-launch status")
        finally:
            for proc in reversed(background):
                _stop(proc)
    status = seen["status"]
    assert "w1" in status and "w2" in status, status
    ocr = [line for line in status.splitlines() if RUNNING_REPLICA.match(line)]
    workers = [line.split()[0] for line in status.splitlines()
               if re.match(r"w[12]\s+connected\s", line)]
    assert sorted(workers) == ["w1", "w2"], status
    assert len(ocr) == 2, status
    # With w1 cut off the pipeline goes on: the supervisor answers, camera and w2 run.
    cut = seen["cut"]
    assert "remote-ocr" in cut and re.search(r"^camera\b.*running", cut, flags=re.M), cut


def _wait_for_replicas(root: Path, tmp_path: Path) -> None:
    """Until status shows both OCR replicas running, each on a worker."""
    deadline = time.monotonic() + 120
    text = ""
    while time.monotonic() < deadline:
        text = _status(root, "ip netns exec va-sup va-launch status")
        rows = [line for line in text.splitlines() if RUNNING_REPLICA.match(line)]
        if len(rows) == 2:
            return
        time.sleep(1)
    logs = "\n".join(p.read_text(errors="replace")[-2000:] for p in tmp_path.glob("bg*.log"))
    raise AssertionError(f"the OCR replicas did not run on the workers:\n{text}\n{logs}")
