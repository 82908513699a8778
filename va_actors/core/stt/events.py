"""Speech-to-text events."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from va_actors.core.events.base import PluginBaseEvent, PluginErrorEvent
from va_actors.core.provider_objects import field_of

TranscriptMode = Literal["delta", "replacement", "final"]


@dataclass
class TranscriptResponse:
    """Provider details that come with a transcript."""

    confidence: float | None = None
    language: str | None = None
    processing_time_ms: float | None = None
    audio_duration_ms: float | None = None
    model_name: str | None = None
    other: dict[str, Any] = field(default_factory=dict)


@dataclass(kw_only=True)
class _TranscriptEventBase(PluginBaseEvent):
    """Fields shared by final and partial transcripts (not an event type itself).

    The two events are siblings, not parent and child, as in Vision Agents: a
    handler annotated ``event: STTTranscriptEvent`` gets final transcripts only.
    """

    text: str = ""
    response: TranscriptResponse = field(default_factory=TranscriptResponse)
    """A TranscriptResponse, or the provider's own response object as the plugin
    passed it (the guide's ``response=result``); across the wire such an
    object arrives as a :class:`~va_actors.core.events.RemoteObject`."""
    mode: TranscriptMode = "final"

    @property
    def confidence(self) -> float | None:
        """Provider confidence, if it gave one."""
        value = field_of(self.response, "confidence")
        return float(value) if isinstance(value, int | float) else None

    @property
    def language(self) -> str | None:
        """Detected language, if the provider gave one."""
        value = field_of(self.response, "language")
        return value if isinstance(value, str) else None

    @property
    def is_final(self) -> bool:
        """True for a finished utterance, False for an interim transcript."""
        return self.mode == "final"


@dataclass(kw_only=True)
class STTTranscriptEvent(_TranscriptEventBase):
    """A final transcript of a stretch of user speech."""

    type: str = field(default="plugin.stt_transcript", init=False)


@dataclass(kw_only=True)
class STTPartialTranscriptEvent(_TranscriptEventBase):
    """An interim transcript while the user is still speaking.

    ``mode="replacement"`` (the default) means ``text`` replaces the previous
    partial; ``mode="delta"`` means it is appended to it.
    """

    type: str = field(default="plugin.stt_partial_transcript", init=False)
    mode: TranscriptMode = "replacement"


@dataclass(kw_only=True)
class STTErrorEvent(PluginErrorEvent):
    """The STT provider or plugin failed."""

    type: str = field(default="plugin.stt_error", init=False)


@dataclass(kw_only=True)
class STTConnectedEvent(PluginBaseEvent):
    """The STT plugin connected to its provider."""

    type: str = field(default="plugin.stt_connected", init=False)


@dataclass(kw_only=True)
class STTDisconnectedEvent(PluginBaseEvent):
    """The STT plugin lost (or closed) its provider connection."""

    type: str = field(default="plugin.stt_disconnected", init=False)
    reason: str | None = None
    clean: bool = True
