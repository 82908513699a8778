"""The warm pool: pre-started hosts that have already imported, built and started their plugin.

A watcher that needs a process for an actor (a new session's instance, or a
restart after a crash) takes a ready spare from the pool instead of paying
Python's imports and the model load; the pool then starts a replacement in
the background. Spares are started one at a time, and while the machine is
not busy (CPU under ``refill_cpu_percent`` over the last half second, or
after at most 20 s of waiting): loading a model next to a conversation
would slow its replies more than a cold restart ever costs.

Each spare is ``python -m va_actors.runtime.host --warm WARM.json``
(:mod:`va_actors.runtime.host.warm`): it says ``ready`` on its stdout once
prepared and becomes the instance whose spec path it reads on its stdin.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from va_actors.core.backoff import Backoff
from va_actors.runtime import env_refs
from va_actors.runtime.config import ActorConfig
from va_actors.runtime.exits import EXIT_CONFIG
from va_actors.runtime.host.warm import WarmSpec
from va_actors.runtime.lifeline import child_env

__all__ = ["READY_TIMEOUT_S", "Spare", "WarmPool"]

logger = logging.getLogger("va_actors.runtime.supervisor")

READY_TIMEOUT_S = 120.0
"""A spare that is not ready this long after it was started is killed."""
REFILL_CPU_PERCENT = 50.0
"""Start a spare only while the machine's CPU (all cores) is below this..."""
REFILL_DEFER_MAX_S = 20.0
"""... or once it has waited this long (a machine that is never quiet still gets spares)."""
QUIET_CHECK_S = 0.5


@dataclass
class Spare:
    """One warm process and the actor it was prepared for."""

    key: str
    proc: asyncio.subprocess.Process

    async def assign(self, spec_path: Path) -> None:
        """Hand the spare the spec of the instance it becomes."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"{spec_path}\n".encode())
        await self.proc.stdin.drain()
        self.proc.stdin.close()


@dataclass
class _Slot:
    """Spares wanted and held for one actor."""

    actor: ActorConfig
    wanted: int
    ready: list[Spare] = field(default_factory=list)
    failed: str = ""
    """Why this actor cannot be warmed (a configuration error): no more tries."""


def _key(actor: ActorConfig) -> str:
    return json.dumps([actor.name, actor.plugin, actor.category.value, actor.params,
                       dict(actor.env), actor.host_python("")], sort_keys=True, default=str)


class WarmPool:
    """Keeps ``wanted`` ready spares per actor; :meth:`take` hands one out.

    Args:
        python: interpreter of the hosts whose actor has no environment of its
            own (one that has is warmed on its environment's interpreter).
        cwd: their working directory (the pipeline file's).
        directory: where the warm specs are written (a run directory).
        log_level: the hosts' log level.
    """

    def __init__(self, python: str, cwd: Path, directory: Path, log_level: str = "INFO", *,
                 refill_cpu_percent: float = REFILL_CPU_PERCENT,
                 busy: Callable[[float], float] | None = None) -> None:
        self._python = python
        self.refill_cpu_percent = refill_cpu_percent
        self._busy = busy or _cpu_percent
        self._cwd = cwd
        self._dir = directory
        self._log_level = log_level
        self._slots: dict[str, _Slot] = {}
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._starting: Spare | None = None
        self.handed_out = 0

    def want(self, actor: ActorConfig, count: int) -> None:
        """Keep ``count`` spares of ``actor`` ready (more calls raise it, never lower it)."""
        if count <= 0 or actor.replicas > 1:
            return  # replicas restart behind their dispatcher; not pooled yet
        slot = self._slots.setdefault(_key(actor), _Slot(actor, 0))
        slot.wanted = max(slot.wanted, count)
        self._changed.set()

    def ready(self, actor: ActorConfig) -> int:
        """Spares of ``actor`` ready now."""
        slot = self._slots.get(_key(actor))
        return 0 if slot is None else len(slot.ready)

    @property
    def size(self) -> int:
        """Spares ready now, over every actor."""
        return sum(len(slot.ready) for slot in self._slots.values())

    @property
    def target(self) -> int:
        """Spares wanted, over every actor."""
        return sum(slot.wanted for slot in self._slots.values() if not slot.failed)

    def take(self, actor: ActorConfig) -> Spare | None:
        """A ready spare for ``actor``, or None (then start one cold); refills in the background."""
        slot = self._slots.get(_key(actor))
        while slot is not None and slot.ready:
            spare = slot.ready.pop(0)
            self._changed.set()
            if spare.proc.returncode is None:
                self.handed_out += 1
                return spare
        return None

    def start(self) -> None:
        """Start filling the pool in the background."""
        if self._task is None:
            self._task = asyncio.create_task(self._fill(), name="warm-pool")

    async def close(self) -> None:
        """Let every spare go: an empty stdin ends it; kill what is left after a grace."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        spares = [s for slot in self._slots.values() for s in slot.ready]
        if self._starting is not None:
            spares.append(self._starting)
        for slot in self._slots.values():
            slot.ready.clear()
        for spare in spares:
            with contextlib.suppress(Exception):
                if spare.proc.stdin is not None:
                    spare.proc.stdin.close()
        for spare in spares:
            try:
                await asyncio.wait_for(spare.proc.wait(), 2.0)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(spare.proc.pid, signal.SIGKILL)
                await spare.proc.wait()

    # -- filling ---------------------------------------------------------------------
    def _missing(self) -> _Slot | None:
        for slot in self._slots.values():
            slot.ready = [s for s in slot.ready if s.proc.returncode is None]
            if not slot.failed and len(slot.ready) < slot.wanted:
                return slot
        return None

    async def _fill(self) -> None:
        backoff = Backoff(initial=0.5, cap=30.0, max_attempts=None)
        failures = 0
        while True:
            slot = self._missing()
            if slot is None:
                self._changed.clear()
                await self._changed.wait()
                continue
            await self._quiet()
            spare = await self._start_one(slot)
            if spare is not None:
                slot.ready.append(spare)
                failures = 0
                continue
            failures += 1
            await asyncio.sleep(backoff.delay(failures - 1))

    async def _quiet(self) -> None:
        """Wait until the machine is not busy (a spare loads a model at full speed)."""
        waited = 0.0
        while waited < REFILL_DEFER_MAX_S and \
                (await asyncio.to_thread(self._busy, QUIET_CHECK_S)) >= self.refill_cpu_percent:
            waited += QUIET_CHECK_S

    async def _start_one(self, slot: _Slot) -> Spare | None:
        actor = slot.actor
        path = self._dir / f"{actor.name}.warm.json"
        WarmSpec(actor=actor.name, plugin=actor.plugin, category=actor.category.value,
                 params=dict(actor.params), pipeline_dir=str(self._cwd),
                 log_level=self._log_level).write(path)
        env = child_env({**os.environ, **env_refs.expand(actor.env, os.environ)})
        proc = await asyncio.create_subprocess_exec(
            # An actor with its own environment is warmed there, as it runs cold.
            actor.host_python(self._python), "-m", "va_actors.runtime.host", "--warm",
            str(path), env=env,
            cwd=self._cwd, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            process_group=0)
        # Tracked while it starts: a close() now (which cancels this) still ends it.
        spare = self._starting = Spare(_key(actor), proc)
        try:
            assert proc.stdout is not None
            line = await asyncio.wait_for(proc.stdout.readline(), READY_TIMEOUT_S)
        except TimeoutError:
            line = b""
        self._starting = None
        if line.strip() == b"ready":
            return spare
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        code = await proc.wait()
        if code == EXIT_CONFIG:
            slot.failed = f"warm host for {actor.name} exited with a configuration error"
            logger.error("%s; it will be started cold", slot.failed)
        else:
            logger.warning("warm host for %s did not get ready (exit %s); retrying",
                           actor.name, code)
        return None


def _cpu_percent(interval: float) -> float:
    """The machine's CPU over ``interval`` seconds, all cores (blocking: run in a thread)."""
    return float(psutil.cpu_percent(interval=interval))
