"""The guide's custom events, ported: defined as dataclasses, registered, sent, round-tripped."""

from __future__ import annotations

import acme
from acme import events as acme_events
from conftest import AcmeProvider
from guide_helpers import speech, wait_for

from va_actors.core.edge.types import Participant
from va_actors.core.events import BaseEvent, event_class
from va_actors.wire import codec


def test_custom_event_round_trips_through_to_dict_and_from_dict() -> None:
    event = acme.AcmeUsageEvent(plugin_name="acme", audio_ms=420.5, model="acme-listen-1",
                                details={"language": "en", "words": [1, 2]},
                                participant=Participant(user_id="alice", id="a1"))
    data = event.to_dict()
    assert data["type"] == "plugin.acme.usage"
    again = acme.AcmeUsageEvent.from_dict(data)
    generic = BaseEvent.from_dict(data)  # found by its type string
    for back in (again, generic):
        assert isinstance(back, acme.AcmeUsageEvent)
        assert back == event


def test_custom_event_crosses_the_wire() -> None:
    event = acme.AcmeUsageEvent(plugin_name="acme", audio_ms=1.5, details={"k": "v"})
    frames = codec.encode_event("stt.events", event, seq=1, epoch=0, source="stt")
    back = codec.decode(frames).event()
    assert isinstance(back, acme.AcmeUsageEvent) and back == event


def test_register_events_from_module() -> None:
    stt = acme.STT(api_key="k")  # registers acme.events in __init__, as the guide does
    assert event_class("plugin.acme.usage") is acme.AcmeUsageEvent
    stt.events.register_events_from_module(acme_events, prefix="plugin.acme")


async def test_plugin_sends_its_custom_event(acme_provider: AcmeProvider) -> None:
    stt = acme.STT(api_key=acme_provider.api_key, base_url=acme_provider.base_url)
    usage: list[acme.AcmeUsageEvent] = []

    @stt.events.subscribe
    async def on_usage(event: acme.AcmeUsageEvent) -> None:
        usage.append(event)

    await stt.start()
    try:
        for chunk in speech(16000, 0.3).chunks(320):
            await stt.process_audio(chunk)
        await stt.finalize()
        await wait_for(lambda: bool(usage))
    finally:
        await stt.close()
    assert usage[0].audio_ms == 300 and usage[0].details == {"language": "en"}
