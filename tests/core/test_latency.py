"""Per-turn latency: contiguous segments that add up to the voice-to-voice total."""

from __future__ import annotations

import pytest

from va_actors.core.events import BaseEvent
from va_actors.core.latency import (
    SEGMENTS,
    TurnLatencyEvent,
    TurnLatencyTracker,
    format_latency,
    median_p90,
)

MS = 1_000_000


def test_a_full_turn_is_split_into_contiguous_segments() -> None:
    tracker = TurnLatencyTracker()
    tracker.turn_ended(1_600 * MS, trailing_silence_ms=600)  # speech ended at 1000 ms
    tracker.final_transcript(1_900 * MS, "what time is it")
    tracker.text(2_000 * MS, "r1")
    tracker.text(2_050 * MS, "r1")  # later chunks change nothing
    tracker.audio(2_150 * MS, "r1")
    tracker.audio(2_170 * MS, "r1")
    event = tracker.playing(2_180 * MS, "r1")
    assert event is not None
    assert event.total_ms == pytest.approx(1_180)
    assert event.segments_ms == pytest.approx({"turn_detected": 600, "final_transcript": 300,
                                               "first_token": 100, "first_audio": 150,
                                               "audio_out": 30})
    assert sum(event.segments_ms.values()) == pytest.approx(event.total_ms)
    assert event.user_text == "what time is it"
    assert list(event.segments_ms) == list(SEGMENTS)
    assert format_latency(event).startswith("voice-to-voice 1180 ms = turn 600 + transcript 300")
    back = BaseEvent.from_dict(event.to_dict())
    assert isinstance(back, TurnLatencyEvent) and back.segments_ms == event.segments_ms


def test_playback_of_an_unknown_or_incomplete_reply_reports_nothing() -> None:
    tracker = TurnLatencyTracker()
    assert tracker.playing(5 * MS, "nobody") is None
    tracker.turn_ended(10 * MS, 0)
    tracker.final_transcript(11 * MS, "hi")
    tracker.text(12 * MS, "r1")
    assert tracker.playing(13 * MS, "r1") is None  # no TTS audio seen for it


def test_without_a_turn_detector_the_transcript_ends_the_turn() -> None:
    tracker = TurnLatencyTracker()
    tracker.final_transcript(100 * MS, "hello")
    tracker.text(150 * MS, "r9")
    tracker.audio(200 * MS, "r9")
    event = tracker.playing(230 * MS, "r9")
    assert event is not None and event.total_ms == pytest.approx(130)
    assert event.segments_ms["turn_detected"] == 0


def test_a_speech_model_answers_before_the_user_transcript_arrives() -> None:
    # A Realtime model: its VAD ends the turn, it speaks, the user's transcript comes late.
    tracker = TurnLatencyTracker()
    tracker.turn_ended(1_500 * MS, trailing_silence_ms=500)
    tracker.text(1_900 * MS, "resp_1", speech_model=True)
    tracker.audio(1_950 * MS, "resp_1")
    tracker.final_transcript(2_100 * MS, "what is the weather")
    event = tracker.playing(2_000 * MS, "resp_1")
    assert event is not None and event.total_ms == pytest.approx(1_000)
    assert event.segments_ms == pytest.approx({"turn_detected": 500, "final_transcript": 0,
                                               "first_token": 400, "first_audio": 50,
                                               "audio_out": 50})


def test_llm_text_still_waits_for_the_turn_transcript() -> None:
    # A reply of the turn before, arriving once a new turn ended, is not this turn's.
    tracker = TurnLatencyTracker()
    tracker.turn_ended(1_000 * MS, 0)
    tracker.text(1_100 * MS, "old")
    tracker.final_transcript(1_200 * MS, "new question")
    tracker.text(1_300 * MS, "new")
    tracker.audio(1_400 * MS, "new")
    event = tracker.playing(1_500 * MS, "new")
    assert event is not None and event.segments_ms["first_token"] == pytest.approx(100)
    assert tracker.playing(1_600 * MS, "old") is None


def test_a_final_transcript_that_arrives_before_its_turn_end_still_counts() -> None:
    # The STT publishes ~1 ms after the detector; on two sockets the observer can
    # read the transcript first. Its header time says which turn it belongs to.
    tracker = TurnLatencyTracker()
    tracker.final_transcript(2_001 * MS, "tell me a joke")
    tracker.turn_ended(2_000 * MS, trailing_silence_ms=200)
    tracker.text(2_100 * MS, "r2")
    tracker.audio(2_300 * MS, "r2")
    event = tracker.playing(2_310 * MS, "r2")
    assert event is not None and event.user_text == "tell me a joke"
    assert event.total_ms == pytest.approx(510)
    assert event.segments_ms["final_transcript"] == pytest.approx(1)


def test_an_unanswered_transcript_of_an_earlier_turn_is_not_carried_on() -> None:
    tracker = TurnLatencyTracker()
    tracker.turn_ended(1_000 * MS, 0)
    tracker.final_transcript(1_050 * MS, "never answered")
    tracker.turn_ended(5_000 * MS, 0)
    tracker.text(5_100 * MS, "r3")  # no transcript of this turn yet: not its reply
    tracker.final_transcript(5_200 * MS, "second")
    tracker.text(5_300 * MS, "r4")
    tracker.audio(5_400 * MS, "r4")
    event = tracker.playing(5_500 * MS, "r4")
    assert event is not None and event.user_text == "second"
    assert event.segments_ms["final_transcript"] == pytest.approx(200)


def test_median_and_p90_of_turn_totals() -> None:
    assert median_p90([900.0, 700.0, 800.0]) == (800.0, 900.0)
    assert median_p90([float(ms) for ms in range(100, 1100, 100)]) == (550.0, 900.0)
    with pytest.raises(ValueError):
        median_p90([])
