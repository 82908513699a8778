"""Audio in, events out: STT, turn detection, audio processors."""


from __future__ import annotations

from typing import TYPE_CHECKING

from va_actors.core.events.base import BaseEvent, ExceptionEvent, PluginErrorEvent

# Imported for its registrations too: every actor can decode every core event type.
from va_actors.core.processors import (
    ProcessorErrorEvent,
)
from va_actors.core.stt import STTErrorEvent, STTPartialTranscriptEvent, STTTranscriptEvent
from va_actors.core.turn_detection import (
    TurnDetectionErrorEvent,
    TurnEndedEvent,
    TurnStartedEvent,
)
from va_actors.runtime.drivers.base import (
    Driver,
)
from va_actors.wire.codec import Message
from va_actors.wire.messages import Kind

if TYPE_CHECKING:
    pass


# -- audio in, events out ---------------------------------------------------------------
def _stt_route(event: BaseEvent) -> str:
    if isinstance(event, STTTranscriptEvent | STTPartialTranscriptEvent):
        return "transcript"
    if isinstance(event, TurnStartedEvent | TurnEndedEvent):
        return "turn"
    return "events"


def _turn_route(event: BaseEvent) -> str:
    return "turn" if isinstance(event, TurnStartedEvent | TurnEndedEvent) else "events"


def processor_route(event: BaseEvent) -> str:
    return "events" if isinstance(event, PluginErrorEvent | ExceptionEvent) else "state"


class STTDriver(Driver):
    """Audio -> ``process_audio``; transcripts, turns and other events published."""

    outputs = ("transcript", "turn", "events")
    error_event = STTErrorEvent

    async def start(self) -> None:
        self.forward_events(_stt_route)
        await self._start_plugin()

    async def on_input(self, msg: Message) -> None:
        if msg.kind is Kind.AUDIO:
            pcm = msg.audio()
            await self.plugin.process_audio(pcm, pcm.participant)
        elif msg.kind is Kind.EVENT:
            await self._on_turn_event(msg.event())

    async def _on_turn_event(self, event: BaseEvent) -> None:
        # A turn detector's end of turn is authoritative: the STT finalises the
        # utterance now instead of waiting for its own end-of-speech rule.
        flush = getattr(self.plugin, "flush", None)
        if isinstance(event, TurnEndedEvent) and callable(flush):
            await flush(event.participant)


class TurnDriver(Driver):
    """Audio -> ``process_audio``; turn events on ``turn``."""

    outputs = ("turn", "events")
    error_event = TurnDetectionErrorEvent

    async def start(self) -> None:
        self.forward_events(_turn_route)
        await self._start_plugin()

    async def on_input(self, msg: Message) -> None:
        if msg.kind is Kind.AUDIO:
            pcm = msg.audio()
            await self.plugin.process_audio(pcm, pcm.participant)


class AudioProcessorDriver(Driver):
    """Audio -> ``process_audio``; processor events on ``state``, errors on ``events``."""

    outputs = ("state", "events")
    error_event = ProcessorErrorEvent

    async def start(self) -> None:
        self.forward_events(processor_route)
        await self._start_plugin()

    async def on_input(self, msg: Message) -> None:
        if msg.kind is Kind.AUDIO:
            await self.plugin.process_audio(msg.audio())
