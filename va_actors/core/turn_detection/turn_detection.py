"""TurnDetector base class."""

from __future__ import annotations

import abc
import logging
from collections.abc import Generator
from typing import Any

from va_actors.core.audio.pcm import PcmData
from va_actors.core.edge.types import Participant
from va_actors.core.events.manager import EventManager
from va_actors.core.turn_detection.events import (
    TurnDetectionErrorEvent,
    TurnEndedEvent,
    TurnStartedEvent,
)

logger = logging.getLogger(__name__)


class Emitted:
    """Returned by the emit helpers: already done, but awaitable.

    Vision Agents' current detectors ``await self._emit_turn_*_event(...)``
    while older guide code calls them plainly; both work.
    """

    def __await__(self) -> Generator[Any, None, None]:
        return
        yield  # pragma: no cover - makes this a generator


class TurnDetector(abc.ABC):
    """Decides when the user starts and stops speaking.

    Subclasses implement :meth:`process_audio` and call
    :meth:`_emit_turn_started_event` / :meth:`_emit_turn_ended_event`.
    """

    def __init__(self, confidence_threshold: float = 0.5,
                 provider_name: str | None = None) -> None:
        if not 0.0 <= confidence_threshold <= 1.0:
            raise ValueError(f"confidence_threshold must be within [0, 1], "
                             f"got {confidence_threshold}")
        self.confidence_threshold = confidence_threshold
        self.provider_name = provider_name or type(self).__name__
        self.events = EventManager()
        self.is_active = False

    async def start(self) -> None:
        """Load models; called once before the first audio."""
        self.is_active = True

    async def stop(self) -> None:
        """Stop detecting (audio is ignored until start())."""
        self.is_active = False

    async def close(self) -> None:
        """Release resources."""
        await self.stop()

    @abc.abstractmethod
    async def process_audio(self, audio_data: PcmData, participant: Participant | None = None,
                            conversation: Any = None) -> None:
        """Consume one chunk of user audio."""

    def _emit_turn_started_event(self, participant: Participant | None = None, *,
                                 confidence: float = 0.5,
                                 custom: dict[str, Any] | None = None) -> Emitted:
        self.events.send(TurnStartedEvent(participant=participant, confidence=confidence,
                                          custom=custom or {}, plugin_name=self.provider_name))
        return Emitted()

    def _emit_turn_ended_event(self, participant: Participant | None = None, *,
                               confidence: float = 0.5, eager: bool = False,
                               duration_ms: float | None = None,
                               trailing_silence_ms: float | None = None,
                               custom: dict[str, Any] | None = None) -> Emitted:
        self.events.send(TurnEndedEvent(participant=participant, confidence=confidence,
                                        eager_end_of_turn=eager, duration_ms=duration_ms,
                                        trailing_silence_ms=trailing_silence_ms,
                                        custom=custom or {}, plugin_name=self.provider_name))
        return Emitted()

    def _emit_error_event(self, error: BaseException, *, context: str = "",
                          is_recoverable: bool = True) -> Emitted:
        logger.warning("%s error (%s): %s: %s", self.provider_name, context or "turn",
                       type(error).__name__, error)
        self.events.send(TurnDetectionErrorEvent(error=error, context=context,
                                                 is_recoverable=is_recoverable,
                                                 plugin_name=self.provider_name))
        return Emitted()
