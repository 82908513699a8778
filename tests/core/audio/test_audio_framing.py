"""AudioFramer: exact frames, remainder, flush, format changes."""

from __future__ import annotations

import numpy as np
import pytest

from va_actors.core.audio import AudioFramer, PcmData


def _ramp(n: int, rate: int = 48000, channels: int = 1, start: int = 0) -> PcmData:
    values = (np.arange(start, start + n * channels) % 30000).astype(np.int16)
    return PcmData(rate, "s16", values, channels=channels)


def test_frames_are_exact_and_lossless() -> None:
    framer = AudioFramer(20)
    sizes = [336, 1000, 7, 960, 2500, 1]
    pushed, frames, offset = [], [], 0
    for size in sizes:
        pcm = _ramp(size, channels=2, start=offset)
        offset += size * 2
        pushed.append(pcm.samples)
        frames += framer.push(pcm)
    assert all(f.num_samples == 960 and f.channels == 2 for f in frames)
    assert len(frames) == sum(sizes) // 960
    tail = framer.flush(pad=False)
    assert tail is not None and tail.num_samples == sum(sizes) % 960
    joined = np.concatenate([f.samples for f in [*frames, tail]], axis=-1)
    assert np.array_equal(joined, np.concatenate(pushed, axis=-1))


def test_flush_pads_to_full_frame_and_empty_flush_is_none() -> None:
    framer = AudioFramer(10)
    assert framer.push(_ramp(100, rate=16000)) == []
    assert framer.pending_ms == pytest.approx(6.25)
    tail = framer.flush()
    assert tail is not None and tail.num_samples == 160
    assert tail.samples[100:].max() == 0 and tail.samples[99] == 99
    assert framer.flush() is None


def test_pts_advances_per_frame() -> None:
    framer = AudioFramer(20)
    first = PcmData(16000, "s16", np.zeros(500, np.int16), pts=0, time_base=1 / 16000)
    second = PcmData(16000, "s16", np.zeros(500, np.int16), pts=500, time_base=1 / 16000)
    frames = framer.push(first) + framer.push(second)
    assert [f.pts for f in frames] == [0, 320, 640]


def test_format_change_mid_stream_is_rejected_until_reset() -> None:
    framer = AudioFramer()
    framer.push(_ramp(100))
    with pytest.raises(ValueError, match=r"from 48000 Hz, 1 ch, s16 to 16000 Hz, 1 ch, s16"):
        framer.push(_ramp(100, rate=16000))
    with pytest.raises(ValueError, match="2 ch"):
        framer.push(_ramp(100, channels=2))
    framer.reset()
    assert framer.push(_ramp(320, rate=16000))[0].sample_rate == 16000


def test_bad_frame_length() -> None:
    with pytest.raises(ValueError, match="frame_ms must be > 0, got 0"):
        AudioFramer(0)
    with pytest.raises(
        ValueError, match="frame_ms=20 is not a whole number of samples at 11025 Hz"
    ):
        AudioFramer(20).push(_ramp(100, rate=11025))
    with pytest.raises(TypeError, match=r"AudioFramer\.push expects PcmData, got bytes"):
        AudioFramer().push(b"\x00")  # type: ignore[arg-type]


def test_remainder_is_independent_of_caller_buffer() -> None:
    framer = AudioFramer(20)
    samples = np.arange(1000, dtype=np.int16)
    framer.push(PcmData(48000, "s16", samples))
    samples[:] = 0
    tail = framer.flush(pad=False)
    assert tail is not None and tail.samples.tolist() == list(range(960, 1000))
