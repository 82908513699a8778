"""Realtime base: epoch-stamped audio, stale audio dropped after interrupt(), events."""

from __future__ import annotations

from typing import Any

import msgpack
import numpy as np
import pytest

from va_actors.core import llm
from va_actors.core.audio.pcm import PcmData
from va_actors.core.edge.types import Participant
from va_actors.core.events import BaseEvent
from va_actors.core.llm.events import (
    RealtimeAgentSpeechTranscriptionEvent,
    RealtimeAudioOutputDoneEvent,
    RealtimeAudioOutputEvent,
    RealtimeConnectedEvent,
    RealtimeDisconnectedEvent,
    RealtimeErrorEvent,
    RealtimeUserSpeechTranscriptionEvent,
)


class FakeRealtime(llm.Realtime):
    """A speech-to-speech plugin whose 'provider' is driven by the test."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.sent: list[PcmData] = []

    async def connect(self) -> None:
        self._emit_connected_event({"voice": "alloy", "client": object()}, ["audio", "text"])

    async def simple_audio_response(self, pcm: PcmData,
                                    participant: Participant | None = None) -> None:
        self._current_participant = participant
        self.sent.append(pcm)

    async def simple_response(self, text: str, processors: Any = None,
                              participant: Any = None) -> None:
        return None

    async def close(self) -> None:
        self._emit_disconnected_event("bye", clean=True)


def pcm(n: int = 160) -> PcmData:
    return PcmData.from_numpy(np.zeros(n, dtype=np.int16), sample_rate=16000, format="s16",
                              channels=1)


def capture(model: llm.LLM) -> list[BaseEvent]:
    got: list[BaseEvent] = []
    model.events.subscribe(prefix="")(got.append)
    return got


def assert_round_trips(events: list[BaseEvent]) -> None:
    for event in events:
        data = event.to_dict()
        msgpack.packb(data)
        back = BaseEvent.from_dict(data)
        assert type(back) is type(event)
        again = back.to_dict()
        assert again.pop("timestamp") == pytest.approx(data.pop("timestamp"), abs=1e-3)
        assert again == data


def audio_events(events: list[BaseEvent]) -> list[RealtimeAudioOutputEvent]:
    return [e for e in events if isinstance(e, RealtimeAudioOutputEvent)]


async def test_audio_of_an_older_epoch_is_dropped_after_interrupt() -> None:
    model = FakeRealtime()
    events = capture(model)
    assert model._emit_audio_output_event(pcm(), response_id="r1") is True
    await model.interrupt()
    # the provider keeps streaming the interrupted response: dropped
    assert model._emit_audio_output_event(pcm(), response_id="r1") is False
    assert model._emit_audio_output_event(pcm(), response_id="r1") is False
    assert model.dropped_audio_chunks == 2
    # a response that starts after the interrupt plays, stamped with the new epoch
    assert model._emit_audio_output_event(pcm(), response_id="r2") is True
    model._emit_audio_output_done_event("r1")
    model._emit_audio_output_done_event("r2")
    assert [(e.response_id, e.epoch) for e in audio_events(events)] == [("r1", 0), ("r2", 1)]
    done = [(e.response_id, e.interrupted, e.epoch) for e in events
            if isinstance(e, RealtimeAudioOutputDoneEvent)]
    assert done == [("r1", True, 0), ("r2", False, 1)]
    assert_round_trips(events)


async def test_responses_without_ids_use_the_done_event_as_boundary() -> None:
    model = FakeRealtime()
    events = capture(model)
    assert model._emit_audio_output_event(pcm()) is True
    await model.interrupt()
    assert model._emit_audio_output_event(pcm()) is False
    model._emit_audio_output_done_event(interrupted=True)
    assert model._emit_audio_output_event(pcm()) is True
    assert [e.epoch for e in audio_events(events)] == [0, 1]


async def test_explicit_epoch_and_supervisor_epochs() -> None:
    model = FakeRealtime()
    events = capture(model)
    await model.interrupt(epoch=7)
    request_epoch = model._start_response("r9")
    assert request_epoch == 7
    assert model._emit_audio_output_event(pcm(), epoch=6) is False
    assert model._emit_audio_output_event(pcm(), response_id="r9") is True
    assert [e.epoch for e in audio_events(events)] == [7]


async def test_audio_must_be_pcm_data() -> None:
    model = FakeRealtime()
    with pytest.raises(TypeError, match=r"PcmData\.from_bytes"):
        model._emit_audio_output_event(b"\x00\x00")  # type: ignore[arg-type]


async def test_connection_events_and_state() -> None:
    model = FakeRealtime()
    events = capture(model)
    assert model.connected is False
    await model.connect()
    assert model.connected is True
    await model.close()
    assert model.connected is False
    model._emit_disconnected_event("dropped", was_clean=False)
    connected = next(e for e in events if isinstance(e, RealtimeConnectedEvent))
    assert connected.session_config["voice"] == "alloy"
    assert isinstance(connected.session_config["client"], str)  # made serialisable
    assert connected.capabilities == ["audio", "text"]
    assert connected.session_id == model.session_id
    assert [(e.reason, e.clean) for e in events if isinstance(e, RealtimeDisconnectedEvent)] == [
        ("bye", True), ("dropped", False)]
    assert_round_trips(events)


async def test_errors_and_transcripts() -> None:
    model = FakeRealtime()
    events = capture(model)
    user = Participant(user_id="u1", id="p1")
    await model.simple_audio_response(pcm(), user)
    model._emit_user_speech_transcription("what is", mode="delta")
    model._emit_user_speech_transcription(" the time", mode="delta")
    model._emit_user_speech_transcription("What is the time?", mode="final")
    model._emit_agent_speech_transcription("It is", mode="delta")
    model._emit_agent_speech_transcription(" noon and", mode="delta")
    await model.interrupt()  # the user cuts the agent off
    model._emit_error_event(ConnectionError("ws closed"), context="receive")
    with pytest.raises(ValueError, match="mode"):
        model._emit_user_speech_transcription("x", mode="partial")  # type: ignore[arg-type]

    history = model.conversation.messages
    assert [(m.role, m.content, m.user_id, m.interrupted) for m in history] == [
        ("user", "What is the time?", "u1", False),
        ("assistant", "It is noon and", None, True),
    ]
    user_events = [e for e in events if isinstance(e, RealtimeUserSpeechTranscriptionEvent)]
    assert user_events[0].participant is not None and user_events[0].participant.user_id == "u1"
    assert [e.mode for e in events if isinstance(e, RealtimeAgentSpeechTranscriptionEvent)] == [
        "delta", "delta"]
    error = next(e for e in events if isinstance(e, RealtimeErrorEvent))
    assert error.is_recoverable and error.context == "receive"
    assert_round_trips(events)


async def test_an_empty_final_transcript_drops_the_pending_message() -> None:
    model = FakeRealtime()
    model._emit_user_speech_transcription("uh", mode="replacement")
    model._emit_user_speech_transcription("", mode="final")
    assert model.conversation.messages == []


async def test_defaults_and_validation() -> None:
    model = FakeRealtime(fps=2)
    assert model.fps == 2 and model.provider_name == "realtime"
    await model.watch_video_track(object())  # audio-only providers ignore video
    await model.stop_watching_video_track()
    with pytest.raises(ValueError, match="fps"):
        FakeRealtime(fps=0)
    assert isinstance(model, llm.AudioLLM) and isinstance(model, llm.VideoLLM)


class SpeechOnlyRealtime(llm.Realtime):
    """What the guide's Realtime defines: connect, simple_audio_response, close."""

    async def connect(self) -> None:
        self._emit_connected_event()

    async def simple_audio_response(self, pcm: PcmData,
                                    participant: Participant | None = None) -> None:
        return None

    async def close(self) -> None:
        self._emit_disconnected_event()


async def test_a_speech_only_realtime_needs_no_simple_response(
        caplog: pytest.LogCaptureFixture) -> None:
    model = SpeechOnlyRealtime()
    replies = [item async for item in model.respond("hello there")]
    (final,) = replies
    assert isinstance(final, llm.LLMResponseFinal) and final.text == "" and final.error is None
    assert "cannot reply to text" in caplog.text
