"""Events: registry, round-trips through to_dict/from_dict, EventManager semantics."""

from __future__ import annotations

import asyncio
import importlib
import inspect
import logging
from dataclasses import dataclass, field

import numpy as np
import pytest

from va_actors.core.audio import PcmData
from va_actors.core.edge import Participant
from va_actors.core.events import (
    BaseEvent,
    ConversionError,
    EventManager,
    ExceptionEvent,
    PluginBaseEvent,
    PluginErrorEvent,
    RemoteError,
    RemoteObject,
    UnknownEventError,
    event_class,
)
from va_actors.core.stt.events import STTErrorEvent, STTTranscriptEvent, TranscriptResponse
from va_actors.core.tts.events import TTSAudioEvent
from va_actors.core.turn_detection.events import TurnEndedEvent, TurnStartedEvent

CATALOGUE_MODULES = [
    "va_actors.core.stt.events",
    "va_actors.core.tts.events",
    "va_actors.core.turn_detection.events",
    "va_actors.core.llm.events",
    "va_actors.core.processors.events",
    "va_actors.core.edge.events",
]


@dataclass
class AcmeQuotaEvent(PluginBaseEvent):
    """A custom plugin event written the way the guide shows."""

    type: str = field(default="plugin.acme.quota", init=False)
    remaining: int = 0
    plan: str = "free"


def _standard_event_classes() -> list[type[BaseEvent]]:
    classes = []
    for name in CATALOGUE_MODULES:
        module = importlib.import_module(name)
        for obj in vars(module).values():
            if (inspect.isclass(obj) and issubclass(obj, BaseEvent) and obj.__module__ == name
                    and not obj.__name__.startswith("_")):
                classes.append(obj)
    return classes


def test_catalogue_covers_every_category() -> None:
    types = {cls.__dataclass_fields__["type"].default for cls in _standard_event_classes()}
    for expected in ["plugin.stt_transcript", "plugin.stt_partial_transcript",
                     "plugin.turn_started", "plugin.turn_ended", "plugin.tts_synthesis_start",
                     "plugin.tts_synthesis_complete", "plugin.tts_audio",
                     "plugin.llm_response_delta", "plugin.llm_response_final",
                     "plugin.llm.tool.start", "plugin.llm.tool.end", "plugin.realtime_connected",
                     "plugin.realtime_disconnected", "plugin.realtime_audio_output",
                     "plugin.stt_error", "plugin.tts_error", "plugin.llm_error"]:
        assert expected in types


@pytest.mark.parametrize("cls", _standard_event_classes(), ids=lambda c: c.__name__)
def test_every_standard_event_round_trips(cls: type[BaseEvent]) -> None:
    event = cls(session_id="s1", participant=Participant(user_id="u1", id="p1"))
    data = event.to_dict()
    back = BaseEvent.from_dict(data)
    assert type(back) is cls
    assert back.to_dict() == data
    assert back.participant == Participant(user_id="u1", id="p1")


def test_custom_event_is_found_again_by_type() -> None:
    data = AcmeQuotaEvent(remaining=7, plan="pro").to_dict()
    assert data["type"] == "plugin.acme.quota"
    back = BaseEvent.from_dict(data)
    assert isinstance(back, AcmeQuotaEvent)
    assert (back.remaining, back.plan) == (7, "pro")


def test_event_with_pcm_moves_samples_to_blobs() -> None:
    pcm = PcmData(sample_rate=16000, format="s16", samples=np.arange(320, dtype=np.int16))
    event = TTSAudioEvent(data=pcm, epoch=4, chunk_index=1, is_final_chunk=True)
    blobs: list[object] = []
    data = event.to_dict(blobs)
    assert data["data"]["data"] == {"__blob__": 0}
    assert bytes(blobs[0]) == pcm.to_bytes()  # type: ignore[call-overload]
    back = BaseEvent.from_dict(data, blobs)
    assert isinstance(back, TTSAudioEvent) and back.data is not None
    np.testing.assert_array_equal(back.data.samples, pcm.samples)
    assert (back.epoch, back.chunk_index, back.is_final_chunk) == (4, 1, True)


def test_error_event_carries_the_exception_and_its_kind() -> None:
    event = STTErrorEvent(error=TimeoutError("provider timed out"), is_recoverable=True,
                          context="websocket")
    back = BaseEvent.from_dict(event.to_dict())
    assert isinstance(back, STTErrorEvent)
    assert isinstance(back.error, RemoteError)
    assert back.error.type_name == "TimeoutError"
    assert back.error_message == "provider timed out"
    assert back.temporary and not back.permanent
    permanent = PluginErrorEvent(error=PermissionError("bad key"), is_recoverable=False)
    assert permanent.permanent


def test_nested_dataclass_fields_are_rebuilt() -> None:
    event = STTTranscriptEvent(text="hello", response=TranscriptResponse(confidence=0.9,
                                                                         language="en"))
    back = BaseEvent.from_dict(event.to_dict())
    assert isinstance(back, STTTranscriptEvent)
    assert back.response.confidence == 0.9 and back.language == "en"


def test_unknown_type_and_unserialisable_values_give_clear_errors(
        caplog: pytest.LogCaptureFixture) -> None:
    with pytest.raises(UnknownEventError, match=r"plugin\.nope"):
        BaseEvent.from_dict({"type": "plugin.nope"})
    with pytest.raises(ConversionError, match=r"has no .type."):
        BaseEvent.from_dict({"text": "x"})
    # A value with no wire form no longer costs the event: it goes as its repr,
    # with one warning naming the event and the field.
    with caplog.at_level(logging.WARNING, logger="va_actors.core.events.convert"):
        data = AcmeQuotaEvent(plan=object()).to_dict()  # type: ignore[arg-type]
        AcmeQuotaEvent(plan=object()).to_dict()  # type: ignore[arg-type]
    back = BaseEvent.from_dict(data)
    assert isinstance(back, AcmeQuotaEvent) and isinstance(back.plan, RemoteObject)
    assert back.plan.type_name == "object" and "object at 0x" in str(back.plan.text)
    warnings = [r.getMessage() for r in caplog.records if "AcmeQuotaEvent.plan" in r.getMessage()]
    assert len(warnings) == 1 and "repr" in warnings[0]
    with pytest.raises(ConversionError, match="not a TTSAudioEvent"):
        TTSAudioEvent.from_dict(TurnStartedEvent().to_dict())
    assert event_class("plugin.turn_started") is TurnStartedEvent


async def test_manager_delivers_by_class_union_and_prefix() -> None:
    events = EventManager()
    by_class: list[BaseEvent] = []
    by_union: list[BaseEvent] = []
    by_prefix: list[BaseEvent] = []

    @events.subscribe
    async def on_started(event: TurnStartedEvent) -> None:
        by_class.append(event)

    @events.subscribe
    async def on_turn(event: TurnStartedEvent | TurnEndedEvent) -> None:
        by_union.append(event)

    @events.subscribe(prefix="plugin.acme")
    async def on_acme(event: BaseEvent) -> None:
        by_prefix.append(event)

    events.send(TurnStartedEvent(), TurnEndedEvent(), AcmeQuotaEvent(remaining=1))
    events.send({"type": "plugin.acme.quota", "remaining": 2})  # dicts are accepted too
    await events.wait(2)
    assert [type(e) for e in by_class] == [TurnStartedEvent]
    assert [type(e) for e in by_union] == [TurnStartedEvent, TurnEndedEvent]
    assert [e.remaining for e in by_prefix] == [1, 2]  # type: ignore[attr-defined]
    assert events.has_subscribers(AcmeQuotaEvent)
    assert events.unsubscribe(on_acme) and not events.has_subscribers(AcmeQuotaEvent)


async def test_failing_handler_becomes_exception_event_and_never_reaches_sender() -> None:
    events = EventManager()
    seen: list[ExceptionEvent] = []
    delivered: list[BaseEvent] = []

    @events.subscribe
    async def broken(event: TurnStartedEvent) -> None:
        raise RuntimeError("handler bug")

    @events.subscribe
    async def fine(event: TurnStartedEvent) -> None:
        delivered.append(event)

    @events.subscribe
    async def on_exception(event: ExceptionEvent) -> None:
        seen.append(event)

    events.send(TurnStartedEvent())  # must not raise
    await events.wait(2)
    await asyncio.sleep(0)
    await events.wait(2)
    assert len(delivered) == 1
    assert len(seen) == 1 and "handler bug" in str(seen[0].exc)
    assert seen[0].event_type == "plugin.turn_started"


async def test_merged_manager_receives_plugin_events() -> None:
    plugin_events, agent_events = EventManager(), EventManager()
    agent_events.merge(plugin_events)
    got: list[BaseEvent] = []

    @agent_events.subscribe
    async def on_any(event: TurnEndedEvent) -> None:
        got.append(event)

    plugin_events.send(TurnEndedEvent(duration_ms=5))
    await agent_events.wait(2)
    assert len(got) == 1


def test_subscribe_rejects_handlers_without_event_annotation() -> None:
    events = EventManager()

    async def no_hint(event) -> None:  # type: ignore[no-untyped-def]
        return None

    with pytest.raises(TypeError, match="annotated first parameter"):
        events.subscribe(no_hint)


async def test_shutdown_drops_later_events() -> None:
    events = EventManager()
    got: list[BaseEvent] = []

    @events.subscribe
    async def on_turn(event: TurnStartedEvent) -> None:
        got.append(event)

    await events.shutdown()
    events.send(TurnStartedEvent())
    await asyncio.sleep(0.01)
    assert got == []
