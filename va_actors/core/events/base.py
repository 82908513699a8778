"""Event base classes and the registry that finds a class again by its ``type``.

Custom plugin events are dataclasses deriving from :class:`PluginBaseEvent`
with a ``type`` string, exactly as in Vision Agents::

    @dataclass
    class AcmeQuotaEvent(PluginBaseEvent):
        type: str = field(default="plugin.acme.quota", init=False)
        remaining: int = 0

Defining the class registers it; the receiving side of the wire finds it again
by ``type``.
"""

from __future__ import annotations

import builtins
import dataclasses
import datetime as dt
import logging
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from va_actors.core.events.convert import Blobs, ConversionError, build_dataclass, to_plain

if TYPE_CHECKING:
    from va_actors.core.edge.types import Participant

logger = logging.getLogger(__name__)

E = TypeVar("E", bound="BaseEvent")

_REGISTRY: dict[str, type[BaseEvent]] = {}


class UnknownEventError(KeyError):
    """No event class is registered for a ``type`` string."""


def _declared_type(cls: type) -> str | None:
    raw = cls.__dict__.get("type")
    if isinstance(raw, dataclasses.Field):
        raw = raw.default
    return raw if isinstance(raw, str) else None


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _new_id() -> str:
    return uuid.uuid4().hex


@dataclass(kw_only=True)
class BaseEvent:
    """Base of every event: a ``type`` string plus identity and context fields."""

    type: str = field(default="base.event", init=False)
    event_id: str = field(default_factory=_new_id)
    timestamp: dt.datetime = field(default_factory=_utcnow)
    session_id: str | None = None
    participant: Participant | None = None
    user_metadata: Any = None


    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        declared = _declared_type(cls)
        if declared is not None:
            register_event_class(cls, declared)

    def to_dict(self, blobs: Blobs | None = None) -> dict[str, Any]:
        """Return the event as msgpack-able data.

        With ``blobs``, binary payloads (PCM, frame planes, bytes) are appended
        to that list and referenced by index instead of being inlined.
        """
        return dict(to_plain(self, blobs, where=type(self).__name__))

    @classmethod
    def from_dict(cls: builtins.type[E], data: Mapping[str, Any],
                  blobs: Sequence[Any] | None = None) -> E:
        """Rebuild an event from :meth:`to_dict` output.

        Called on :class:`BaseEvent`, the class is looked up by ``data["type"]``.
        """
        type_name = data.get("type")
        if not isinstance(type_name, str):
            raise ConversionError(f"event data has no 'type' string: keys {sorted(data)}")
        target: builtins.type[BaseEvent] = cls
        if _declared_type_of(cls) != type_name:
            target = event_class(type_name)
            if not issubclass(target, cls):
                raise ConversionError(
                    f"event type {type_name!r} is {target.__name__}, not a {cls.__name__}"
                )
        event = build_dataclass(target, data, blobs)
        return event  # type: ignore[no-any-return]


def _declared_type_of(cls: type) -> str | None:
    for klass in cls.__mro__:
        declared = _declared_type(klass)
        if declared is not None:
            return declared
    return None




def register_event_class(cls: type[BaseEvent], type_name: str | None = None) -> None:
    """Register ``cls`` under its ``type`` (done automatically on subclassing)."""
    name = type_name or _declared_type_of(cls)
    if name is None:
        raise ValueError(f"{cls.__name__} has no 'type' string to register under")
    previous = _REGISTRY.get(name)
    if previous is not None and previous is not cls and (
        previous.__module__, previous.__qualname__) != (cls.__module__, cls.__qualname__):
        logger.debug("event type %r re-registered: %s replaces %s", name,
                     cls.__qualname__, previous.__qualname__)
    _REGISTRY[name] = cls


def event_class(type_name: str) -> type[BaseEvent]:
    """Return the event class registered for ``type_name``."""
    try:
        return _REGISTRY[type_name]
    except KeyError:
        raise UnknownEventError(
            f"no event class registered for type {type_name!r}; import the plugin "
            "module that defines it"
        ) from None


def registered_event_types() -> dict[str, type[BaseEvent]]:
    """A copy of the registry: ``type`` string -> class."""
    return dict(_REGISTRY)


register_event_class(BaseEvent, "base.event")


@dataclass(kw_only=True)
class PluginBaseEvent(BaseEvent):
    """Base of events that plugins send."""

    type: str = field(default="plugin.event", init=False)
    plugin_name: str | None = None
    plugin_version: str | None = None


@dataclass(kw_only=True)
class PluginErrorEvent(PluginBaseEvent):
    """Base of every error event.

    ``is_recoverable`` says whether the error is temporary (a retry or the next
    input may succeed: timeouts, rate limits, a dropped connection) or
    permanent (bad credentials, an unknown model, invalid configuration).
    """

    type: str = field(default="plugin.error", init=False)
    error: BaseException | None = None
    error_code: str | None = None
    context: str = ""
    is_recoverable: bool = True

    @property
    def error_message(self) -> str:
        """The error's message, or ``"unknown error"``."""
        return str(self.error) if self.error is not None else "unknown error"

    @property
    def temporary(self) -> bool:
        """True when the error is temporary (same as ``is_recoverable``)."""
        return self.is_recoverable

    @property
    def permanent(self) -> bool:
        """True when retrying cannot help."""
        return not self.is_recoverable


@dataclass(kw_only=True)
class ExceptionEvent(BaseEvent):
    """A subscriber raised while handling an event; sent instead of crashing."""

    type: str = field(default="base.exception", init=False)
    exc: BaseException | None = None
    handler: str = ""
    event_type: str = ""


# Imported last: ``va_actors.core.edge`` defines events on top of the classes
# above, so importing it first would make ``from va_actors.core.events import
# PluginBaseEvent`` (a plugin's first import) fail on the cycle. The name is
# still needed at run time to resolve the ``participant`` annotation.
from va_actors.core.edge.types import Participant  # noqa: E402

__all__ = [
    "BaseEvent",
    "ExceptionEvent",
    "Participant",
    "PluginBaseEvent",
    "PluginErrorEvent",
    "UnknownEventError",
    "event_class",
    "register_event_class",
    "registered_event_types",
]
