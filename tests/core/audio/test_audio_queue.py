"""AudioQueue: drop-oldest, reads across items, timing."""

from __future__ import annotations

import asyncio
import logging
import time

import numpy as np
import pytest

from va_actors.core.audio import PcmData
from va_actors.core.utils.audio_queue import AudioQueue


def _chunk(index: int, n: int = 320, rate: int = 16000, channels: int = 1) -> PcmData:
    """n samples per channel, all equal to ``index`` (so their origin is visible)."""
    return PcmData(rate, "s16", np.full((channels, n), index, np.int16), channels=channels)


def test_only_pcm_accepted() -> None:
    with pytest.raises(TypeError, match="AudioQueue only accepts PcmData, got bytes"):
        AudioQueue(100).put_nowait(b"\x00\x00")  # type: ignore[arg-type]


def test_limit_arguments() -> None:
    assert AudioQueue(max_duration_ms=250).buffer_limit_ms == 250
    assert AudioQueue(8000).max_duration_ms == 8000
    with pytest.raises(ValueError, match="buffer_limit_ms=100 and max_duration_ms=200 disagree"):
        AudioQueue(100, max_duration_ms=200)
    with pytest.raises(ValueError, match="buffer_limit_ms must be a positive number, got 0"):
        AudioQueue(0)
    with pytest.raises(TypeError, match="needs buffer_limit_ms"):
        AudioQueue()


async def test_drops_oldest_beyond_limit(caplog: pytest.LogCaptureFixture) -> None:
    queue = AudioQueue(100)
    with caplog.at_level(logging.WARNING):
        for index in range(10):
            await queue.put(_chunk(index))  # 20 ms each
    assert queue.qsize() == 5
    assert queue.get_buffer_info()["current_duration_ms"] == pytest.approx(100)
    assert queue.dropped_ms == pytest.approx(100) and queue.dropped_items == 5
    assert [queue.get_nowait().samples[0] for _ in range(5)] == [5, 6, 7, 8, 9]
    # Five drops within a second: one warning.
    assert sum("dropped" in r.getMessage() for r in caplog.records) == 1


def test_partial_drop_trims_front_of_oldest_item() -> None:
    queue = AudioQueue(50)
    for index in range(3):
        queue.put_nowait(_chunk(index))
    assert queue.duration_ms == pytest.approx(50)
    oldest = queue.get_nowait()
    assert oldest.num_samples == 160 and oldest.samples[0] == 0
    assert queue.dropped_ms == pytest.approx(10)
    # A single item longer than the whole limit keeps only its newest part.
    small = AudioQueue(5)
    small.put_nowait(PcmData(16000, "s16", np.arange(320, dtype=np.int16)))
    kept = small.get_nowait()
    assert kept.samples.tolist() == list(range(240, 320))


async def test_get_samples_across_items_pushes_remainder_back() -> None:
    queue = AudioQueue(1000)
    for index in range(3):
        queue.put_nowait(_chunk(index))
    got = await queue.get_samples(500)
    assert got.num_samples == 500
    assert got.samples[:320].tolist() == [0] * 320 and got.samples[320:].tolist() == [1] * 180
    rest = queue.get_nowait()
    assert rest.num_samples == 140 and rest.samples[0] == 1
    assert queue.get_buffer_info()["total_samples"] == 320


async def test_get_samples_short_result_and_timeout() -> None:
    queue = AudioQueue(1000)
    queue.put_nowait(_chunk(3, n=100))
    short = await queue.get_samples(400)
    assert short.num_samples == 100
    start = time.monotonic()
    with pytest.raises(asyncio.QueueEmpty):
        await queue.get_samples(400, timeout=0.05)
    assert 0.04 <= time.monotonic() - start < 1.0


async def test_get_samples_counts_per_channel_and_conforms_items() -> None:
    queue = AudioQueue(1000)
    queue.put_nowait(_chunk(1, n=100, channels=2))
    queue.put_nowait(PcmData(16000, "f32", np.full(100, 0.5, np.float32)))
    got = await queue.get_samples(150)
    assert got.samples.shape == (2, 150) and got.format == "s16"
    assert got.samples[:, -1].tolist() == [16384, 16384]
    with pytest.raises(ValueError, match="num_samples must be > 0, got 0"):
        await queue.get_samples(0)


async def test_get_duration_at_queue_rate() -> None:
    queue = AudioQueue(1000)
    for index in range(8):
        queue.put_nowait(_chunk(index))
    assert (await queue.get_duration(100)).num_samples == 1600


async def test_get_duration_waits_for_late_audio() -> None:
    queue = AudioQueue(1000)
    loop = asyncio.get_running_loop()
    loop.call_later(0.05, queue.put_nowait, _chunk(1, n=1600))
    start = time.monotonic()
    got = await queue.get_duration(100, timeout=2.0)
    waited = time.monotonic() - start
    assert got.num_samples == 1600
    assert 0.04 <= waited < 1.0
    start = time.monotonic()
    with pytest.raises(asyncio.QueueEmpty):
        await queue.get_duration(100, timeout=0.05)
    assert time.monotonic() - start < 1.0


async def test_get_waits_and_clear_empties() -> None:
    queue = AudioQueue(1000)
    waiter = asyncio.create_task(queue.get())
    await asyncio.sleep(0)
    assert not waiter.done()
    queue.put_nowait(_chunk(7))
    assert (await asyncio.wait_for(waiter, 1)).samples[0] == 7
    with pytest.raises(asyncio.QueueEmpty):
        queue.get_nowait()
    queue.put_nowait(_chunk(1))
    queue.clear()
    assert queue.empty() and queue.qsize() == 0
    info = queue.get_buffer_info()
    assert info["current_duration_ms"] == 0 and info["sample_rate"] == 16000
    assert set(info) >= {"buffer_limit_ms", "num_chunks", "dropped_ms", "total_samples"}


def test_rate_mismatch_only_warns(caplog: pytest.LogCaptureFixture) -> None:
    queue = AudioQueue(1000)
    queue.put_nowait(_chunk(1))
    with caplog.at_level(logging.WARNING):
        queue.put_nowait(_chunk(2, rate=48000))
    assert "sample rate mismatch" in caplog.text
    assert queue.qsize() == 2
