"""The host's tasks: plugin work, whose failure is reported, and critical tasks, whose
failure ends the host (an input dispatcher that died would starve the plugin)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Iterable
from typing import Any

__all__ = ["HostTasks"]


class HostTasks:
    """Every task the host runs, so that shutdown can cancel them all.

    Args:
        instance: the instance's name (tasks are named after it).
        on_failure: told a plugin task's exception and its context.
    """

    def __init__(self, instance: str, on_failure: Callable[[BaseException, str], None]) -> None:
        self._instance = instance
        self._on_failure = on_failure
        self.tasks: set[asyncio.Task[Any]] = set()
        self.fatal: asyncio.Future[None] | None = None
        """Set by the host's run(): a critical task's failure is set on it."""

    def spawn(self, coro: Coroutine[Any, Any, Any], context: str) -> asyncio.Task[Any]:
        """Run plugin work as a task; an exception goes to ``on_failure``, nothing stops."""
        task = asyncio.get_running_loop().create_task(coro, name=f"{self._instance}:{context}")
        self.tasks.add(task)
        task.add_done_callback(lambda t: self._task_done(t, context))
        return task

    def critical(self, loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, None],
                 name: str) -> None:
        """Run ``coro`` on ``loop`` as a task whose failure ends the host (``fatal``)."""
        task = loop.create_task(coro, name=name)
        self.tasks.add(task)
        task.add_done_callback(self._critical_done)

    def adopt(self, tasks: Iterable[asyncio.Task[Any]]) -> None:
        """Track tasks started elsewhere (a warm plugin's), to cancel them at exit."""
        self.tasks.update(t for t in tasks if not t.done())

    def _task_done(self, task: asyncio.Task[Any], context: str) -> None:
        self.tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            self._on_failure(exc, context)

    def _critical_done(self, task: asyncio.Task[Any]) -> None:
        self.tasks.discard(task)
        if task.cancelled() or self.fatal is None or self.fatal.done():
            return
        exc = task.exception()
        if exc is not None:
            self.fatal.set_exception(exc)
