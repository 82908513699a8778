"""EventManager: in-process publish/subscribe for plugin events.

Semantics follow Vision Agents: ``send`` is synchronous fire-and-forget and
schedules one task per matching handler on the running loop; a handler that
raises produces an :class:`ExceptionEvent` and never reaches the sender.
Additions: subscribe by ``type`` prefix (``"plugin.stt"``), and sync handlers
are accepted (called inline, exceptions handled the same way).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import types
import typing
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar, overload

from va_actors.core.events.base import (
    BaseEvent,
    ExceptionEvent,
    UnknownEventError,
    event_class,
    register_event_class,
)

logger = logging.getLogger(__name__)

Handler = Callable[[Any], Awaitable[None] | None]
H = TypeVar("H", bound=Handler)


@dataclass
class _Subscription:
    handler: Handler
    classes: tuple[type[BaseEvent], ...] = ()
    prefix: str | None = None
    is_async: bool = True

    def matches(self, event: BaseEvent) -> bool:
        if self.prefix is not None:
            return event.type.startswith(self.prefix)
        return isinstance(event, self.classes)


def _classes_from_annotation(handler: Handler) -> tuple[type[BaseEvent], ...]:
    try:
        hints = typing.get_type_hints(handler)
    except (NameError, TypeError) as exc:
        raise TypeError(f"cannot read the event type annotation of {handler!r}: {exc}") from exc
    params = [p for p in inspect.signature(handler).parameters.values() if p.name != "self"]
    if not params or params[0].name not in hints:
        raise TypeError(
            f"handler {getattr(handler, '__qualname__', handler)!r} needs an annotated first "
            "parameter (event: SomeEvent | OtherEvent), or subscribe with prefix=..."
        )
    hint = hints[params[0].name]
    arms = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union,
                                                                  types.UnionType) else (hint,)
    classes = tuple(a for a in arms if isinstance(a, type) and issubclass(a, BaseEvent))
    if len(classes) != len(arms):
        raise TypeError(f"handler {handler!r}: annotation {hint!r} is not a BaseEvent subclass "
                        "or a union of them")
    return classes


def _type_default(cls: type) -> str | None:
    fields = getattr(cls, "__dataclass_fields__", {})
    declared = fields["type"].default if "type" in fields else getattr(cls, "type", None)
    return declared if isinstance(declared, str) else None


def _incompatibility(cls: object) -> str | None:
    """Why ``cls`` cannot be registered as an event, or None if it can."""
    if not (inspect.isclass(cls) and issubclass(cls, BaseEvent)):
        return "not a BaseEvent subclass"
    if not cls.__name__.endswith("Event"):
        return f"class name {cls.__name__!r} does not end with 'Event'"
    if _type_default(cls) is None:
        return "no 'type' string"
    return None


@dataclass
class EventManager:
    """Delivers events to subscribed handlers.

    Args:
        ignore_unknown_events: when ``send`` gets a dict whose ``type`` is not
            registered, drop it with a debug log (True) or raise (False).
    """

    ignore_unknown_events: bool = True
    _subscriptions: list[_Subscription] = field(default_factory=list)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    _closed: bool = False
    _merged: list[EventManager] = field(default_factory=list)

    # -- subscription ---------------------------------------------------
    @overload
    def subscribe(self, handler: H) -> H: ...

    @overload
    def subscribe(self, handler: None = None, *, prefix: str | None = None,
                  event_types: Iterable[type[BaseEvent]] | None = None) -> Callable[[H], H]: ...

    def subscribe(self, handler: H | None = None, *, prefix: str | None = None,
                  event_types: Iterable[type[BaseEvent]] | None = None) -> H | Callable[[H], H]:
        """Subscribe a handler (usable as ``@events.subscribe`` or ``@events.subscribe(...)``).

        Without arguments the event classes come from the first parameter's
        annotation (``A | B`` subscribes to both). ``prefix="plugin.stt"``
        receives every event whose ``type`` starts with it (``""`` = all).
        """

        def register(fn: H) -> H:
            classes: tuple[type[BaseEvent], ...] = ()
            if prefix is None:
                classes = tuple(event_types) if event_types else _classes_from_annotation(fn)
            if any(s.handler == fn for s in self._subscriptions):
                return fn
            self._subscriptions.append(
                _Subscription(fn, classes, prefix, inspect.iscoroutinefunction(fn))
            )
            return fn

        return register(handler) if handler is not None else register

    def unsubscribe(self, handler: Handler) -> bool:
        """Remove ``handler``; returns whether it was subscribed."""
        before = len(self._subscriptions)
        self._subscriptions = [s for s in self._subscriptions if s.handler != handler]
        return len(self._subscriptions) != before

    def has_subscribers(self, event_class: type[BaseEvent]) -> bool:
        """True if some handler would receive an instance of ``event_class``."""
        declared = event_class.__dataclass_fields__["type"].default
        return any(
            (s.prefix is not None and isinstance(declared, str) and declared.startswith(s.prefix))
            or issubclass(event_class, s.classes)
            for s in self._all_subscriptions()
        )

    # -- registration (Vision Agents' API) --------------------------------
    def register(self, *event_classes: type[BaseEvent],
                 ignore_not_compatible: bool = False) -> None:
        """Check and register event classes, as plugins do in ``__init__``.

        Defining a :class:`BaseEvent` subclass already registers it (that is
        how the receiving side of the wire finds it), so this validates that
        each class is an event (name ending in ``Event``, a ``type`` string)
        and makes sure it is in the registry.

        Raises:
            ValueError: a class is not a compatible event and
                ``ignore_not_compatible`` is False (else it is logged and skipped).
        """
        for cls in event_classes:
            problem = _incompatibility(cls)
            if problem is None:
                register_event_class(cls)
            elif ignore_not_compatible:
                logger.warning("not registering %r: %s", cls, problem)
            else:
                raise ValueError(f"cannot register {cls!r}: {problem}")

    def register_events_from_module(self, module: types.ModuleType, prefix: str = "",
                                    ignore_not_compatible: bool = True) -> None:
        """Register every event class ``module`` defines whose ``type`` starts with ``prefix``.

        Classes merely imported into ``module`` are skipped, as are classes
        whose name does not end in ``Event``.
        """
        for obj in vars(module).values():
            if not (inspect.isclass(obj) and issubclass(obj, BaseEvent)
                    and obj.__module__ == module.__name__ and obj.__name__.endswith("Event")):
                continue
            declared = _type_default(obj)
            if declared is not None and not declared.startswith(prefix):
                continue
            self.register(obj, ignore_not_compatible=ignore_not_compatible)

    def merge(self, other: EventManager) -> None:
        """Deliver events sent on ``other`` to this manager's handlers too."""
        if other is not self and self not in other._merged:
            other._merged.append(self)

    def _all_subscriptions(self) -> list[_Subscription]:
        return list(self._subscriptions)

    # -- delivery -------------------------------------------------------
    def send(self, *events: BaseEvent | Mapping[str, Any]) -> None:
        """Deliver events to every matching handler; never raises for handler errors.

        Async handlers run as tasks on the running loop; if no loop is running
        they run to completion before ``send`` returns.
        """
        for raw in events:
            event = self._coerce(raw)
            if event is None or self._closed:
                continue
            self._deliver(event)
            for peer in self._merged:
                peer._deliver(event)

    def _coerce(self, raw: BaseEvent | Mapping[str, Any]) -> BaseEvent | None:
        if isinstance(raw, BaseEvent):
            return raw
        try:
            event_class(str(raw.get("type")))
        except UnknownEventError:
            if self.ignore_unknown_events:
                logger.debug("dropping unknown event type %r", raw.get("type"))
                return None
            raise
        return BaseEvent.from_dict(raw)

    def _deliver(self, event: BaseEvent) -> None:
        for sub in self._all_subscriptions():
            if sub.matches(event):
                self._run(sub, event)

    def _run(self, sub: _Subscription, event: BaseEvent) -> None:
        if not sub.is_async:
            try:
                sub.handler(event)
            except Exception as exc:
                self._report(exc, sub, event)
            return
        coro = self._guarded(sub, event)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            asyncio.run(coro)
            return
        task = loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _guarded(self, sub: _Subscription, event: BaseEvent) -> None:
        try:
            result = sub.handler(event)
            if inspect.isawaitable(result):
                await result
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._report(exc, sub, event)

    def _report(self, exc: Exception, sub: _Subscription, event: BaseEvent) -> None:
        name = getattr(sub.handler, "__qualname__", repr(sub.handler))
        logger.error("event handler %s failed on %s: %s: %s", name, event.type,
                     type(exc).__name__, exc)
        if isinstance(event, ExceptionEvent):
            return  # never loop on a failing exception handler
        self.send(ExceptionEvent(exc=exc, handler=name, event_type=event.type))

    async def wait(self, timeout: float = 10.0) -> None:
        """Wait until every handler task (including ones they spawn) has finished."""
        deadline = asyncio.get_running_loop().time() + timeout
        while self._tasks:
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                raise TimeoutError(f"{len(self._tasks)} event handler task(s) still running "
                                   f"after {timeout} s")
            await asyncio.wait(set(self._tasks), timeout=remaining)

    async def shutdown(self) -> None:
        """Cancel pending handler tasks and drop every later event."""
        self._closed = True
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        self._subscriptions.clear()


class WithEvents:
    """An :attr:`events` manager that exists even if ``__init__`` never set one.

    Vision Agents' examples and the plugin guide's Gotchas write plugin
    ``__init__`` methods that do not call ``super().__init__()``; a base
    class deriving from this still has its events.
    """

    _events: EventManager | None = None

    @property
    def events(self) -> EventManager:
        """The plugin's event manager."""
        if self._events is None:
            self._events = EventManager()
        return self._events

    @events.setter
    def events(self, manager: EventManager) -> None:
        self._events = manager
