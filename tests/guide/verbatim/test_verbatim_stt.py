"""The guide's STT blocks, as written: quickstart, base class, resampling, thread pool.

Each runs in-process, and its transcript event crosses the real wire codec
whatever object the provider SDK answered with.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import threading

import acme_sdk
import guide_quickstart_acme
import pytest
from guide_actors import GuideSTT, ThreadPoolSTT
from guide_blocks import run_block
from guide_helpers import collect, over_wire, speech
from guide_providers import RESPONSE_KINDS, DataclassTranscript, PydanticTranscript, SlotsTranscript

from va_actors.core import stt
from va_actors.core.audio import PcmData
from va_actors.core.edge.types import Participant
from va_actors.core.events import RemoteObject
from va_actors.core.stt.events import STTTranscriptEvent

ALICE = Participant(user_id="alice", id="alice-1")


def test_quickstart_init_exports_the_stt() -> None:
    assert guide_quickstart_acme.__all__ == ["STT"]
    assert issubclass(guide_quickstart_acme.STT, stt.STT)


async def test_quickstart_stt_transcribes_with_the_sdk_and_passes_its_response_on() -> None:
    plugin = guide_quickstart_acme.STT(api_key="acme-key", model="acme-2")
    finals = collect(plugin.events, STTTranscriptEvent)
    for chunk in speech(48000, 0.1, channels=2).chunks(960):  # WebRTC: 48 kHz stereo, 20 ms
        await plugin.process_audio(chunk, ALICE)
    await asyncio.sleep(0)
    assert len(finals) == 5
    event = finals[0]
    assert isinstance(event, STTTranscriptEvent)
    assert event.text == "heard 320 samples" and event.participant == ALICE
    assert isinstance(event.response, acme_sdk.Transcription)  # the SDK's own object
    assert event.confidence == pytest.approx(0.91) and event.language == "en"
    assert plugin.client.requests[0] == {"samples": 320, "sample_rate": 16000, "model": "acme-2"}
    await plugin.close()
    assert plugin.client.closed


async def test_quickstart_transcript_crosses_the_wire_with_the_sdk_response_as_data() -> None:
    plugin = guide_quickstart_acme.STT(api_key="acme-key")
    finals = collect(plugin.events, STTTranscriptEvent)
    await plugin.process_audio(speech(16000, 0.02), ALICE)
    await asyncio.sleep(0)
    back = over_wire(finals[0])
    assert isinstance(back, STTTranscriptEvent)
    assert back.text == "heard 320 samples" and back.participant == ALICE
    assert isinstance(back.response, RemoteObject) and back.response.type_name == "Transcription"
    assert back.response.words[0].word == "heard"  # read as it was in the sending process
    assert back.response.created_at == "2026-11-25T09:30:00+00:00"
    assert back.confidence == pytest.approx(0.91) and back.language == "en"


@pytest.mark.parametrize("kind", RESPONSE_KINDS)
async def test_base_class_stt_emits_the_providers_object_in_process(kind: str) -> None:
    plugin = GuideSTT(response_kind=kind)
    finals = collect(plugin.events, STTTranscriptEvent)
    await plugin.process_audio(speech(24000, 0.02), ALICE)
    await asyncio.sleep(0)
    (event,) = finals
    assert event.text == "heard 320 samples"  # resampled 24 kHz -> 16 kHz
    expected = {"pydantic": PydanticTranscript, "dataclass": DataclassTranscript,
                "slots": SlotsTranscript}[kind]
    assert isinstance(event.response, expected)
    assert event.confidence == {"pydantic": 0.9, "dataclass": 0.8, "slots": 0.7}[kind]
    await plugin.close()
    assert plugin.provider.closed


@pytest.mark.parametrize("kind", RESPONSE_KINDS)
async def test_base_class_stt_transcript_always_crosses_the_wire(
        kind: str, caplog: pytest.LogCaptureFixture) -> None:
    plugin = GuideSTT(response_kind=kind)
    finals = collect(plugin.events, STTTranscriptEvent)
    for _ in range(3):
        await plugin.process_audio(speech(16000, 0.02), ALICE)
    await asyncio.sleep(0)
    with caplog.at_level(logging.WARNING, logger="va_actors.core.events.convert"):
        received = [over_wire(event) for event in finals]
    assert [e.text for e in received] == ["heard 320 samples"] * 3
    response = received[0].response
    assert isinstance(response, RemoteObject)
    warnings = [r.getMessage() for r in caplog.records]
    if kind == "slots":  # no JSON form: its repr goes, with one warning for the field
        assert response.text == "<SlotsTranscript text='heard 320 samples' confidence=0.7>"
        assert received[0].confidence is None
        assert len(warnings) == 1 and "STTTranscriptEvent.response" in warnings[0]
    else:
        assert response.samples == 320
        assert received[0].confidence == {"pydantic": 0.9, "dataclass": 0.8}[kind]
        assert warnings == []
    if kind == "pydantic":
        assert response.created_at == "2026-11-25T09:30:00+00:00"
    if kind == "dataclass":  # asdict, datetimes as ISO text, durations in seconds
        assert response.received_at == "2026-11-25T09:30:00+00:00"
        assert response.words[0].end == pytest.approx(0.2)


def test_pcm_resampling_block_gives_16k_mono_as_its_comments_say() -> None:
    block = run_block("guide_pcm_resampling.py", PcmData=PcmData)
    seen: dict[str, object] = {}

    def keep_locals(frame, event, arg):  # type: ignore[no-untyped-def]
        if event == "return" and frame.f_code is block["process_audio"].__code__:
            seen.update(frame.f_locals)
        return keep_locals

    coroutine = block["process_audio"](None, speech(44100, 0.5, channels=2))
    sys.settrace(keep_locals)
    try:
        with pytest.raises(StopIteration):  # it awaits nothing: one step runs it through
            coroutine.send(None)
    finally:
        sys.settrace(None)
    assert seen["sample_rate"] == 16000 and seen["channels"] == 1
    audio_bytes = seen["audio_bytes"]
    assert getattr(audio_bytes, "size", None) == 8000  # 0.5 s at 16 kHz


async def test_thread_pool_stt_transcribes_off_the_loop_and_passes_the_result() -> None:
    plugin = ThreadPoolSTT()
    finals = collect(plugin.events, STTTranscriptEvent)
    await plugin.process_audio(speech(16000, 0.04), ALICE)
    await asyncio.sleep(0)
    (event,) = finals
    # the block passes result positionally: _emit_transcript_event(text, participant, result)
    assert event.text == "heard 640 samples" and event.participant == ALICE
    assert isinstance(event.response, DataclassTranscript)
    assert plugin.threads and threading.get_ident() not in plugin.threads
    back = over_wire(event)
    assert isinstance(back.response, RemoteObject) and back.response.samples == 640
    await plugin.close()
    assert plugin._executor._shutdown
