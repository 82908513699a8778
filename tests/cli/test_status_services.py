"""``va-launch status`` lists the pipeline's ``[[service]]`` processes too.

A real pipeline with a real service (Python's own HTTP server as a stand-in
for the LLM server: what matters is a managed process with a health URL).
"""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from pathlib import Path

import psutil

from tests.cli.test_tap_status import Running, launch, pipeline_toml
from va_actors.cli.status import collect_services

__all__ = ["launch"]  # the fixture, shared with test_tap_status


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _with_service(rec: Path, port: int, directory: Path) -> str:
    return pipeline_toml(rec) + f"""
[[service]]
name = "web"
command = ["python", "-m", "http.server", "{port}", "--bind", "127.0.0.1",
           "--directory", "{directory}"]
health_url = "http://127.0.0.1:{port}/"
startup_timeout_s = 20
"""


def test_status_shows_each_service_with_pid_state_and_live_health(
        launch: Callable[..., Running], tmp_path: Path) -> None:
    port = _free_port()
    running = launch(_with_service(tmp_path / "rec.jsonl", port, tmp_path))
    result = running.cli("status", "--json", "--run-dir", str(running.run_dir))
    assert result.returncode == 0, result.stderr
    services = json.loads(result.stdout)["services"]
    assert [s["name"] for s in services] == ["web"]
    web = services[0]
    assert web["state"] == "running" and web["health"] == "ok", web
    # The pid is the service's own process (under the parent-death wrapper).
    cmdline = " ".join(psutil.Process(web["pid"]).cmdline())
    assert "http.server" in cmdline and str(port) in cmdline

    table = running.cli("status", "--run-dir", str(running.run_dir)).stdout.splitlines()
    header = table.index(next(line for line in table if line.startswith("SERVICE")))
    assert table[header].split() == ["SERVICE", "PID", "STATE", "HEALTH"]
    row = table[header + 1].split()
    assert row[:4] == ["web", str(web["pid"]), "running", "ok"]
    assert f"http://127.0.0.1:{port}/" in table[header + 1]


def test_a_service_whose_health_url_does_not_answer_is_failing() -> None:
    port = _free_port()  # nothing listens there
    metrics = {"services": [
        {"name": "llm", "pid": 1, "state": "running",
         "health_url": f"http://127.0.0.1:{port}/health"},
        {"name": "helper", "pid": 2, "state": "running", "health_url": None},
        {"name": "gone", "pid": None, "state": "exited",
         "health_url": f"http://127.0.0.1:{port}/health"}]}
    rows = {row["name"]: row for row in collect_services(metrics)}
    assert rows["llm"]["health"] == "failing"
    assert rows["helper"]["health"] is None  # no URL: nothing to check
    assert rows["gone"]["health"] is None  # not running: not asked
    assert collect_services(None) == [] and collect_services({"instances": {}}) == []
