"""The guide's Realtime block: connect() and simple_audio_response() only, as written."""

from __future__ import annotations

import asyncio

import pytest
from guide_actors import GuideRealtime
from guide_helpers import collect, over_wire, speech

from va_actors.core.llm import LLMResponseFinal
from va_actors.core.llm.events import (
    RealtimeAudioOutputEvent,
    RealtimeConnectedEvent,
    RealtimeDisconnectedEvent,
)


async def test_realtime_block_connects_sends_audio_and_speaks() -> None:
    plugin = GuideRealtime()
    connected = collect(plugin.events, RealtimeConnectedEvent)
    audio = collect(plugin.events, RealtimeAudioOutputEvent)
    await plugin.connect()
    assert plugin.connected
    for chunk in speech(16000, 0.1).chunks(320):  # 100 ms in 20 ms chunks
        await plugin.simple_audio_response(chunk)
    await asyncio.sleep(0)
    assert connected and plugin.ws.received == 1600
    assert [(e.response_id, e.epoch) for e in audio] == [("resp_1", 0)] * 3
    back = over_wire(audio[0])
    assert isinstance(back, RealtimeAudioOutputEvent) and back.data is not None
    assert back.data.sample_rate == 24000


async def test_realtime_block_interrupt_drops_the_interrupted_reply() -> None:
    plugin = GuideRealtime()
    audio = collect(plugin.events, RealtimeAudioOutputEvent)
    await plugin.connect()
    for chunk in speech(16000, 0.1).chunks(320):
        await plugin.simple_audio_response(chunk)
    await plugin.interrupt()  # barge-in (the guide: never overridden)
    plugin._emit_audio_output_event(speech(24000, 0.02), "resp_1")  # the provider is late
    for chunk in speech(16000, 0.1).chunks(320):
        await plugin.simple_audio_response(chunk)
    await asyncio.sleep(0)
    assert [(e.response_id, e.epoch) for e in audio] == [("resp_1", 0)] * 3 + [("resp_2", 1)] * 3
    assert plugin.dropped_audio_chunks == 1


async def test_realtime_block_answers_text_with_the_base_default(
        caplog: pytest.LogCaptureFixture) -> None:
    plugin = GuideRealtime()  # the block defines no simple_response
    items = [item async for item in plugin.respond("hello?")]
    assert isinstance(items[-1], LLMResponseFinal) and items[-1].text == ""
    assert "takes speech only" in caplog.text


async def test_realtime_block_close_disconnects() -> None:
    plugin = GuideRealtime()
    gone = collect(plugin.events, RealtimeDisconnectedEvent)
    await plugin.connect()
    await plugin.close()
    await asyncio.sleep(0)
    assert gone and not plugin.connected and plugin.ws.closed
