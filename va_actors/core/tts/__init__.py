"""Text-to-speech: ``from va_actors.core import tts``; subclass ``tts.TTS``."""

from va_actors.core.tts import events
from va_actors.core.tts.events import (
    TTSAudioEvent,
    TTSConnectedEvent,
    TTSDisconnectedEvent,
    TTSErrorEvent,
    TTSSynthesisCompleteEvent,
    TTSSynthesisStartEvent,
)
from va_actors.core.tts.tts import TTS, AudioSpec, TTSOutputChunk

__all__ = [
    "TTS",
    "AudioSpec",
    "TTSAudioEvent",
    "TTSConnectedEvent",
    "TTSDisconnectedEvent",
    "TTSErrorEvent",
    "TTSOutputChunk",
    "TTSSynthesisCompleteEvent",
    "TTSSynthesisStartEvent",
    "events",
]
