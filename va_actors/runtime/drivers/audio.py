"""Audio in, events out: STT, turn detection, audio processors."""


from __future__ import annotations

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
    maybe_await,
)
from va_actors.wire.codec import Message
from va_actors.wire.messages import Kind


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
    """Audio -> ``process_audio``; transcripts, turns and other events published.

    From a turn detector's start of turn until the final transcript, the
    audio is held replayable (``hold_replay``): a restarted STT hears the whole
    utterance again, not only what came while it was down.
    """

    outputs = ("transcript", "turn", "events")
    error_event = STTErrorEvent

    async def start(self) -> None:
        self.forward_events(self._route)
        await self._start_plugin()

    def _route(self, event: BaseEvent) -> str:
        if isinstance(event, STTTranscriptEvent) and not isinstance(
                event, STTPartialTranscriptEvent):
            self.host.hold_replay(False)  # the utterance is transcribed
        return _stt_route(event)

    async def on_input(self, msg: Message) -> None:
        if msg.kind is Kind.AUDIO:
            pcm = msg.audio()
            await self.plugin.process_audio(pcm, pcm.participant)
        elif msg.kind is Kind.EVENT:
            await self._on_turn_event(msg.event())

    async def _on_turn_event(self, event: BaseEvent) -> None:
        # A turn detector's end of turn is authoritative: the STT finalises the
        # utterance now instead of waiting for its own end-of-speech rule (or,
        # if the words sound unfinished, holds it until the next start of turn,
        # which it is told with resume()).
        if isinstance(event, TurnEndedEvent):
            flush = getattr(self.plugin, "flush", None)
            if callable(flush):
                await flush(event.participant)
        elif isinstance(event, TurnStartedEvent):
            self.host.hold_replay(True)
            resume = getattr(self.plugin, "resume", None)
            if callable(resume):
                await maybe_await(resume(event.participant))


class TurnDriver(Driver):
    """Audio -> ``process_audio``; turn events on ``turn``.

    During a turn the audio is held replayable (``hold_replay``): a restarted
    detector hears the speech again and ends the turn it is in.
    """

    outputs = ("turn", "events")
    error_event = TurnDetectionErrorEvent

    async def start(self) -> None:
        self.forward_events(self._route)
        await self._start_plugin()

    def _route(self, event: BaseEvent) -> str:
        if isinstance(event, TurnStartedEvent):
            self.host.hold_replay(True)
        elif isinstance(event, TurnEndedEvent):
            self.host.hold_replay(False)
        return _turn_route(event)

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
