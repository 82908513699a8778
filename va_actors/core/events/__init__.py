"""Events: dataclasses with a ``type`` string, delivered by an EventManager."""

from va_actors.core.events.base import (
    BaseEvent,
    ExceptionEvent,
    PluginBaseEvent,
    PluginErrorEvent,
    UnknownEventError,
    event_class,
    register_event_class,
    registered_event_types,
)
from va_actors.core.events.convert import ConversionError, RemoteError, RemoteObject
from va_actors.core.events.manager import EventManager

__all__ = [
    "BaseEvent",
    "ConversionError",
    "EventManager",
    "ExceptionEvent",
    "PluginBaseEvent",
    "PluginErrorEvent",
    "RemoteError",
    "RemoteObject",
    "UnknownEventError",
    "event_class",
    "register_event_class",
    "registered_event_types",
]
