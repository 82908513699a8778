"""Pipeline services: started before the actors, healthy first, stopped last, never orphaned.

The services here are small Python scripts written into ``tmp_path`` (a
stdlib HTTP server with ``/health``); every process a test starts is reaped
in a ``finally`` or fixture, also when the test fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from tests.runtime.harness import (
    TONE,
    SysLog,
    children_running,
    host_processes,
    kill_all,
    load,
    sink,
    until,
)
from va_actors.runtime import rundir
from va_actors.runtime.services import Services, check_health, service_command
from va_actors.runtime.supervisor import Supervisor, SupervisorError
from va_actors.testing import free_port

ROOT = Path(__file__).resolve().parents[2]

HEALTH_SERVER = '''
import http.server, signal, sys, time
log = open(sys.argv[2], "a", buffering=1)
def on_term(signum, frame):
    log.write("term\\n")
    sys.exit(0)
signal.signal(signal.SIGTERM, on_term)
time.sleep(float(sys.argv[3]))
class Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if self.path == "/health" else 404)
        self.end_headers()
    def log_message(self, *args):
        pass
server = http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Health)
log.write("listening\\n")
print("service up", flush=True)
server.serve_forever()
'''


def service_table(name: str, command: list[str], *, health_url: str | None = None,
                  timeout_s: float = 10.0, env: str = "") -> str:
    words = ", ".join(f'"{word}"' for word in command)
    url = f'health_url = "{health_url}"\n' if health_url else ""
    extra = f"env = {{ {env} }}\n" if env else ""
    return (f'\n[[service]]\nname = "{name}"\ncommand = [{words}]\n{url}'
            f"startup_timeout_s = {timeout_s}\n{extra}")


def health_service(tmp_path: Path, port: int, delay_s: float = 0.0) -> list[str]:
    script = tmp_path / "health_server.py"
    script.write_text(HEALTH_SERVER)
    return ["python", str(script), str(port), str(tmp_path / "service.log"), str(delay_s)]


@pytest.fixture
def reap_services() -> Iterator[None]:
    """Kill any service or actor process a test left behind, and fail on one."""
    yield
    leftovers = children_running("va_actors.runtime.service_exec") + \
        children_running("health_server.py") + host_processes()
    kill_all(leftovers)
    assert not leftovers, f"orphan processes: {[p.pid for p in leftovers]}"


def test_service_command_runs_python_through_the_parent_death_wrapper() -> None:
    argv = service_command(["python", "-m", "x"], python="/py")
    assert argv == ["/py", "-m", "va_actors.runtime.service_exec", "/py", "-m", "x"]
    assert service_command(["srv", "--port", "1"], python="/py")[3:] == ["srv", "--port", "1"]


def test_check_health_is_false_for_a_closed_port() -> None:
    assert not check_health(f"http://127.0.0.1:{free_port()}/health", timeout=0.5)


@pytest.mark.usefixtures("reap_services")
async def test_a_service_is_healthy_before_the_actors_start_and_stops_after_them(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="va_actors")
    port = free_port()
    body = service_table("helper", health_service(tmp_path, port, delay_s=0.8),
                         health_url=f"http://127.0.0.1:{port}/health",
                         env='SERVICE_TOKEN = "s3cret"')
    config = load(tmp_path, body + TONE + sink(tmp_path / "rec.jsonl"))
    sup = Supervisor(config, run_dir=tmp_path / "run", metrics_interval_s=0.2)
    task = asyncio.create_task(sup.run())
    log: SysLog | None = None
    try:
        await until(lambda: sup.sys_pub or task.done(), 10, "the supervisor to bind")
        log = SysLog(sup.sys_pub)
        assert await sup.wait_started(timeout=15), sup.stop_reason
        assert check_health(f"http://127.0.0.1:{port}/health")
        await log.wait("helper", "running")
        await sup.stop("test finished")
        await log.wait("helper", "stopped")
        assert await task == 0
    finally:
        if not task.done():
            task.cancel()
        with contextlib.suppress(BaseException):
            await task
        if log is not None:
            await log.close()
    order = [(s["instance"], s["state"]) for s in log.states]
    service_up = order.index(("helper", "running"))
    first_actor = min(i for i, (name, _) in enumerate(order) if name != "helper")
    assert service_up < first_actor, order
    actors_stopped = max(i for i, (name, state) in enumerate(order)
                         if name != "helper" and state == "stopped")
    assert actors_stopped < order.index(("helper", "stopped")), order
    assert (tmp_path / "service.log").read_text().split() == ["listening", "term"]
    assert not check_health(f"http://127.0.0.1:{port}/health", timeout=0.5)
    assert "SERVICE_TOKEN" in caplog.text and "s3cret" not in caplog.text


@pytest.mark.usefixtures("reap_services")
async def test_a_service_that_exits_at_once_fails_the_pipeline_before_any_actor(
        tmp_path: Path) -> None:
    crash = ["python", "-c",
             "import sys; print('boom: no model here', file=sys.stderr); sys.exit(3)"]
    body = service_table("broken", crash, health_url="http://127.0.0.1:1/health")
    config = load(tmp_path, body + TONE + sink(tmp_path / "rec.jsonl"))
    sup = Supervisor(config, run_dir=tmp_path / "run")
    with pytest.raises(SupervisorError) as caught:
        await asyncio.wait_for(sup.run(), 15)
    message = str(caught.value)
    assert "service 'broken' exited with code 3" in message
    assert "boom: no model here" in message
    assert all(item.pid is None for item in sup.status().instances)
    assert not (tmp_path / "rec.jsonl").exists()
    assert not (tmp_path / "run").exists()


@pytest.mark.usefixtures("reap_services")
async def test_a_service_that_never_becomes_healthy_times_out_with_a_clear_error(
        tmp_path: Path) -> None:
    hang = ["python", "-c", "import sys, time; print('warming up forever', file=sys.stderr, "
            "flush=True); time.sleep(60)"]
    body = service_table("sleepy", hang, health_url=f"http://127.0.0.1:{free_port()}/health",
                         timeout_s=1.0)
    config = load(tmp_path, body + TONE + sink(tmp_path / "rec.jsonl"))
    sup = Supervisor(config, run_dir=tmp_path / "run")
    started = time.monotonic()
    with pytest.raises(SupervisorError) as caught:
        await asyncio.wait_for(sup.run(), 15)
    assert time.monotonic() - started < 10
    message = str(caught.value)
    assert "service 'sleepy' not healthy" in message
    assert "within startup_timeout_s 1" in message
    assert "warming up forever" in message
    assert all(item.pid is None for item in sup.status().instances)


@pytest.mark.usefixtures("reap_services")
async def test_services_without_a_health_url_run_and_are_stopped_by_sigterm(
        tmp_path: Path) -> None:
    config = load(tmp_path, service_table("plain", health_service(tmp_path, free_port())) +
                  TONE + sink(tmp_path / "rec.jsonl"))
    states: list[tuple[str, str]] = []
    services = Services(config.services, on_state=lambda n, s, p, r: states.append((n, s)))
    try:
        await services.start()
        pid = services.pid_of("plain")
        assert pid is not None and psutil.pid_exists(pid)
    finally:
        await services.stop()
    assert states == [("plain", "starting"), ("plain", "running"), ("plain", "stopped")]
    assert services.pid_of("plain") is None


def test_sigkill_of_the_supervisor_takes_its_services_down(tmp_path: Path) -> None:
    port = free_port()
    body = service_table("helper", health_service(tmp_path, port),
                         health_url=f"http://127.0.0.1:{port}/health")
    pipeline = tmp_path / "pipeline.toml"
    pipeline.write_text(body + TONE + sink(tmp_path / "rec.jsonl"))
    run_dir = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "va_actors.cli.main", "run", str(pipeline),
                             "--run-dir", str(run_dir), "--quiet"], cwd=ROOT,
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    family: list[psutil.Process] = []
    try:
        deadline = time.monotonic() + 15
        while not check_health(f"http://127.0.0.1:{port}/health", timeout=0.5):
            assert time.monotonic() < deadline, "the service never became healthy"
            time.sleep(0.05)
        family = psutil.Process(proc.pid).children(recursive=True)
        service = [p for p in family if "health_server.py" in " ".join(p.cmdline())]
        assert service, "the service is not a child of the supervisor"
        proc.send_signal(signal.SIGKILL)
        proc.wait(5)
        _gone, alive = psutil.wait_procs(service, timeout=5)
        assert not alive, "the service outlived a SIGKILLed supervisor"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
        kill_all(family)
        with contextlib.suppress(rundir.RunDirError, OSError):
            rundir.remove_run_dir(run_dir)
