"""Who is speaking, and what the transport is doing."""

from va_actors.core.edge.events import AudioPlaybackEvent, SourceFinishedEvent, TransportErrorEvent
from va_actors.core.edge.types import Participant, User

__all__ = [
    "AudioPlaybackEvent",
    "Participant",
    "SourceFinishedEvent",
    "TransportErrorEvent",
    "User",
]
