"""TTS base: format conversion of every stream_audio shape, epochs, errors."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import numpy as np
import pytest

from va_actors.core import tts
from va_actors.core.audio import PcmData
from va_actors.core.tts.events import (
    TTSAudioEvent,
    TTSErrorEvent,
    TTSSynthesisCompleteEvent,
)


def tone(rate: int, seconds: float, channels: int = 1, freq: float = 440.0) -> PcmData:
    t = np.arange(int(rate * seconds)) / rate
    wave = (0.3 * 32767 * np.sin(2 * np.pi * freq * t)).astype(np.int16)
    samples = np.tile(wave, (channels, 1)) if channels > 1 else wave
    return PcmData(sample_rate=rate, format="s16", samples=samples, channels=channels)


class ShapeTTS(tts.TTS):
    """Returns whatever shape the test asks for, like different providers do."""

    def __init__(self, result: Any) -> None:
        super().__init__()
        self.result = result
        self.stopped = 0

    async def stream_audio(self, text: str, *args: Any, **kwargs: Any) -> Any:
        return self.result() if callable(self.result) else self.result

    async def stop_audio(self) -> None:
        self.stopped += 1


async def collect(engine: tts.TTS, text: str = "Hello there.") -> list[tts.TTSOutputChunk]:
    return [chunk async for chunk in engine.send_iter(text)]


def total_seconds(chunks: list[tts.TTSOutputChunk]) -> float:
    return sum(c.data.duration for c in chunks if c.data is not None)


async def test_single_pcm_at_24k_becomes_one_final_16k_chunk() -> None:
    chunks = await collect(ShapeTTS(tone(24000, 0.5)))
    assert len(chunks) == 1 and chunks[0].final
    assert chunks[0].data is not None and chunks[0].data.sample_rate == 16000
    assert total_seconds(chunks) == pytest.approx(0.5, abs=0.005)


async def test_raw_bytes_are_read_in_the_declared_source_format() -> None:
    engine = ShapeTTS(tone(22050, 0.4).to_bytes())
    engine.source_format = tts.AudioSpec(22050, 1)
    chunks = await collect(engine)
    assert total_seconds(chunks) == pytest.approx(0.4, abs=0.005)


async def test_async_iterator_of_odd_sized_bytes_is_realigned() -> None:
    raw = tone(16000, 0.3).to_bytes()

    async def pieces() -> AsyncIterator[bytes]:
        for start in range(0, len(raw), 333):  # odd sizes split samples in half
            yield raw[start:start + 333]

    engine = ShapeTTS(pieces)
    chunks = await collect(engine)
    assert chunks[-1].final and not any(c.final for c in chunks[:-1])
    out = np.concatenate([c.data.samples for c in chunks if c.data is not None])
    np.testing.assert_array_equal(out, tone(16000, 0.3).samples)


async def test_sync_generator_runs_off_the_event_loop() -> None:
    loop_thread = threading.get_ident()
    threads: list[int] = []

    def synth() -> Iterator[PcmData]:
        for _ in range(3):
            threads.append(threading.get_ident())
            yield tone(48000, 0.1, channels=2)

    engine = ShapeTTS(synth)
    engine.set_output_format(sample_rate=24000, channels=1)
    chunks = await collect(engine)
    assert loop_thread not in threads
    assert all(c.data is None or c.data.sample_rate == 24000 for c in chunks)
    assert total_seconds(chunks) == pytest.approx(0.3, abs=0.005)


async def test_streamed_resampling_has_no_clicks_between_chunks() -> None:
    whole = tone(24000, 0.5, freq=300)
    pieces = [whole.samples[i:i + 480] for i in range(0, whole.samples.size, 480)]
    engine = ShapeTTS(lambda: iter(PcmData(sample_rate=24000, format="s16", samples=p)
                                   for p in pieces))
    chunks = await collect(engine)
    out = np.concatenate([c.data.samples for c in chunks if c.data is not None]).astype(float)
    steps = np.abs(np.diff(out[200:-200]))
    # A 300 Hz tone at 16 kHz moves at most ~1300 per sample; a click would jump far more.
    assert steps.max() < 1500


async def test_interrupt_stops_emission_and_no_old_epoch_chunk_escapes() -> None:
    gate = asyncio.Event()

    async def slow() -> AsyncIterator[PcmData]:
        for i in range(50):
            if i == 3:
                gate.set()
            yield tone(16000, 0.02)
            await asyncio.sleep(0.005)

    engine = ShapeTTS(slow)
    audio: list[TTSAudioEvent] = []
    done: list[TTSSynthesisCompleteEvent] = []
    engine.events.subscribe(audio.append, event_types=[TTSAudioEvent])
    engine.events.subscribe(done.append, event_types=[TTSSynthesisCompleteEvent])
    sending = asyncio.create_task(engine.send("A long answer."))
    await gate.wait()
    old_epoch = engine.epoch
    await engine.interrupt()
    await asyncio.wait_for(sending, 2)
    emitted_after = [e for e in audio if e.epoch != old_epoch]
    assert engine.epoch == old_epoch + 1 and engine.stopped == 1
    assert emitted_after == []
    assert len(audio) <= 5  # stopped within a chunk of the interrupt, not after 50
    assert done and done[0].interrupted


async def test_interrupt_adopts_the_session_epoch_and_ignores_older_ones() -> None:
    engine = ShapeTTS(tone(16000, 0.1))
    await engine.interrupt()  # the guide's form: one more
    assert (engine.epoch, engine.stopped) == (1, 1)
    await engine.interrupt(epoch=5)  # the session's epoch, several bumps later
    assert (engine.epoch, engine.stopped) == (5, 2)
    await engine.interrupt(epoch=5)  # a repeated broadcast
    await engine.interrupt(epoch=3)  # an older one
    assert (engine.epoch, engine.stopped) == (5, 2)
    chunks = await collect(engine)
    assert chunks and {c.epoch for c in chunks} == {5}


class OverridingTTS(ShapeTTS):
    """A plugin that overrides interrupt() the old way: no epoch, then super()."""

    def __init__(self) -> None:
        super().__init__(tone(16000, 0.1))
        self.hooks: list[int] = []

    async def interrupt(self) -> None:  # type: ignore[override]
        self.hooks.append(self.epoch)  # the epoch has already moved
        await super().interrupt()


class SilentOverrideTTS(ShapeTTS):
    """An override that never calls super(): the epoch moves all the same."""

    async def interrupt(self, epoch: int | None = None) -> None:
        return None


async def test_interrupt_overrides_keep_one_epoch_moved_once() -> None:
    engine = OverridingTTS()
    await engine.interrupt(epoch=4)  # type: ignore[call-arg]
    assert (engine.epoch, engine.hooks, engine.stopped) == (4, [4], 1)
    await engine.interrupt()
    assert (engine.epoch, engine.hooks, engine.stopped) == (5, [4, 5], 2)
    await engine.interrupt(epoch=2)  # type: ignore[call-arg]
    assert (engine.epoch, engine.hooks) == (5, [4, 5])  # older: the hook does not run
    silent = SilentOverrideTTS(tone(16000, 0.1))
    await silent.interrupt(epoch=3)
    assert (silent.epoch, silent.stopped) == (3, 0)


async def test_empty_text_is_an_error_event_not_a_crash() -> None:
    engine = ShapeTTS(tone(16000, 0.1))
    errors: list[TTSErrorEvent] = []
    engine.events.subscribe(errors.append, event_types=[TTSErrorEvent])
    assert await collect(engine, "   ") == []
    assert errors and "empty text" in errors[0].error_message and errors[0].temporary


async def test_provider_error_sends_event_and_reraises() -> None:
    async def broken() -> None:
        raise ConnectionError("provider 503")

    class Broken(ShapeTTS):
        async def stream_audio(self, text: str, *args: Any, **kwargs: Any) -> Any:
            await broken()

    engine = Broken(None)
    errors: list[TTSErrorEvent] = []
    engine.events.subscribe(errors.append, event_types=[TTSErrorEvent])
    with pytest.raises(ConnectionError):
        await collect(engine)
    assert errors[0].context == "synthesis" and "503" in errors[0].error_message


async def test_wrong_item_type_names_what_was_returned() -> None:
    engine = ShapeTTS([1, 2, 3])
    with pytest.raises(TypeError, match="produced a int"):
        await collect(engine)


def test_output_format_rejects_nonsense() -> None:
    engine = ShapeTTS(None)
    with pytest.raises(ValueError, match="sample_rate"):
        engine.set_output_format(sample_rate=0)
    with pytest.raises(ValueError, match="channels"):
        engine.set_output_format(channels=7)


async def test_cancelling_during_a_blocking_generator_step_is_a_clean_cancel() -> None:
    # A consumer cancelled (actor shutdown) while the worker thread is inside
    # next() must see CancelledError, not "generator already executing".
    started = threading.Event()
    release = threading.Event()

    def synth() -> Iterator[PcmData]:
        yield tone(16000, 0.02)
        started.set()
        release.wait(2)
        yield tone(16000, 0.02)

    engine = ShapeTTS(synth)
    errors: list[TTSErrorEvent] = []
    engine.events.subscribe(errors.append, event_types=[TTSErrorEvent])
    consumer = asyncio.create_task(collect(engine))
    await asyncio.to_thread(started.wait, 2)
    consumer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await consumer
    release.set()
    assert errors == []
