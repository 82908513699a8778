"""Managed helper processes of a pipeline: the ``[[service]]`` tables.

A service (e.g. a local LLM server) starts before any actor and stops after
every actor. :class:`Services` starts each one in its own process group
through :mod:`va_actors.runtime.service_exec` (so the kernel kills it if the
supervisor dies), polls its ``health_url`` until it answers 200, and stops
it with SIGTERM, a grace period, then SIGKILL to the whole group.

A service that exits, or is not healthy within ``startup_timeout_s``, is a
:class:`ServiceError` naming it and quoting its last stderr lines; the
supervisor then starts no actor. Services are not restarted: one that exits
while the pipeline runs is reported through ``on_lost``.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import signal
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence

from va_actors.runtime import env_refs
from va_actors.runtime.config import ServiceConfig
from va_actors.runtime.lifeline import child_env

__all__ = ["STATES", "ServiceError", "Services"]

logger = logging.getLogger(__name__)

STATES = ("starting", "running", "exited", "stopped")
"""What ``sys.actor`` shows for a service (the actors' state names)."""
HEALTH_POLL_S = 0.1
HEALTH_REQUEST_TIMEOUT_S = 1.0
TERM_GRACE_S = 5.0
"""After SIGTERM, how long a service gets before SIGKILL."""
KILL_WAIT_S = 5.0
STDERR_TAIL = 20
"""Lines of a service's stderr kept for error messages."""
INTERPRETER_WORD = "python"
"""A command starting with this word runs under the supervisor's own interpreter."""

StateCallback = Callable[[str, str, "int | None", str], None]
"""``(service, state, pid, reason)``: called on every state change."""


class ServiceError(RuntimeError):
    """A service could not be started or never became healthy; the message says which."""


class _Service:
    """One running service: its process, the tail of its stderr, its readers."""

    def __init__(self, config: ServiceConfig) -> None:
        self.config = config
        self.proc: asyncio.subprocess.Process | None = None
        self.tail: collections.deque[str] = collections.deque(maxlen=STDERR_TAIL)
        self.readers: list[asyncio.Task[None]] = []
        self.state = "starting"
        self.reaped = False
        """Stopped and its group killed: never signal that group id again (it may be reused)."""

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    def stderr_text(self) -> str:
        """The last stderr lines, indented, or a note that there were none."""
        if not self.tail:
            return "  (no stderr output)"
        return "\n".join(f"  | {line}" for line in self.tail)


def service_command(command: Sequence[str], python: str = sys.executable) -> list[str]:
    """The argv that runs ``command`` under the parent-death wrapper.

    A leading ``python`` means the supervisor's interpreter, so a pipeline
    file runs ``python -m some.module`` in the project's environment.
    """
    argv = list(command)
    if argv and argv[0] == INTERPRETER_WORD:
        argv[0] = python
    return [python, "-m", "va_actors.runtime.service_exec", *argv]


def service_env(config: ServiceConfig) -> dict[str, str]:
    """The supervisor's environment plus the service's ``env`` (``$VARS`` expanded)."""
    extra = env_refs.expand(config.env, os.environ)
    return {**os.environ, **extra}


def check_health(url: str, timeout: float = HEALTH_REQUEST_TIMEOUT_S) -> bool:
    """One plain GET: True if ``url`` answers 200 (blocking; run it in a thread)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError, ValueError):
        return False


class Services:
    """Starts, watches and stops the services of one pipeline.

    Args:
        configs: the ``[[service]]`` tables in file order.
        on_state: told every state change (for ``sys.actor``).
        on_lost: told when a healthy service exits while the pipeline runs.
        python: interpreter for the wrapper and for a leading ``python``.
        cwd: working directory of the services (the pipeline file's directory;
            None: the supervisor's own).
    """

    def __init__(self, configs: Sequence[ServiceConfig], *,
                 on_state: StateCallback | None = None,
                 on_lost: Callable[[str], None] | None = None,
                 python: str = sys.executable, cwd: str | os.PathLike[str] | None = None
                 ) -> None:
        self._services = [_Service(config) for config in configs]
        self._on_state = on_state
        self._on_lost = on_lost
        self._python = python
        self._cwd = cwd
        self._stopping = False
        self._watchers: list[asyncio.Task[None]] = []

    @property
    def states(self) -> Mapping[str, str]:
        """Current state of each service by name."""
        return {svc.name: svc.state for svc in self._services}

    def pid_of(self, name: str) -> int | None:
        """Pid of the service ``name`` while it runs, else None."""
        for svc in self._services:
            if svc.name == name and svc.alive:
                return svc.pid
        return None

    async def start(self) -> None:
        """Start every service in file order and wait until each is healthy.

        Raises:
            ServiceError: a service could not start, exited, or timed out.
        """
        for svc in self._services:
            await self._spawn(svc)
            await self._wait_healthy(svc)
            self._set_state(svc, "running")
            self._watchers.append(asyncio.create_task(self._watch(svc),
                                                      name=f"service-{svc.name}"))

    async def stop(self) -> None:
        """Stop every service, last started first: SIGTERM, grace, SIGKILL to the group."""
        self._stopping = True
        for svc in reversed(self._services):
            await self._stop_one(svc)
        for task in self._watchers:
            task.cancel()
        await asyncio.gather(*self._watchers, return_exceptions=True)
        for svc in self._services:
            await asyncio.gather(*svc.readers, return_exceptions=True)

    def kill_all(self) -> None:
        """SIGKILL every service group at once (synchronous; for emergencies)."""
        for svc in self._services:
            _signal_group(svc, signal.SIGKILL)

    # -- one service ------------------------------------------------------------------------
    async def _spawn(self, svc: _Service) -> None:
        argv = service_command(svc.config.command, self._python)
        try:
            svc.proc = await asyncio.create_subprocess_exec(
                *argv, env=child_env(service_env(svc.config)), stdin=asyncio.subprocess.DEVNULL,
                cwd=self._cwd,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
                process_group=0)
        except OSError as exc:
            raise ServiceError(f"service {svc.name!r} cannot start: {exc}") from exc
        assert svc.proc.stdout is not None and svc.proc.stderr is not None
        svc.readers = [
            asyncio.create_task(_read_lines(svc.proc.stdout, svc, keep=False)),
            asyncio.create_task(_read_lines(svc.proc.stderr, svc, keep=True))]
        logger.info("started service %s (pid %d): %s; extra env: %s", svc.name, svc.proc.pid,
                    " ".join(svc.config.command), ", ".join(sorted(svc.config.env)) or "none")
        self._set_state(svc, "starting")

    async def _wait_healthy(self, svc: _Service) -> None:
        assert svc.proc is not None
        url = svc.config.health_url
        timeout = svc.config.startup_timeout_s
        deadline = time.monotonic() + timeout
        while True:
            if svc.proc.returncode is not None or (
                    url is None and await _exited_within(svc.proc, HEALTH_POLL_S)):
                await self._fail(svc, f"exited with code {svc.proc.returncode} "
                                      "before it was healthy")
            if url is None or await asyncio.to_thread(check_health, url):
                return
            if time.monotonic() >= deadline:
                await self._fail(svc, f"not healthy at {url} within startup_timeout_s "
                                      f"{timeout:g}")
            await _exited_within(svc.proc, HEALTH_POLL_S)

    async def _fail(self, svc: _Service, what: str) -> None:
        await self._stop_one(svc)
        await asyncio.gather(*svc.readers, return_exceptions=True)
        self._set_state(svc, "exited", what)
        raise ServiceError(f"service {svc.name!r} {what}; last stderr lines:\n"
                           f"{svc.stderr_text()}")

    async def _watch(self, svc: _Service) -> None:
        assert svc.proc is not None
        code = await svc.proc.wait()
        if self._stopping:
            return
        reason = f"exited with code {code} while the pipeline ran"
        logger.error("service %s %s; last stderr lines:\n%s", svc.name, reason,
                     svc.stderr_text())
        self._set_state(svc, "exited", reason)
        if self._on_lost is not None:
            self._on_lost(svc.name)

    async def _stop_one(self, svc: _Service) -> None:
        if svc.proc is None or svc.reaped:
            return
        if svc.alive:
            _signal_group(svc, signal.SIGTERM)
            if not await _exited_within(svc.proc, TERM_GRACE_S):
                logger.warning("service %s did not stop within %g s of SIGTERM; killing it",
                               svc.name, TERM_GRACE_S)
                _signal_group(svc, signal.SIGKILL)
                if not await _exited_within(svc.proc, KILL_WAIT_S):
                    logger.error("service %s (pid %s) survived SIGKILL", svc.name, svc.pid)
        _signal_group(svc, signal.SIGKILL)  # helpers it left behind in its group
        svc.reaped = True
        if svc.state == "running":
            self._set_state(svc, "stopped", "stopped")

    def _set_state(self, svc: _Service, state: str, reason: str = "") -> None:
        svc.state = state
        if self._on_state is not None:
            self._on_state(svc.name, state, svc.pid, reason)


async def _read_lines(stream: asyncio.StreamReader, svc: _Service, *, keep: bool) -> None:
    """Drain a pipe line by line (a full pipe would block the service); keep stderr's tail."""
    while line := await stream.readline():
        text = line.decode(errors="replace").rstrip()
        if keep:
            svc.tail.append(text)
            logger.debug("[%s] %s", svc.name, text)
        else:
            logger.info("[%s] %s", svc.name, text)


async def _exited_within(proc: asyncio.subprocess.Process, seconds: float) -> bool:
    try:
        await asyncio.wait_for(asyncio.shield(proc.wait()), seconds)
    except TimeoutError:
        return False
    return True


def _signal_group(svc: _Service, signum: int) -> None:
    if svc.pid is None or svc.reaped:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(svc.pid, signum)
