"""Running pipelines in tests: a supervisor on the test's loop, logs, and reaping.

Shared by the runtime tests: :func:`supervising` runs a pipeline and always
reaps its actor processes, also when the test fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import psutil
import zmq
import zmq.asyncio

from va_actors.runtime.config import PipelineConfig, load_pipeline
from va_actors.runtime.supervisor import Supervisor
from va_actors.wire import decode

ROOT = Path(__file__).resolve().parents[2]
HOST_MODULE = "va_actors.runtime.host"

TONE = """
[[actor]]
name = "mic"
plugin = "tests.actors.tone:ToneSource"
"""


def sink(path: Path, inputs: str = "mic.audio", name: str = "sink") -> str:
    return f"""
[[actor]]
name = "{name}"
plugin = "tests.actors.record:RecordingSink"
inputs = ["{inputs}"]
params = {{ path = "{path}" }}
"""


def load(tmp_path: Path, body: str) -> PipelineConfig:
    path = tmp_path / "pipeline.toml"
    path.write_text(body)
    return load_pipeline(path)


def records(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    lines = path.read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip().endswith("}")]


def data(path: Path) -> list[dict[str, Any]]:
    return [r for r in records(path) if "topic" in r]


async def until(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll ``predicate`` until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.05)


def host_processes() -> list[psutil.Process]:
    """Actor hosts that are children of this test process."""
    found = []
    for child in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):
            if HOST_MODULE in " ".join(child.cmdline()) and child.status() != "zombie":
                found.append(child)
    return found


def kill_all(processes: list[psutil.Process]) -> None:
    for proc in processes:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    psutil.wait_procs(processes, timeout=5)


class StateLog:
    """Everything published on ``sys.actor`` (and ``sys.metrics``) while it listens."""

    def __init__(self, endpoint: str) -> None:
        self.ctx = zmq.asyncio.Context()
        self.sub = self.ctx.socket(zmq.SUB)
        self.sub.setsockopt(zmq.LINGER, 0)
        self.sub.setsockopt(zmq.SUBSCRIBE, b"sys.actor")
        self.sub.setsockopt(zmq.SUBSCRIBE, b"sys.epoch")
        self.sub.connect(endpoint)
        self.states: list[dict[str, Any]] = []
        self.epochs: list[dict[str, Any]] = []
        self.task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        while True:
            message = decode(await self.sub.recv_multipart())
            args = message.control().args
            (self.states if message.topic == "sys.actor" else self.epochs).append(args)

    def of(self, instance: str) -> list[dict[str, Any]]:
        return [s for s in self.states if s["instance"] == instance]

    async def wait(self, instance: str, state: str, timeout: float = 15.0,
                   **match: Any) -> dict[str, Any]:
        def found() -> dict[str, Any] | None:
            for s in self.of(instance):
                if s["state"] == state and all(s.get(k) == v for k, v in match.items()):
                    return s
            return None
        result: dict[str, Any] = await until(found, timeout, f"{instance} {state} {match}")
        return result

    async def close(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task
        self.sub.close(0)
        self.ctx.term()


@contextlib.asynccontextmanager
async def supervising(config: PipelineConfig, tmp_path: Path,
                      start: bool = True) -> AsyncIterator[tuple[Supervisor, StateLog]]:
    """Run ``config``; yield once started (with a sys.actor listener); always reap."""
    sup = Supervisor(config, run_dir=tmp_path / "run", metrics_interval_s=0.2)
    task = asyncio.create_task(sup.run())
    log: StateLog | None = None
    try:
        await until(lambda: sup.sys_pub or task.done(), 10, "the supervisor to bind")
        log = StateLog(sup.sys_pub)
        if start:
            assert await sup.wait_started(timeout=20), sup.stop_reason
        yield sup, log
    finally:
        if not task.done():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(sup.stop("test finished"), 20)
        if not task.done():
            task.cancel()
        with contextlib.suppress(BaseException):
            await task
        if log is not None:
            await log.close()
        leftovers = host_processes()
        kill_all(leftovers)
        assert not leftovers, f"orphan actor processes: {[p.pid for p in leftovers]}"


def tone_echo_sink(tmp_path: Path, *, rate: int = 16000, channels: int = 1) -> Path:
    """Write a real-time tone -> echo -> recording sink pipeline; return its path."""
    path = tmp_path / "pipeline.toml"
    path.write_text(f"""
[[actor]]
name = "mic"
plugin = "tests.actors.tone:ToneSource"
params = {{ rate = {rate}, channels = {channels}, realtime = true }}

[[actor]]
name = "echo"
plugin = "tests.actors.echo:Echo"
inputs = ["mic.audio"]

[[actor]]
name = "sink"
plugin = "tests.actors.record:RecordingSink"
inputs = ["echo.out"]
params = {{ path = "{tmp_path / 'rec.jsonl'}" }}
""")
    return path

