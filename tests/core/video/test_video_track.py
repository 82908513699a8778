"""QueuedVideoTrack and SyntheticVideoTrack behaviour."""

from __future__ import annotations

import asyncio
from fractions import Fraction

import numpy as np
import pytest

from va_actors.core.video import (
    PixelFormat,
    QueuedVideoTrack,
    SyntheticVideoTrack,
    VideoFrame,
    VideoTrack,
    VideoTrackClosedError,
)

TB = Fraction(1, 90000)


def solid(value: int, width: int = 64, height: int = 48, pts: int | None = None) -> VideoFrame:
    return VideoFrame.from_ndarray(
        np.full((height, width, 3), value, np.uint8), pts=pts, time_base=TB
    )


# -- QueuedVideoTrack ------------------------------------------------------------


def test_tracks_satisfy_the_protocol() -> None:
    assert isinstance(QueuedVideoTrack(), VideoTrack)
    assert isinstance(SyntheticVideoTrack(), VideoTrack)


async def test_queued_track_returns_frames_in_order() -> None:
    track = QueuedVideoTrack(64, 48, fps=10)
    for i in range(3):
        track.add_frame(solid(i, pts=i))
    assert [(await track.recv()).pts for _ in range(3)] == [0, 1, 2]


async def test_queued_track_drops_oldest_when_full() -> None:
    track = QueuedVideoTrack(64, 48, fps=10, max_queue_size=3)
    for i in range(5):
        track.add_frame(solid(i, pts=i))
    assert track.dropped == 2
    assert [(await track.recv()).pts for _ in range(3)] == [2, 3, 4]


async def test_queued_track_waits_for_its_first_frame() -> None:
    track = QueuedVideoTrack(64, 48, fps=50)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(track.recv(), 0.1)
    pending = asyncio.create_task(track.recv())
    await asyncio.sleep(0.02)
    track.add_frame(solid(1, pts=1))
    assert (await asyncio.wait_for(pending, 1.0)).pts == 1


async def test_queued_track_repeats_last_frame_paced_at_fps() -> None:
    track = QueuedVideoTrack(64, 48, fps=20)
    frame = solid(9, pts=9)
    track.add_frame(frame)
    loop = asyncio.get_running_loop()
    assert await track.recv() is frame
    start = loop.time()
    repeats = [await asyncio.wait_for(track.recv(), 1.0) for _ in range(4)]
    elapsed = loop.time() - start
    assert all(r is frame for r in repeats)
    assert track.repeated == 4
    assert 0.15 <= elapsed < 1.0  # four 50 ms slots, not a busy loop


async def test_queued_track_new_frame_interrupts_the_idle_wait() -> None:
    track = QueuedVideoTrack(64, 48, fps=1)
    track.add_frame(solid(1, pts=1))
    await track.recv()
    pending = asyncio.create_task(track.recv())
    await asyncio.sleep(0.05)
    track.add_frame(solid(2, pts=2))
    assert (await asyncio.wait_for(pending, 0.5)).pts == 2


async def test_queued_track_stop_ends_pending_and_later_recv() -> None:
    track = QueuedVideoTrack(64, 48, fps=10)
    pending = asyncio.create_task(track.recv())
    await asyncio.sleep(0.02)
    track.stop()
    with pytest.raises(VideoTrackClosedError):
        await asyncio.wait_for(pending, 1.0)
    track.add_frame(solid(1))
    assert track.dropped == 1
    with pytest.raises(VideoTrackClosedError):
        await track.recv()


async def test_queued_track_letterboxes_other_sizes_and_accepts_av() -> None:
    track = QueuedVideoTrack(64, 48, fps=10)
    wide = solid(200, width=64, height=24, pts=5)
    track.add_frame(wide.to_av())
    out = await track.recv()
    assert (out.width, out.height, out.pts) == (64, 48, 5)
    pixels = out.to_ndarray()
    assert pixels[0, 32].tolist() == [0, 0, 0]  # bar above
    assert pixels[24, 32].tolist() == [200, 200, 200]  # picture in the middle
    yuv = QueuedVideoTrack(64, 48, fps=10)
    yuv.add_frame(solid(200, width=32, height=48).reformat("yuv420p"))
    boxed = await yuv.recv()
    assert boxed.format is PixelFormat.YUV420P and (boxed.width, boxed.height) == (64, 48)


def test_queued_track_rejects_bad_settings() -> None:
    with pytest.raises(ValueError, match="width"):
        QueuedVideoTrack(width=641)
    with pytest.raises(ValueError, match="fps"):
        QueuedVideoTrack(fps=0)
    with pytest.raises(ValueError, match="max_queue_size"):
        QueuedVideoTrack(max_queue_size=0)


# -- SyntheticVideoTrack ---------------------------------------------------------


async def test_synthetic_track_moves_and_pts_increase() -> None:
    track = SyntheticVideoTrack(64, 48, fps=30, realtime=False)
    frames = [await track.recv() for _ in range(5)]
    assert [f.pts for f in frames] == [0, 3000, 6000, 9000, 12000]
    assert all(f.time_base == TB for f in frames)
    assert len({f.checksum() for f in frames}) == 5


async def test_synthetic_track_is_paced_in_real_time() -> None:
    track = SyntheticVideoTrack(64, 48, fps=50)
    loop = asyncio.get_running_loop()
    start = loop.time()
    for _ in range(11):
        await track.recv()
    assert 0.18 <= loop.time() - start < 1.0  # 10 intervals of 20 ms


async def test_synthetic_track_skips_ahead_when_consumer_is_late() -> None:
    track = SyntheticVideoTrack(64, 48, fps=50)
    await track.recv()
    await asyncio.sleep(0.2)
    late = await track.recv()
    assert track.skipped >= 5
    assert late.pts is not None and late.pts >= 8 * 1800


@pytest.mark.parametrize("pattern", ["bars", "gradient", "checker"])
async def test_synthetic_patterns_and_formats(pattern: str) -> None:
    track = SyntheticVideoTrack(
        32,
        16,
        fps=30,
        pattern=pattern,  # type: ignore[arg-type]
        format="yuv420p",
        realtime=False,
    )
    frame = await track.recv()
    assert frame.format is PixelFormat.YUV420P and (frame.width, frame.height) == (32, 16)


async def test_synthetic_track_ends_after_max_frames_and_on_stop() -> None:
    track = SyntheticVideoTrack(16, 16, fps=30, realtime=False, max_frames=2)
    await track.recv()
    await track.recv()
    with pytest.raises(VideoTrackClosedError):
        await track.recv()
    slow = SyntheticVideoTrack(16, 16, fps=1)
    await slow.recv()
    pending = asyncio.create_task(slow.recv())
    await asyncio.sleep(0.02)
    slow.stop()
    with pytest.raises(VideoTrackClosedError):
        await asyncio.wait_for(pending, 0.5)


def test_synthetic_track_rejects_bad_settings() -> None:
    with pytest.raises(ValueError, match="unknown pattern"):
        SyntheticVideoTrack(pattern="plaid")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown pixel format"):
        SyntheticVideoTrack(format="bgr24")
    with pytest.raises(ValueError, match="even"):
        SyntheticVideoTrack(63, 48, format="yuv420p")
