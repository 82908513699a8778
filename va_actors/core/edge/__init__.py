"""Who is speaking, and what the transport is doing."""

from __future__ import annotations

from typing import Any

from va_actors.core.edge.types import Participant, User

__all__ = [
    "AudioPlaybackEvent",
    "Participant",
    "SourceFinishedEvent",
    "TransportErrorEvent",
    "User",
]

_EVENTS = {"AudioPlaybackEvent", "SourceFinishedEvent", "TransportErrorEvent"}


def __getattr__(name: str) -> Any:
    # Lazy: events.base imports edge.types, so importing edge.events here eagerly
    # would close an import cycle when a plugin's first import is core.events.
    if name in _EVENTS:
        from va_actors.core.edge import events

        return getattr(events, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
