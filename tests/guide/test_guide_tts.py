"""The guide's TTS example, ported: chunked 24 kHz HTTP audio out as 16 kHz TTSAudioEvents."""

from __future__ import annotations

import asyncio

import acme
import numpy as np
import pytest
from conftest import AcmeProvider
from guide_helpers import collect, wait_for

from va_actors.core.audio import AudioFormat, PcmData
from va_actors.core.tts.events import (
    TTSAudioEvent,
    TTSErrorEvent,
    TTSSynthesisCompleteEvent,
)


def joined(events: list[TTSAudioEvent]) -> PcmData:
    audio = [e.data for e in events if e.data is not None]
    out = audio[0].copy()
    for pcm in audio[1:]:
        out.append(pcm)
    return out


async def test_audio_arrives_at_16khz_mono_s16(acme_provider: AcmeProvider) -> None:
    tts = acme.TTS(api_key=acme_provider.api_key, base_url=acme_provider.base_url)
    audio = collect(tts.events, TTSAudioEvent)
    done = collect(tts.events, TTSSynthesisCompleteEvent)
    text = "Hello from Acme."  # 16 chars x 40 ms = 640 ms of speech at 24 kHz
    try:
        await tts.send(text)
        await tts.events.wait()
    finally:
        await tts.close()

    assert acme_provider.state.tts_requests[0]["sample_rate"] == 24000
    assert len(audio) > 1 and audio[-1].is_final_chunk  # streamed, not one blob
    assert [e.chunk_index for e in audio] == list(range(len(audio)))
    for event in audio:
        assert isinstance(event, TTSAudioEvent)
        if event.data is not None:
            pcm = event.data
            assert (pcm.sample_rate, pcm.channels, pcm.format) == (16000, 1, AudioFormat.S16)
            assert pcm.samples.dtype == np.int16
    whole = joined(audio)  # type: ignore[arg-type]
    assert whole.duration_ms == pytest.approx(640, abs=2)
    # the tone survived the 24k -> 16k conversion (no garbage from split samples)
    spectrum = np.abs(np.fft.rfft(whole.samples.astype(np.float64)))
    assert np.argmax(spectrum) * 16000 / whole.samples.size == pytest.approx(440, abs=5)
    assert done[0].audio_duration_ms == pytest.approx(640, abs=2)


async def test_output_format_is_configurable(acme_provider: AcmeProvider) -> None:
    tts = acme.TTS(api_key=acme_provider.api_key, base_url=acme_provider.base_url)
    tts.set_output_format(sample_rate=48000, channels=2)
    audio = collect(tts.events, TTSAudioEvent)
    try:
        await tts.send("Stereo please")
        await tts.events.wait()
    finally:
        await tts.close()
    pcms = [e.data for e in audio if e.data is not None]  # type: ignore[attr-defined]
    assert pcms and all((p.sample_rate, p.channels) == (48000, 2) for p in pcms)


async def test_interrupt_stops_the_audio(acme_provider: AcmeProvider) -> None:
    acme_provider.state.tts_chunk_delay_s = 0.01  # about real time: 1001 bytes ~ 21 ms
    tts = acme.TTS(api_key=acme_provider.api_key, base_url=acme_provider.base_url)
    audio = collect(tts.events, TTSAudioEvent)
    errors = collect(tts.events, TTSErrorEvent)
    long_text = "This sentence goes on and on. " * 10  # 12 s of speech
    speaking = asyncio.create_task(tts.send(long_text))
    try:
        await wait_for(lambda: len(audio) >= 3)
        old_epoch = tts.epoch
        await tts.interrupt()
        heard = len(audio)
        await asyncio.wait_for(speaking, 1.0)  # send() returns promptly
        await asyncio.sleep(0.1)
        assert tts.epoch == old_epoch + 1
        assert len(audio) == heard  # nothing more after interrupt()
        assert all(e.epoch == old_epoch for e in audio)  # type: ignore[attr-defined]
        assert not errors  # an interrupted stream is not an error
        await wait_for(lambda: acme_provider.state.tts_aborted)  # the HTTP stream was aborted
        sent = acme_provider.state.tts_bytes_sent
        assert sent < len(long_text) * 0.04 * 24000 * 2 / 4
        # the next reply is heard again, in the new epoch
        await tts.send("Yes?")
        await tts.events.wait()
        assert audio[-1].epoch == old_epoch + 1 and audio[-1].is_final_chunk  # type: ignore[attr-defined]
    finally:
        speaking.cancel()
        await tts.close()
