"""The guide's TTS blocks: an async-generator ``stream_audio``, and the output format."""

from __future__ import annotations

import asyncio

import guide_tts
import pytest
from guide_actors import GuideTTS, OutputFormatTTS
from guide_helpers import collect, wait_for

from va_actors.core.tts import TTSAudioEvent
from va_actors.core.tts.events import TTSSynthesisCompleteEvent


async def test_tts_block_streams_its_async_generator_resampled_to_the_output_format() -> None:
    plugin = GuideTTS()
    chunks = [chunk async for chunk in plugin.send_iter("Hello there.")]
    assert plugin.provider.requests == ["Hello there."]
    audio = [c.data for c in chunks if c.data is not None]
    assert {(a.sample_rate, a.channels) for a in audio} == {(16000, 1)}  # from 24 kHz
    seconds = sum(a.duration for a in audio)
    assert seconds == pytest.approx(len("Hello there.") * 0.01, abs=0.002)
    assert chunks[-1].final and not any(c.final for c in chunks[:-1])


async def test_tts_block_send_emits_audio_events() -> None:
    plugin = GuideTTS()
    events = collect(plugin.events, TTSAudioEvent)
    await plugin.send("Hi.")
    await asyncio.sleep(0)
    assert events and all(e.epoch == 0 for e in events)
    assert events[-1].is_final_chunk


async def test_tts_block_interrupt_calls_its_stop_audio_and_ends_the_speech() -> None:
    plugin = GuideTTS(chunk_delay_s=0.01)
    done = collect(plugin.events, TTSSynthesisCompleteEvent)
    got = []

    async def speak() -> None:
        async for chunk in plugin.send_iter("A rather long sentence to say out loud."):
            got.append(chunk)

    task = asyncio.create_task(speak())
    await wait_for(lambda: len(got) >= 2)
    await plugin.interrupt()  # the guide's form, no epoch
    await asyncio.wait_for(task, 2)
    assert plugin.provider.cancelled == 1 and plugin.epoch == 1
    assert len(got) <= 3  # at most the chunk in flight, of the 12 the sentence has
    await asyncio.sleep(0)
    assert done and done[0].interrupted
    await plugin.close()
    assert plugin.provider.closed


async def test_output_format_block_resamples_to_the_desired_rate() -> None:
    plugin = OutputFormatTTS()
    assert (plugin._desired_sample_rate, plugin._desired_channels) == (16000, 1)
    assert str(plugin._desired_format) == "s16"  # the block's comment: 16kHz mono PCM_S16
    plugin.set_output_format(48000, 2)  # what the framework does for a 48 kHz stereo call
    chunks = [chunk async for chunk in plugin.send_iter("Yes.")]
    audio = [c.data for c in chunks if c.data is not None]
    assert {(a.sample_rate, a.channels) for a in audio} == {(plugin._desired_sample_rate, 2)}
    assert sum(a.duration for a in audio) == pytest.approx(0.04, abs=0.002)


def test_the_base_block_is_the_tts_the_output_format_block_extends() -> None:
    assert issubclass(OutputFormatTTS, guide_tts.MyTTS)
    assert OutputFormatTTS.stop_audio is guide_tts.MyTTS.stop_audio
