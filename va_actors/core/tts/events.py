"""Text-to-speech events."""

from __future__ import annotations

from dataclasses import dataclass, field

from va_actors.core.audio.pcm import PcmData
from va_actors.core.events.base import PluginBaseEvent, PluginErrorEvent


@dataclass(kw_only=True)
class TTSAudioEvent(PluginBaseEvent):
    """A chunk of synthesised speech, in the TTS output format.

    ``epoch`` is the TTS epoch the chunk was synthesised in: after
    ``interrupt()`` no chunk of an older epoch is emitted, and every consumer
    drops chunks older than the epoch it knows.
    """

    type: str = field(default="plugin.tts_audio", init=False)
    data: PcmData | None = None
    chunk_index: int = 0
    is_final_chunk: bool = False
    text_source: str | None = None
    synthesis_id: str | None = None
    epoch: int = 0


@dataclass(kw_only=True)
class TTSSynthesisStartEvent(PluginBaseEvent):
    """Synthesis of one text started."""

    type: str = field(default="plugin.tts_synthesis_start", init=False)
    text: str | None = None
    synthesis_id: str | None = None
    model_name: str | None = None
    voice_id: str | None = None
    estimated_duration_ms: float | None = None


@dataclass(kw_only=True)
class TTSSynthesisCompleteEvent(PluginBaseEvent):
    """Synthesis of one text finished (or was interrupted)."""

    type: str = field(default="plugin.tts_synthesis_complete", init=False)
    synthesis_id: str | None = None
    text: str | None = None
    total_audio_bytes: int = 0
    synthesis_time_ms: float = 0.0
    audio_duration_ms: float = 0.0
    chunk_count: int = 0
    real_time_factor: float | None = None
    interrupted: bool = False


@dataclass(kw_only=True)
class TTSErrorEvent(PluginErrorEvent):
    """The TTS provider or plugin failed."""

    type: str = field(default="plugin.tts_error", init=False)


@dataclass(kw_only=True)
class TTSConnectedEvent(PluginBaseEvent):
    """The TTS plugin connected to its provider."""

    type: str = field(default="plugin.tts_connected", init=False)


@dataclass(kw_only=True)
class TTSDisconnectedEvent(PluginBaseEvent):
    """The TTS plugin lost (or closed) its provider connection."""

    type: str = field(default="plugin.tts_disconnected", init=False)
    reason: str | None = None
    clean: bool = True
