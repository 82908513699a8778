"""A pipeline described once, run either as actors or in one process.

:class:`Stage` lists are turned into a pipeline file for the actor runtime
(:func:`supervised`, a real :class:`~va_actors.runtime.supervisor.Supervisor`
with one OS process per stage) or handed to :mod:`bench.inprocess` (every
stage on one asyncio loop). Both run the same plugin classes with the same
parameters.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil
import zmq
import zmq.asyncio

from va_actors.runtime.config import PipelineConfig, load_pipeline
from va_actors.runtime.supervisor import Supervisor
from va_actors.wire import decode

ROOT = Path(__file__).resolve().parents[1]
HOST_MODULE = "va_actors.runtime.host"


@dataclass
class Stage:
    """One plugin instance: ``plugin`` is ``module:Class``; inputs are ``<stage>.<stream>``."""

    name: str
    plugin: str
    inputs: list[str] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (for the in-process runner's spec file)."""
        return asdict(self)


def _toml_value(value: Any) -> str:
    # JSON literals of str / number / bool / list are valid TOML values.
    return json.dumps(value)


def pipeline_toml(name: str, stages: list[Stage], supervisor: dict[str, Any] | None = None) -> str:
    """The pipeline file for ``stages`` (``supervisor``: the ``[supervisor]`` table)."""
    lines = ["[pipeline]", f"name = {_toml_value(name)}", ""]
    if supervisor:
        lines.append("[supervisor]")
        lines += [f"{key} = {_toml_value(value)}" for key, value in supervisor.items()]
        lines.append("")
    for stage in stages:
        lines += ["[[actor]]", f"name = {_toml_value(stage.name)}",
                  f"plugin = {_toml_value(stage.plugin)}"]
        if stage.inputs:
            lines.append(f"inputs = {_toml_value(stage.inputs)}")
        if stage.params:
            body = ", ".join(f"{k} = {_toml_value(v)}" for k, v in stage.params.items())
            lines.append(f"params = {{ {body} }}")
        lines.append("")
    return "\n".join(lines)


def write_pipeline(directory: Path, name: str, stages: list[Stage],
                   supervisor: dict[str, Any] | None = None) -> Path:
    """Write ``<directory>/<name>.toml`` and return its path."""
    path = directory / f"{name}.toml"
    path.write_text(pipeline_toml(name, stages, supervisor))
    return path


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Every complete JSON line of ``path`` (none if it does not exist yet)."""
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        if line.strip().endswith("}"):
            out.append(json.loads(line))
    return out


async def until(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll ``predicate`` every 20 ms until it is truthy; raise TimeoutError naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        await asyncio.sleep(0.02)


def host_processes() -> list[psutil.Process]:
    """Actor hosts that are children of this process."""
    found = []
    for child in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):
            if HOST_MODULE in " ".join(child.cmdline()) and child.status() != "zombie":
                found.append(child)
    return found


class SysListener:
    """Records ``sys.actor`` states and ``sys.epoch`` bumps with their header stamps."""

    def __init__(self, endpoint: str) -> None:
        self.ctx = zmq.asyncio.Context()
        self.sub = self.ctx.socket(zmq.SUB)
        self.sub.setsockopt(zmq.LINGER, 0)
        for topic in (b"sys.actor", b"sys.epoch"):
            self.sub.setsockopt(zmq.SUBSCRIBE, topic)
        self.sub.connect(endpoint)
        self.states: list[dict[str, Any]] = []
        self.epochs: list[dict[str, Any]] = []
        self.task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        while True:
            message = decode(await self.sub.recv_multipart())
            args = {**message.control().args, "ts_ns": message.ts_ns, "recv_ns": time.time_ns()}
            (self.states if message.topic == "sys.actor" else self.epochs).append(args)

    async def close(self) -> None:
        """Stop listening."""
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task
        self.sub.close(0)
        self.ctx.term()


@contextlib.asynccontextmanager
async def supervised(
        config_path: Path, run_dir: Path,
        start_timeout_s: float = 30.0) -> AsyncIterator[tuple[Supervisor, SysListener]]:
    """Run the pipeline with a Supervisor on this loop; yield once started; always reap."""
    config: PipelineConfig = load_pipeline(config_path)
    sup = Supervisor(config, run_dir=run_dir, metrics_interval_s=0.5)
    task = asyncio.create_task(sup.run())
    listener: SysListener | None = None
    try:
        await until(lambda: sup.sys_pub or task.done(), 10, "the supervisor to bind")
        if task.done():
            raise RuntimeError(f"supervisor ended before start: {sup.stop_reason}")
        listener = SysListener(sup.sys_pub)
        if not await sup.wait_started(timeout=start_timeout_s):
            raise RuntimeError(f"pipeline did not start: {sup.stop_reason}")
        yield sup, listener
    finally:
        if not task.done():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(sup.stop("bench finished"), 20)
        if not task.done():
            task.cancel()
        with contextlib.suppress(BaseException):
            await task
        if listener is not None:
            await listener.close()
        leftovers = host_processes()
        for proc in leftovers:
            with contextlib.suppress(psutil.Error):
                proc.kill()
        psutil.wait_procs(leftovers, timeout=5)


@dataclass
class InProcessRun:
    """What ``python -m bench.inprocess`` printed: start time, epoch bumps, drops."""

    started_ns: int
    bumps: list[tuple[int, int]]  # (epoch, time_ns)
    output: str
    returncode: int


def inprocess_command(stages: list[Stage], duration_s: float, workdir: Path,
                      name: str) -> list[str]:
    """The command that runs ``stages`` in one process for ``duration_s``."""
    spec = workdir / f"{name}.inprocess.json"
    spec.write_text(json.dumps({"stages": [s.to_dict() for s in stages],
                                "duration_s": duration_s}))
    return [sys.executable, "-m", "bench.inprocess", str(spec)]


def parse_inprocess(output: str, returncode: int) -> InProcessRun:
    """Read the runner's ``started`` and ``epoch`` lines."""
    started, bumps = 0, []
    for line in output.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == "started":
            started = int(parts[1])
        elif len(parts) == 3 and parts[0] == "epoch":
            bumps.append((int(parts[1]), int(parts[2])))
    return InProcessRun(started, bumps, output, returncode)


def run_inprocess(stages: list[Stage], duration_s: float, workdir: Path,
                  name: str) -> InProcessRun:
    """Run ``stages`` on one asyncio loop in a child process, to the end."""
    cmd = inprocess_command(stages, duration_s, workdir, name)
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True,
                          timeout=duration_s + 60, check=False)
    result = parse_inprocess(proc.stdout, proc.returncode)
    if proc.returncode != 0 or not result.started_ns:
        raise RuntimeError(f"in-process runner failed ({proc.returncode}): "
                           f"{proc.stderr.strip()[-800:]}")
    return result
