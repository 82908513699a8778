"""Warm hosts: a process that has imported, built and started its plugin before it is needed.

``python -m va_actors.runtime.host --warm WARM.json`` resolves the plugin,
creates it (unless its params name session variables: then only the import
is paid in advance) and runs the driver's ``start()`` (where our plugins load
their models) plus the plugin's ``warmup()`` hook if it has one, as Vision
Agents' Warmable and LiveKit's prewarm do. It then writes ``ready`` on its
stdout and waits for one line on stdin: the path of the :class:`ActorSpec` of
the instance it becomes (a new session's actor, or a restart). An empty stdin
(the pool shrinking) ends it.

Until the real host exists, the driver talks to a :class:`HostProxy` that
keeps what the plugin publishes (bounded) and hands it over on
:meth:`HostProxy.attach`.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import os
from collections import deque
from collections.abc import Coroutine
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from va_actors.core.events.base import PluginErrorEvent
from va_actors.runtime import drivers, env_refs, plugins
from va_actors.runtime.categories import Category
from va_actors.runtime.session_vars import SESSION_PREFIX

if TYPE_CHECKING:
    from va_actors.runtime.host.actor_host import ActorHost
    from va_actors.runtime.spec import ActorSpec

__all__ = ["PENDING_LIMIT", "HostProxy", "Prepared", "WarmError", "WarmSpec", "prepare"]

logger = logging.getLogger("va_actors.runtime.host")

PENDING_LIMIT = 256
"""Messages a warm plugin may publish before it is attached (the oldest are dropped)."""


class WarmError(Exception):
    """The plugin cannot be prepared (wrong reference or params); exit with 78."""


@dataclass(frozen=True)
class WarmSpec:
    """What a warm host prepares: an actor's plugin, as its pipeline file names it."""

    actor: str
    plugin: str
    category: str
    params: dict[str, Any] = field(default_factory=dict)
    pipeline_dir: str | None = None
    log_level: str = "INFO"

    def write(self, path: str | os.PathLike[str]) -> None:
        """Write the spec as JSON."""
        Path(path).write_text(json.dumps(asdict(self), sort_keys=True) + "\n", encoding="utf-8")

    @classmethod
    def read(cls, path: str | os.PathLike[str]) -> WarmSpec:
        """Read a spec :meth:`write` wrote (WarmError if it is not one)."""
        try:
            return cls(**json.loads(Path(path).read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError) as exc:
            raise WarmError(f"cannot read warm spec {os.fspath(path)!r}: {exc}") from exc

    @property
    def session_specific(self) -> bool:
        """The params name ``VA_SESSION_*`` variables: the plugin is built per session."""
        return any(ref.name.startswith(SESSION_PREFIX)
                   for ref in env_refs.references(self.params))


class HostProxy:
    """The host a warm driver talks to: holds its output until the real host is attached."""

    def __init__(self, actor: str) -> None:
        self.actor = actor
        self.instance = actor
        self._target: ActorHost | None = None
        self._pending: deque[tuple[str, Any, dict[str, Any]]] = deque()
        self._drops: dict[str, int] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._attached = asyncio.Event()

    @property
    def epoch(self) -> int:
        """The session epoch (0 until attached)."""
        return self._target.epoch if self._target is not None else 0

    @property
    def resumed_epoch(self) -> int:
        """The latest epoch started by the user going on (0 until attached)."""
        return self._target.resumed_epoch if self._target is not None else 0

    @property
    def spec(self) -> ActorSpec | None:
        """The instance's spec once attached (drivers read its inputs), else None."""
        return self._target.spec if self._target is not None else None

    def publish(self, stream: str, value: Any, **kwargs: Any) -> None:
        """Publish now, or keep it (bounded) until attached."""
        if self._target is not None:
            self._target.publish(stream, value, **kwargs)
            return
        if len(self._pending) >= PENDING_LIMIT:
            self._pending.popleft()
            self.count_drop("overflow")
        self._pending.append((stream, value, kwargs))

    def hold_replay(self, held: bool) -> None:
        """Hold input replayable (only once attached: a spare has no input yet)."""
        if self._target is not None:
            self._target.hold_replay(held)

    def count_drop(self, reason: str, n: int = 1) -> None:
        """Count dropped items (handed to the host when attached)."""
        if self._target is not None:
            self._target.count_drop(reason, n)
        else:
            self._drops[reason] = self._drops.get(reason, 0) + n

    async def wait_started(self) -> None:
        """Return once attached and the supervisor sent ``start``."""
        await self._attached.wait()
        assert self._target is not None
        await self._target.wait_started()

    def spawn(self, coro: Coroutine[Any, Any, Any], context: str) -> asyncio.Task[Any]:
        """Run plugin work as a task; the host adopts it when attached."""
        if self._target is not None:
            return self._target.spawn(coro, context)
        task = asyncio.get_running_loop().create_task(coro, name=f"{self.actor}:{context}")
        self._tasks.add(task)
        task.add_done_callback(lambda t: self._task_done(t, context))
        return task

    def _task_done(self, task: asyncio.Task[Any], context: str) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self.fail(task.exception() or RuntimeError("task failed"), context)

    def fail(self, error: BaseException, context: str,
             event_class: type[PluginErrorEvent] = PluginErrorEvent) -> None:
        """Report a plugin exception (kept as an error event until attached)."""
        if self._target is not None:
            self._target.fail(error, context, event_class)
            return
        logger.warning("%s (warm): %s failed: %s: %s", self.actor, context,
                       type(error).__name__, error)
        self.publish("events", event_class(error=error, context=context,
                                           plugin_name=self.actor))

    def attach(self, host: ActorHost) -> None:
        """From now on everything goes to ``host`` (call once its output is bound)."""
        self._target = host
        self.instance = host.instance
        host.adopt(self._tasks)
        for reason, n in self._drops.items():
            host.count_drop(reason, n)
        while self._pending:
            stream, value, kwargs = self._pending.popleft()
            host.publish(stream, value, **kwargs)
        self._attached.set()


@dataclass
class Prepared:
    """A warm host's plugin, ready to be handed to an :class:`ActorHost`.

    ``driver`` is None when the plugin is session-specific (built at assignment
    from ``plugin_class``, whose module is already imported).
    """

    spec: WarmSpec
    driver_class: type[drivers.Driver]
    plugin_class: type
    proxy: HostProxy
    driver: drivers.Driver | None = None


async def prepare(spec: WarmSpec) -> Prepared:
    """Import, build and start the plugin ``spec`` names (WarmError when it cannot)."""
    search = [spec.pipeline_dir] if spec.pipeline_dir else []
    try:
        cls = plugins.resolve(spec.plugin, search)
        cat = Category(spec.category) if spec.category else plugins.category(cls)
        driver_class = drivers.driver_for(cat, cls)
    except (plugins.PluginError, ValueError) as exc:
        raise WarmError(f"plugin {spec.plugin!r}: {exc}") from exc
    proxy = HostProxy(spec.actor)
    prepared = Prepared(spec, driver_class, cls, proxy)
    if spec.session_specific:
        return prepared
    try:
        plugin = cls(**env_refs.expand(spec.params, os.environ))
    except Exception as exc:
        raise WarmError(f"cannot create {spec.plugin} with params {sorted(spec.params)}: "
                        f"{type(exc).__name__}: {exc}") from exc
    prepared.driver = driver_class(proxy, plugin)
    await prepared.driver.start()
    warmup = getattr(plugin, "warmup", None)
    if callable(warmup):
        result = warmup()
        if inspect.isawaitable(result):
            await result
    return prepared
