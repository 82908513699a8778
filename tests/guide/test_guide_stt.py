"""The guide's STT example, ported: user audio over a WebSocket, transcripts back as events."""

from __future__ import annotations

import acme
import pytest
from conftest import AcmeProvider
from guide_helpers import collect, speech, wait_for

from va_actors.core.edge.types import Participant
from va_actors.core.stt.events import (
    STTConnectedEvent,
    STTErrorEvent,
    STTPartialTranscriptEvent,
    STTTranscriptEvent,
)
from va_actors.core.turn_detection.events import TurnEndedEvent


async def test_transcripts_arrive_as_events_with_the_participant(
        acme_provider: AcmeProvider) -> None:
    stt = acme.STT(api_key=acme_provider.api_key, base_url=acme_provider.base_url)
    finals = collect(stt.events, STTTranscriptEvent)
    partials = collect(stt.events, STTPartialTranscriptEvent)
    turns = collect(stt.events, TurnEndedEvent)
    connected = collect(stt.events, STTConnectedEvent)
    alice = Participant(user_id="alice", id="alice-session")
    await stt.start()
    try:
        # 48 kHz stereo, as a WebRTC edge delivers it, in 20 ms chunks
        for chunk in speech(48000, 0.4, channels=2).chunks(960):
            await stt.process_audio(chunk, alice)
        await wait_for(lambda: len(partials) == 3)
        await stt.finalize()
        await wait_for(lambda: bool(finals) and bool(turns))
    finally:
        await stt.close()

    assert connected and stt.turn_detection
    assert [p.text for p in partials] == ["hello", "hello from", "hello from acme"]
    assert all(p.participant == alice for p in partials)
    (final,) = finals
    assert isinstance(final, STTTranscriptEvent)
    assert final.text == "hello from acme" and final.is_final
    assert final.participant == alice
    assert final.confidence == pytest.approx(0.93) and final.language == "en"
    assert final.response.audio_duration_ms == pytest.approx(400, abs=5)
    assert final.plugin_name == "acme"
    assert turns[0].participant == alice
    # what went over the wire: 16 kHz mono s16, as the provider demanded
    (config,) = acme_provider.state.stt_configs
    assert config["sample_rate"] == 16000 and config["encoding"] == "pcm_s16le"
    assert acme_provider.state.stt_audio_bytes == pytest.approx(0.4 * 16000 * 2, rel=0.02)


async def test_provider_errors_become_error_events(acme_provider: AcmeProvider) -> None:
    stt = acme.STT(api_key=acme_provider.api_key, base_url=acme_provider.base_url)
    errors = collect(stt.events, STTErrorEvent)
    await stt.start()
    try:
        assert stt._ws is not None
        await stt._ws.send_bytes(b"\x00\x01\x02")  # an odd byte count: the provider objects
        await wait_for(lambda: bool(errors))
    finally:
        await stt.close()
    assert "odd byte count" in errors[0].error_message


async def test_a_bad_key_is_refused(acme_provider: AcmeProvider) -> None:
    stt = acme.STT(api_key="wrong", base_url=acme_provider.base_url)
    with pytest.raises(Exception, match="401"):
        await stt.start()
    await stt.close()
