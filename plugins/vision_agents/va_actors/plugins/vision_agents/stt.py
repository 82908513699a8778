"""A Vision Agents STT (``process_audio`` in, ``.output`` stream out) as our STT.

Audio goes in as getstream's PcmData with their Participant; what the plugin
puts on its ``output`` stream (``Transcript`` in delta, replacement or final
mode, ``TurnStarted``, ``TurnEnded``) comes out through our ``_emit_*``
helpers, so the driver publishes transcripts and turns as for any STT.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any, ClassVar

from va_actors.core import stt
from va_actors.core.audio import PcmData
from va_actors.core.edge import Participant
from va_actors.core.stt import TranscriptResponse
from va_actors.plugins.vision_agents.convert import (
    from_va_participant,
    to_stream_pcm,
    to_va_participant,
)
from va_actors.plugins.vision_agents.warm import warm_up
from vision_agents.core.stt.stt import Transcript
from vision_agents.core.turn_detection import TurnEnded, TurnStarted

__all__ = ["VisionAgentsSTT"]

logger = logging.getLogger(__name__)


class VisionAgentsSTT(stt.STT):
    """Runs the Vision Agents STT class ``va_class`` (set by the adapter).

    Args:
        **params: the Vision Agents class's own constructor parameters.
    """

    va_class: ClassVar[type]

    def __init__(self, **params: Any) -> None:
        self.va: Any = self.va_class(**params)
        super().__init__(provider_name=getattr(self.va, "provider_name", None)
                         or self.va_class.__name__)
        self.turn_detection = bool(getattr(self.va, "turn_detection", False))
        self.model = str(getattr(self.va, "model", "") or "")
        self._pump: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Warm up (load the model), start the plugin, and follow its output."""
        await super().start()
        await warm_up(self.va)
        await self.va.start()
        self._pump = asyncio.create_task(self._forward(), name="vision-agents-stt-output")

    async def process_audio(self, pcm_data: PcmData,
                            participant: Participant | None = None) -> None:
        """Hand one chunk to the plugin (it resamples as it needs)."""
        who = to_va_participant(participant)
        await self.va.process_audio(to_stream_pcm(pcm_data, who), who)

    async def _forward(self) -> None:
        async for item in self.va.output:
            try:
                self._emit(item)
            except Exception:  # one odd item must not stop the transcripts
                logger.exception("%s: cannot convert %r", self.provider_name, item)

    def _emit(self, item: Any) -> None:
        who = from_va_participant(getattr(item, "participant", None))
        if isinstance(item, Transcript):
            r = item.response
            response = TranscriptResponse(
                confidence=r.confidence, language=r.language,
                processing_time_ms=r.processing_time_ms, audio_duration_ms=r.audio_duration_ms,
                model_name=r.model_name, other=dict(r.other or {}))
            self._emit_transcript_event(item.text, who, response, mode=item.mode)
        elif isinstance(item, TurnStarted):
            self._emit_turn_started_event(who, confidence=item.confidence)
        elif isinstance(item, TurnEnded):
            self._emit_turn_ended_event(who, confidence=item.confidence, eager=item.eager,
                                        duration_ms=item.duration_ms,
                                        trailing_silence_ms=item.trailing_silence_ms)

    async def clear(self) -> None:
        """Drop what the plugin buffered."""
        await self.va.clear()

    async def close(self) -> None:
        """Close the plugin (its output stream ends) and stop following it."""
        await super().close()
        await self.va.close()
        if self._pump is not None:
            self._pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pump
