"""STT base class, as in Vision Agents' plugin guide."""

from __future__ import annotations

import abc
import logging
import uuid
from typing import Any

from va_actors.core.audio.pcm import PcmData
from va_actors.core.edge.types import Participant
from va_actors.core.events.manager import EventManager, WithEvents
from va_actors.core.stt.events import (
    STTConnectedEvent,
    STTDisconnectedEvent,
    STTErrorEvent,
    STTPartialTranscriptEvent,
    STTTranscriptEvent,
    TranscriptMode,
    TranscriptResponse,
)
from va_actors.core.turn_detection.events import TurnEndedEvent, TurnStartedEvent

logger = logging.getLogger(__name__)


class STT(WithEvents, abc.ABC):
    """Speech-to-text plugin base.

    Subclasses implement :meth:`process_audio` (it must not block: hand the
    audio to a provider or a worker thread) and report results with the
    ``_emit_*`` helpers, which send events on :attr:`events`.

    Class attributes:
        turn_detection: True when the provider also reports turns (then the
            pipeline needs no separate turn detector).
        eager_turn_detection: True when it reports eager (speculative) ends.
        model: model name, for metrics.

    A subclass whose ``__init__`` does not call ``super().__init__()`` (the
    guide's Gotchas show ``def __init__(self): self._lock = asyncio.Lock()``)
    still works: :attr:`events`, ``session_id`` and ``provider_name`` are
    made on first use.
    """

    turn_detection: bool = False
    eager_turn_detection: bool = False
    model: str = ""
    connected: bool = False
    _started: bool = False
    _closed: bool = False
    _session_id: str | None = None
    _provider_name: str | None = None

    def __init__(self, provider_name: str | None = None) -> None:
        self._session_id = uuid.uuid4().hex
        self._provider_name = provider_name or type(self).__name__
        self._events = EventManager()
        self.connected = False
        self._started = False
        self._closed = False

    @property
    def session_id(self) -> str:
        """This plugin instance's id, carried by its transcripts."""
        if self._session_id is None:
            self._session_id = uuid.uuid4().hex
        return self._session_id

    @session_id.setter
    def session_id(self, value: str) -> None:
        self._session_id = value

    @property
    def provider_name(self) -> str:
        """The name used in events and logs (the class name by default)."""
        return self._provider_name or type(self).__name__

    @provider_name.setter
    def provider_name(self, value: str) -> None:
        self._provider_name = value

    async def start(self) -> None:
        """Connect to the provider; called once before the first audio."""
        if self._started:
            raise RuntimeError(f"{self.provider_name}.start() called twice")
        self._started = True

    @abc.abstractmethod
    async def process_audio(self, pcm_data: PcmData,
                            participant: Participant | None = None) -> None:
        """Consume one chunk of user audio (any rate; resample as the provider needs)."""

    async def clear(self) -> None:
        """Drop buffered audio and partial results (the user's turn was discarded)."""

    async def close(self) -> None:
        """Release provider connections; safe to call more than once."""
        self._closed = True

    # -- emit helpers (synchronous, as in the guide) ----------------------
    def _emit_transcript_event(self, text: str, participant: Participant | None = None,
                               response: TranscriptResponse | Any = None, *,
                               mode: TranscriptMode = "final") -> None:
        """Report a transcript: ``mode="final"`` for a finished utterance,
        ``"delta"`` / ``"replacement"`` for partials.

        ``response`` is a :class:`TranscriptResponse` or the provider's own
        response object (as the guide passes it): kept as is on the event, and
        carried as data when the event crosses to another process.
        """
        if not text or not text.strip():
            logger.debug("%s: empty transcript ignored", self.provider_name)
            return
        cls = STTTranscriptEvent if mode == "final" else STTPartialTranscriptEvent
        if response is None:
            response = TranscriptResponse(model_name=self.model)
        self.events.send(cls(text=text, participant=participant, mode=mode, response=response,
                             plugin_name=self.provider_name, session_id=self.session_id))

    def _emit_partial_transcript_event(self, text: str, participant: Participant | None = None,
                                       response: TranscriptResponse | Any = None, *,
                                       mode: TranscriptMode = "replacement") -> None:
        """Report an interim transcript (the guide's name for a partial)."""
        self._emit_transcript_event(text, participant, response,
                                    mode="replacement" if mode == "final" else mode)

    def _emit_turn_started_event(self, participant: Participant | None = None, *,
                                 confidence: float = 0.5) -> None:
        """Report that the user started speaking (providers with built-in turns)."""
        self.events.send(TurnStartedEvent(participant=participant, confidence=confidence,
                                          plugin_name=self.provider_name))

    def _emit_turn_ended_event(self, participant: Participant | None = None, *,
                               confidence: float = 0.5, eager: bool = False,
                               duration_ms: float | None = None,
                               trailing_silence_ms: float | None = None) -> None:
        """Report the end of the user's turn (providers with built-in turns)."""
        self.events.send(TurnEndedEvent(participant=participant, confidence=confidence,
                                        eager_end_of_turn=eager, duration_ms=duration_ms,
                                        trailing_silence_ms=trailing_silence_ms,
                                        plugin_name=self.provider_name))

    def _emit_error_event(self, error: BaseException, *, context: str = "",
                          participant: Participant | None = None,
                          is_recoverable: bool = True, error_code: str | None = None) -> None:
        """Report an error as an event; the caller decides whether to re-raise."""
        logger.warning("%s error (%s): %s: %s", self.provider_name, context or "stt",
                       type(error).__name__, error)
        self.events.send(STTErrorEvent(error=error, context=context, participant=participant,
                                       is_recoverable=is_recoverable, error_code=error_code,
                                       plugin_name=self.provider_name))

    def _on_connected(self) -> None:
        self.connected = True
        self.events.send(STTConnectedEvent(plugin_name=self.provider_name))

    def _on_disconnected(self, reason: str | None = None, clean: bool = True) -> None:
        self.connected = False
        self.events.send(STTDisconnectedEvent(reason=reason, clean=clean,
                                              plugin_name=self.provider_name))
