"""A plugin's provider objects in events: the event always crosses the wire."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from dataclasses import dataclass, field
from typing import Any

import pytest
from pydantic import BaseModel

from va_actors.core.events import BaseEvent, PluginBaseEvent, RemoteObject
from va_actors.core.events.convert import PROVIDER_FORM_MAX_CHARS
from va_actors.core.stt.events import STTTranscriptEvent, TranscriptResponse
from va_actors.wire import decode, encode_event


@dataclass(kw_only=True)
class ProviderDataEvent(PluginBaseEvent):
    """A custom event with a field a plugin may fill with anything."""

    type: str = field(default="plugin.test.provider_data", init=False)
    raw: Any = None
    items: list[Any] = field(default_factory=list)


@dataclass
class SdkResult:
    text: str
    at: dt.datetime


class Unprintable:
    __slots__ = ()

    def __repr__(self) -> str:
        raise RuntimeError("repr exploded")


def wire(event: BaseEvent) -> BaseEvent:
    frames = encode_event("a.events", event, seq=0, epoch=0, source="a")
    return decode([bytes(f) for f in frames]).event()


def test_a_declared_dataclass_still_travels_natively() -> None:
    event = STTTranscriptEvent(text="hi", response=TranscriptResponse(confidence=0.5))
    back = wire(event)
    assert isinstance(back, STTTranscriptEvent)
    assert back.response == TranscriptResponse(confidence=0.5)


def test_a_foreign_dataclass_travels_as_data_with_iso_datetimes() -> None:
    at = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    back = wire(STTTranscriptEvent(text="hi", response=SdkResult("hi", at)))  # type: ignore[arg-type]
    assert isinstance(back.response, RemoteObject)
    assert back.response.type_name == "SdkResult"
    assert back.response.data == {"text": "hi", "at": "2026-01-02T03:04:05+00:00"}
    assert back.response.text is None and back.response["text"] == "hi"
    with pytest.raises(AttributeError, match="no field 'words'; fields: at, text"):
        _ = back.response.words


def test_objects_in_untyped_fields_and_lists_arrive_and_warn_once_per_field(
        caplog: pytest.LogCaptureFixture) -> None:
    event = ProviderDataEvent(raw=object(), items=[object(), object(), {"ok": 1}])
    with caplog.at_level(logging.WARNING, logger="va_actors.core.events.convert"):
        back = wire(event)
        wire(event)
    assert isinstance(back, ProviderDataEvent)
    assert isinstance(back.raw, RemoteObject) and "object at" in str(back.raw.text)
    assert [type(i).__name__ for i in back.items] == ["RemoteObject", "RemoteObject", "dict"]
    fields = sorted(r.getMessage().split(":")[0] for r in caplog.records)
    assert fields == ["ProviderDataEvent.items", "ProviderDataEvent.raw"]


class SdkModel(BaseModel):
    text: str


def test_a_huge_object_goes_as_a_bounded_repr() -> None:
    big = SdkModel(text="x" * (PROVIDER_FORM_MAX_CHARS * 2))
    back = wire(ProviderDataEvent(raw=big))
    assert isinstance(back, ProviderDataEvent) and isinstance(back.raw, RemoteObject)
    assert back.raw.data is None and len(str(back.raw.text)) <= PROVIDER_FORM_MAX_CHARS + 1


def test_an_object_without_repr_is_dropped_but_the_event_arrives(
        caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="va_actors.core.events.convert"):
        back = wire(ProviderDataEvent(raw=Unprintable(), plugin_name="acme"))
    assert isinstance(back, ProviderDataEvent) and back.raw is None
    assert back.plugin_name == "acme"
    assert "ProviderDataEvent.raw" in caplog.text and "sent as None" in caplog.text


def test_a_remote_object_forwarded_again_keeps_its_form() -> None:
    first = wire(STTTranscriptEvent(text="hi", response=SdkResult("hi", dt.datetime(2026, 1, 1))))  # type: ignore[arg-type]
    again = wire(first)
    assert isinstance(again, STTTranscriptEvent) and again.response == first.response


def test_to_dict_of_a_plain_event_is_unchanged() -> None:
    event = STTTranscriptEvent(text="hi")
    data = event.to_dict()
    assert data["response"] == dataclasses.asdict(TranscriptResponse())
