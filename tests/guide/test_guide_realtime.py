"""The guide's Realtime example, ported: a WebSocket speech-to-speech session with barge-in."""

from __future__ import annotations

import acme
import pytest
from conftest import AcmeProvider
from guide_helpers import collect, speech, wait_for

from va_actors.core.edge.types import Participant
from va_actors.core.llm.events import (
    RealtimeAudioOutputDoneEvent,
    RealtimeAudioOutputEvent,
    RealtimeConnectedEvent,
    RealtimeDisconnectedEvent,
)


async def talk(rt: acme.Realtime, seconds: float, who: Participant) -> None:
    """Send microphone audio: 48 kHz stereo in 20 ms chunks."""
    for chunk in speech(48000, seconds, channels=2).chunks(960):
        await rt.simple_audio_response(chunk, who)


async def test_connect_and_speak(acme_provider: AcmeProvider) -> None:
    rt = acme.Realtime(api_key=acme_provider.api_key, base_url=acme_provider.base_url)
    rt.set_instructions("You are Acme's helper.")
    connected = collect(rt.events, RealtimeConnectedEvent)
    audio = collect(rt.events, RealtimeAudioOutputEvent)
    done = collect(rt.events, RealtimeAudioOutputDoneEvent)
    disconnected = collect(rt.events, RealtimeDisconnectedEvent)
    bob = Participant(user_id="bob", id="bob-1")
    await rt.connect()
    try:
        await talk(rt, 0.2, bob)
        await wait_for(lambda: bool(done))
    finally:
        await rt.close()
        await rt.events.wait()

    assert rt.connected is False and disconnected and disconnected[0].clean  # type: ignore[attr-defined]
    (event,) = connected
    assert event.session_config["instructions"] == "You are Acme's helper."  # type: ignore[attr-defined]
    assert event.capabilities == ["audio"]  # type: ignore[attr-defined]
    assert len(audio) == acme_provider.state.realtime_response_chunks
    for item in audio:
        assert item.data.sample_rate == 24000 and item.data.duration_ms == pytest.approx(20)  # type: ignore[attr-defined]
        assert item.response_id == "resp_1" and item.epoch == 0  # type: ignore[attr-defined]
    assert not done[0].interrupted  # type: ignore[attr-defined]
    # the provider got 16 kHz mono: 0.2 s -> 6400 bytes
    assert acme_provider.state.realtime_audio_bytes == pytest.approx(6400, rel=0.02)
    (session,) = acme_provider.state.realtime_sessions
    assert session["input_audio_format"] == {"encoding": "pcm16", "sample_rate": 16000}


async def test_interrupt_drops_audio_of_the_old_epoch(acme_provider: AcmeProvider) -> None:
    acme_provider.state.realtime_response_chunks = 25  # a 0.5 s answer, streamed over ~0.25 s
    rt = acme.Realtime(api_key=acme_provider.api_key, base_url=acme_provider.base_url)
    audio = collect(rt.events, RealtimeAudioOutputEvent)
    done = collect(rt.events, RealtimeAudioOutputDoneEvent)
    bob = Participant(user_id="bob", id="bob-1")
    await rt.connect()
    try:
        await talk(rt, 0.1, bob)
        await wait_for(lambda: len(audio) >= 2)
        await rt.interrupt()  # the user barged in
        heard = len(audio)
        await wait_for(lambda: bool(done))  # the provider finished streaming the old answer
        await rt.events.wait()
        assert len(audio) == heard  # ... but none of the rest was emitted
        assert rt.dropped_audio_chunks == 25 - heard
        assert done[0].interrupted and done[0].response_id == "resp_1"  # type: ignore[attr-defined]

        await talk(rt, 0.1, bob)  # the user's new question
        await wait_for(lambda: len(done) == 2)
        await rt.events.wait()
    finally:
        await rt.close()

    new = [e for e in audio if e.response_id == "resp_2"]  # type: ignore[attr-defined]
    assert len(new) == 25 and all(e.epoch == 1 for e in new)  # type: ignore[attr-defined]
    assert not done[1].interrupted  # type: ignore[attr-defined]
