"""Running a pipeline inside a test or a benchmark.

:func:`supervised` runs a real :class:`~va_actors.runtime.supervisor.Supervisor`
on the caller's event loop (one OS process per actor, as under ``va-launch``),
yields once every actor is running, and always stops the pipeline and reaps
its processes, also when the caller fails. :class:`SysLog` records what the
supervisor publishes on ``sys.actor`` and ``sys.epoch``. The rest are the
small helpers such code needs: polling with a deadline, finding and killing
child processes, reading a JSON-lines log.

    async with supervised(load_pipeline("pipeline.toml"), tmp_path / "run") as (sup, log):
        await log.wait("stt", "running")
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import psutil
import zmq
import zmq.asyncio

from va_actors.runtime.config import PipelineConfig
from va_actors.runtime.supervisor import Supervisor
from va_actors.wire import decode

__all__ = [
    "HOST_MODULE",
    "SysLog",
    "children_running",
    "free_port",
    "host_processes",
    "kill_all",
    "pipeline_copy_text",
    "read_jsonl",
    "run_launch",
    "supervised",
    "until",
]

HOST_MODULE = "va_actors.runtime.host"
"""What every actor process's command line contains."""


_PATH_VALUE = re.compile(r'(\b(?:path|environment)\s*=\s*")([^"]*)(")')


def pipeline_copy_text(path: Path) -> str:
    """The text of the pipeline file ``path``, ready to be written somewhere else.

    Relative paths in a pipeline file are taken from its own directory, so a
    variant a test writes into ``tmp_path`` would look for ``assets/...``
    there. Every relative ``path = "..."`` and ``environment = "..."`` value
    is made absolute (normalised,
    so ``../out/x.wav`` next to ``launch/`` reads ``<repo>/out/x.wav``).
    """
    base = path.resolve().parent

    def absolute(match: re.Match[str]) -> str:
        value = match.group(2)
        if not value or value.startswith(("/", "~", "$")):
            return match.group(0)
        return f"{match.group(1)}{os.path.normpath(base / value)}{match.group(3)}"

    return _PATH_VALUE.sub(absolute, path.read_text())


async def until(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll ``predicate`` every 20 ms until it returns something truthy, and return that.

    Raises:
        TimeoutError: not within ``timeout`` seconds; the message names ``what``.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}")
        await asyncio.sleep(0.02)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now (for a test's own server)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def children_running(marker: str) -> list[psutil.Process]:
    """Live descendants of this process whose command line contains ``marker``."""
    found = []
    for child in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):
            if marker in " ".join(child.cmdline()) and child.status() != "zombie":
                found.append(child)
    return found


def host_processes() -> list[psutil.Process]:
    """Actor hosts that are descendants of this process."""
    return children_running(HOST_MODULE)


def kill_all(processes: list[psutil.Process]) -> None:
    """SIGKILL ``processes`` and wait (up to 5 s) until they are gone."""
    for proc in processes:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    psutil.wait_procs(processes, timeout=5)


def stop_group(proc: subprocess.Popen[Any], signum: int = signal.SIGTERM,
               timeout: float = 15.0) -> None:
    """Stop ``proc``'s process group (started with ``start_new_session=True``).

    ``signum`` first (SIGINT or SIGTERM: a graceful stop), SIGKILL after
    ``timeout`` seconds; always waits for ``proc``.
    """
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signum)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)


def run_launch(pipeline: Path, timeout: float, cwd: Path) -> tuple[int, str]:
    """``va-launch run pipeline`` in ``cwd``: (exit code, stdout and stderr together).

    Past ``timeout`` the launcher and every process under it are killed, and
    the exit code is the launcher's (negative: killed); they are also reaped
    when the caller is interrupted.
    """
    proc = subprocess.Popen([sys.executable, "-m", "va_actors.cli.main", "run", str(pipeline)],
                            cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    launcher = psutil.Process(proc.pid)
    out = b""
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        pass
    finally:
        if proc.poll() is None:
            with contextlib.suppress(psutil.Error):
                kill_all([*launcher.children(recursive=True), launcher])
            rest, _ = proc.communicate()
            out += rest
    return proc.returncode, out.decode(errors="replace")


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The complete JSON lines of ``path`` (none if it does not exist yet).

    A line still being written by another process is left out.
    """
    if not path.exists():
        return []
    lines = path.read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip().endswith("}")]


class SysLog:
    """Everything published on ``sys.actor`` and ``sys.epoch`` while it listens.

    Each entry is the control message's arguments plus ``ts_ns`` (when the
    supervisor published it) and ``recv_ns`` (when it arrived here).
    """

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

    def of(self, instance: str) -> list[dict[str, Any]]:
        """The state reports of one instance, in order."""
        return [s for s in self.states if s["instance"] == instance]

    async def wait(self, instance: str, state: str, timeout: float = 15.0,
                   **match: Any) -> dict[str, Any]:
        """The first report of ``instance`` in ``state`` (with fields equal to ``match``)."""
        def found() -> dict[str, Any] | None:
            for s in self.of(instance):
                if s["state"] == state and all(s.get(k) == v for k, v in match.items()):
                    return s
            return None
        result: dict[str, Any] = await until(found, timeout, f"{instance} {state} {match}")
        return result

    async def close(self) -> None:
        """Stop listening."""
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task
        self.sub.close(0)
        self.ctx.term()


@contextlib.asynccontextmanager
async def supervised(config: PipelineConfig, run_dir: Path, *, start: bool = True,
                     start_timeout_s: float = 20.0, metrics_interval_s: float = 0.2,
                     ) -> AsyncIterator[tuple[Supervisor, SysLog]]:
    """Run ``config``; yield the supervisor and a :class:`SysLog`; always stop and reap.

    With ``start`` it yields once every actor is running. On the way out the
    pipeline is stopped (20 s deadline); actor processes still alive after
    that are killed and reported.

    Raises:
        RuntimeError: the pipeline did not start, or actor processes outlived it.
    """
    sup = Supervisor(config, run_dir=run_dir, metrics_interval_s=metrics_interval_s)
    task = asyncio.create_task(sup.run())
    log: SysLog | None = None
    try:
        await until(lambda: sup.sys_pub or task.done(), 10, "the supervisor to bind")
        if task.done():
            raise RuntimeError(f"the supervisor ended before starting: {sup.stop_reason}")
        log = SysLog(sup.sys_pub)
        if start and not await sup.wait_started(timeout=start_timeout_s):
            raise RuntimeError(f"the pipeline did not start: {sup.stop_reason}")
        yield sup, log
    finally:
        if not task.done():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(sup.stop("finished"), 20)
        if not task.done():
            task.cancel()
        with contextlib.suppress(BaseException):
            await task
        if log is not None:
            await log.close()
        leftovers = host_processes()
        kill_all(leftovers)
    if leftovers:
        raise RuntimeError(f"actor processes outlived the pipeline: "
                           f"{[p.pid for p in leftovers]}")
