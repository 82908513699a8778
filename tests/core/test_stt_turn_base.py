"""STT and TurnDetector bases: the guide's emit helpers produce the right events."""

from __future__ import annotations

from typing import Any

import pytest

from va_actors.core import stt, turn_detection
from va_actors.core.audio import PcmData
from va_actors.core.edge import Participant
from va_actors.core.events import BaseEvent


class WordSTT(stt.STT):
    """Emits a partial per chunk and a final on the third."""

    def __init__(self) -> None:
        super().__init__(provider_name="words")
        self.chunks = 0

    async def process_audio(self, pcm_data: PcmData,
                            participant: Participant | None = None) -> None:
        self.chunks += 1
        if self.chunks < 3:
            self._emit_partial_transcript_event("hel" * self.chunks, participant)
        else:
            self._emit_transcript_event("hello world", participant)
            self._emit_turn_ended_event(participant, confidence=0.9)


async def test_stt_emits_partials_then_final_with_participant() -> None:
    engine = WordSTT()
    got: list[BaseEvent] = []
    engine.events.subscribe(got.append, prefix="plugin.")
    who = Participant(user_id="ana", id="p1")
    chunk = PcmData(sample_rate=16000, format="s16")
    for _ in range(3):
        await engine.process_audio(chunk, who)
    kinds = [type(e).__name__ for e in got]
    assert kinds == ["STTPartialTranscriptEvent", "STTPartialTranscriptEvent",
                     "STTTranscriptEvent", "TurnEndedEvent"]
    assert got[2].text == "hello world" and got[2].participant == who  # type: ignore[attr-defined]
    assert got[0].mode == "replacement"  # type: ignore[attr-defined]
    assert all(e.plugin_name == "words" for e in got)  # type: ignore[attr-defined]


async def test_stt_start_twice_is_a_clear_error_and_empty_text_is_ignored() -> None:
    engine = WordSTT()
    await engine.start()
    with pytest.raises(RuntimeError, match="start\\(\\) called twice"):
        await engine.start()
    got: list[BaseEvent] = []
    engine.events.subscribe(got.append, prefix="")
    engine._emit_transcript_event("  ")
    assert got == []


class EnergyTurns(turn_detection.TurnDetector):
    """Speech while the chunk is loud; awaits the emit helpers like current VA code."""

    def __init__(self) -> None:
        super().__init__(confidence_threshold=0.5)
        self.speaking = False

    async def process_audio(self, audio_data: PcmData, participant: Participant | None = None,
                            conversation: Any = None) -> None:
        loud = bool(audio_data.samples.size) and float(abs(audio_data.samples).mean()) > 1000
        if loud and not self.speaking:
            self.speaking = True
            await self._emit_turn_started_event(participant, confidence=0.8)
        elif not loud and self.speaking:
            self.speaking = False
            self._emit_turn_ended_event(participant, trailing_silence_ms=20)  # not awaited


async def test_turn_detector_helpers_work_awaited_or_not() -> None:
    import numpy as np

    detector = EnergyTurns()
    got: list[BaseEvent] = []
    detector.events.subscribe(got.append, prefix="plugin.turn")
    loud = PcmData(sample_rate=16000, format="s16", samples=np.full(320, 5000, np.int16))
    quiet = PcmData(sample_rate=16000, format="s16", samples=np.zeros(320, np.int16))
    for chunk in (quiet, loud, loud, quiet):
        await detector.process_audio(chunk)
    assert [e.type for e in got] == ["plugin.turn_started", "plugin.turn_ended"]
    assert got[1].trailing_silence_ms == 20  # type: ignore[attr-defined]


def test_turn_detector_threshold_is_validated() -> None:
    with pytest.raises(ValueError, match="confidence_threshold"):
        EnergyTurns.__mro__[1].__init__(EnergyTurns(), confidence_threshold=3)  # type: ignore[misc]
