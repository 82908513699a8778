"""Speech-to-text: ``from va_actors.core import stt``; subclass ``stt.STT``."""

from va_actors.core.stt import events
from va_actors.core.stt.events import (
    STTConnectedEvent,
    STTDisconnectedEvent,
    STTErrorEvent,
    STTPartialTranscriptEvent,
    STTTranscriptEvent,
    TranscriptResponse,
)
from va_actors.core.stt.stt import STT

__all__ = [
    "STT",
    "STTConnectedEvent",
    "STTDisconnectedEvent",
    "STTErrorEvent",
    "STTPartialTranscriptEvent",
    "STTTranscriptEvent",
    "TranscriptResponse",
    "events",
]
