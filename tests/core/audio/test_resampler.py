"""Resampler: streaming quality, continuity, length, reconfiguration, errors."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from va_actors.core.audio import AudioFormat, PcmData, Resampler

IN_RATE = 48000
OUT_RATE = 16000
CHUNK = IN_RATE // 50  # 20 ms


def _tones(freqs: list[float], rate: int, seconds: float, amp: float = 0.3) -> np.ndarray:
    t = np.arange(round(rate * seconds)) / rate
    waves: np.ndarray = np.stack([amp * np.sin(2 * np.pi * f * t) for f in freqs])
    total: np.ndarray = waves.sum(axis=0, dtype=np.float32)
    return total


def _stereo_s16(mono: np.ndarray) -> PcmData:
    return PcmData.from_numpy(np.stack([mono, mono]), IN_RATE, "s16", channels=2)


def _stream(resampler: Resampler, pcm: PcmData, chunk: int = CHUNK) -> list[PcmData]:
    outputs = [resampler.process(piece) for piece in pcm.chunks(chunk)]
    outputs.append(resampler.flush())
    return outputs


def _joined(outputs: list[PcmData]) -> np.ndarray:
    return np.concatenate([o.samples for o in outputs], axis=-1)


def _level_db(signal: np.ndarray, rate: int, freq: float) -> float:
    """Peak level of ``freq`` (dB) from a Hann-windowed FFT."""
    x = signal.astype(np.float64) * np.hanning(signal.size)
    spectrum = np.abs(np.fft.rfft(x))
    bin_hz = rate / signal.size
    centre = round(freq / bin_hz)
    return float(20 * np.log10(spectrum[centre - 3 : centre + 4].max() + 1e-12))


# 997 Hz, not 1 kHz: an exact 1 kHz makes the int16 output periodic, its rounding
# error then falls on odd harmonics only and 6 kHz reads about -300 dB whatever
# the filter does.
IN_BAND_HZ = 997


def _alias_db(output: np.ndarray, rate: int) -> float:
    """6 kHz (where a 10 kHz input folds to at 16 kHz) relative to the in-band tone."""
    steady = output[rate // 10 : -rate // 10]
    return _level_db(steady, rate, 6000) - _level_db(steady, rate, IN_BAND_HZ)


def test_alias_attenuated_by_60_db_when_streamed_in_20ms_chunks() -> None:
    source = _stereo_s16(_tones([IN_BAND_HZ, 10000], IN_RATE, 2.0))
    out = _joined(_stream(Resampler(OUT_RATE, 1), source))
    assert _alias_db(out, OUT_RATE) <= -60
    # Control: plain decimation without a filter folds the 10 kHz tone at full level.
    naive = source.samples[0, ::3]
    assert _alias_db(naive, OUT_RATE) > -10


def test_streamed_output_equals_single_pass() -> None:
    signal = _tones([440, 1000, 3000], IN_RATE, 1.0)
    for fmt in (AudioFormat.S16, AudioFormat.F32):
        source = PcmData.from_numpy(np.stack([signal, signal]), IN_RATE, fmt, channels=2)
        streamed = _joined(_stream(Resampler(OUT_RATE, 1, fmt), source))
        whole = source.resample(OUT_RATE, 1).samples
        assert streamed.shape == whole.shape
        diff = np.abs(streamed.astype(np.float64) - whole.astype(np.float64)).max()
        assert diff <= (1 if fmt is AudioFormat.S16 else 1e-6)


def test_no_discontinuity_at_chunk_boundaries() -> None:
    source = _stereo_s16(_tones([1000], IN_RATE, 1.0))
    outputs = _stream(Resampler(OUT_RATE, 1), source)
    out = _joined(outputs).astype(np.float64)
    step = np.abs(np.diff(out))
    ends = np.cumsum([o.num_samples for o in outputs if o.num_samples])[:-1]
    boundary_steps = step[ends - 1]  # between the last sample of a chunk and the next one
    inside = np.delete(step, ends - 1)
    assert boundary_steps.size > 10
    assert boundary_steps.max() <= inside.max()


@pytest.mark.parametrize(
    ("rate", "chunk", "channels", "target"),
    [
        (48000, 960, 2, 16000),
        (44100, 441, 1, 16000),
        (16000, 320, 1, 48000),
        (24000, 480, 1, 16000),
    ],
)
def test_total_length_matches_duration_after_flush(
    rate: int, chunk: int, channels: int, target: int
) -> None:
    seconds = 1.37
    mono = _tones([500], rate, seconds)
    pcm = PcmData.from_numpy(np.stack([mono] * channels), rate, "s16", channels=channels)
    total = _joined(_stream(Resampler(target, 1), pcm, chunk)).shape[-1]
    assert abs(total - seconds * target) <= 2


def test_passthrough_returns_input_object() -> None:
    pcm = PcmData(16000, "s16", np.arange(320, dtype=np.int16))
    resampler = Resampler(16000, 1, "s16")
    assert resampler.process(pcm) is pcm
    assert resampler.flush().empty


def test_channel_and_format_conversion_without_rate_change() -> None:
    stereo = PcmData(16000, "s16", np.array([[100, 200], [300, -200]], np.int16), channels=2)
    out = Resampler(16000, 1, "f32").process(stereo)
    assert out.format == "f32" and out.channels == 1
    assert np.allclose(out.samples * 32768, [200, 0])
    up = Resampler(48000, 2, "s16").process(PcmData(16000, "f32", _tones([440], 16000, 0.1)))
    assert up.channels == 2 and up.samples.dtype == np.int16
    assert np.array_equal(up.samples[0], up.samples[1])


def test_metadata_passes_through() -> None:
    who = object()
    pcm = PcmData(
        48000, "s16", np.zeros(960, np.int16), pts=1234, time_base=1 / 48000, participant=who
    )
    out = Resampler(16000).process(pcm)
    assert (out.pts, out.time_base, out.participant) == (1234, 1 / 48000, who)
    assert (out.sample_rate, out.channels, out.format) == (16000, 1, "s16")


def test_input_change_flushes_and_reconfigures(caplog: pytest.LogCaptureFixture) -> None:
    resampler = Resampler(16000)
    first = PcmData.from_numpy(_tones([300], 48000, 0.5), 48000, "s16")
    second = PcmData.from_numpy(np.stack([_tones([300], 24000, 0.5)] * 2), 24000, "s16", channels=2)
    with caplog.at_level(logging.INFO):
        # No flush between the two: the change of input itself must flush.
        out = [resampler.process(piece) for piece in first.chunks(CHUNK)]
        out += _stream(resampler, second, 480)
    total = _joined(out).shape[-1]
    assert abs(total - 16000) <= 4
    assert "flushed and reconfigured" in caplog.text


def test_bad_inputs_raise_clear_errors() -> None:
    with pytest.raises(ValueError, match="target_sample_rate must be a positive integer, got 0"):
        Resampler(0)
    with pytest.raises(ValueError, match="target_channels must be a positive integer, got -1"):
        Resampler(16000, -1)
    with pytest.raises(ValueError, match="format must be 's16' or 'f32', got 'mp3'"):
        Resampler(16000, 1, "mp3")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"Resampler\.process expects PcmData, got bytes"):
        Resampler(16000).process(b"\x00\x00")  # type: ignore[arg-type]
    three = PcmData(48000, "s16", np.zeros((3, 960), np.int16), channels=3)
    with pytest.raises(ValueError, match="cannot convert 3 channels to 2"):
        Resampler(16000, 2).process(three)


def test_flush_keeps_configuration_for_next_stream() -> None:
    resampler = Resampler(16000)
    pcm = PcmData.from_numpy(_tones([300], 48000, 0.2), 48000, "f32")
    first = _joined(_stream(resampler, pcm)).shape[-1]
    second = _joined(_stream(resampler, pcm)).shape[-1]
    assert first == second == 3200
    resampler.reset()
    assert resampler.flush().empty
