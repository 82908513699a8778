"""VideoForwarder: per-handler pacing and isolation, lifecycle, failure handling."""

from __future__ import annotations

import asyncio
import logging

import av
import numpy as np
import pytest

from va_actors.core.utils.video_forwarder import VideoForwarder
from va_actors.core.video import SyntheticVideoTrack, VideoFrame, VideoTrackClosedError

PTS_PER_FRAME_30FPS = 3000  # SyntheticVideoTrack uses a 1/90000 time base


class Recorder:
    """An async handler that records (loop time, pts) of every frame it gets."""

    def __init__(self, work_s: float = 0.0) -> None:
        self.work_s = work_s
        self.calls: list[tuple[float, int]] = []
        self.frames: list[VideoFrame] = []

    async def __call__(self, frame: VideoFrame) -> None:
        assert frame.pts is not None
        self.calls.append((asyncio.get_running_loop().time(), frame.pts))
        self.frames.append(frame)
        if self.work_s:
            await asyncio.sleep(self.work_s)

    def rate(self) -> float:
        """Calls per second between the first and last call."""
        first, last = self.calls[0][0], self.calls[-1][0]
        return (len(self.calls) - 1) / (last - first)


class FailingTrack:
    """Yields a few frames, then raises like a broken decoder would."""

    def __init__(self, frames: int, exc: Exception) -> None:
        self.left = frames
        self.exc = exc
        self.recv_calls = 0

    async def recv(self) -> VideoFrame:
        self.recv_calls += 1
        await asyncio.sleep(0.005)
        if self.left == 0:
            raise self.exc
        self.left -= 1
        return VideoFrame.from_ndarray(np.zeros((8, 8, 3), np.uint8), pts=self.recv_calls)


class AvTrack:
    """An aiortc-like track producing av.VideoFrame."""

    def __init__(self) -> None:
        self.n = 0

    async def recv(self) -> av.VideoFrame:
        await asyncio.sleep(0.005)
        self.n += 1
        frame = av.VideoFrame.from_ndarray(np.full((8, 8, 3), self.n, np.uint8), format="rgb24")
        frame.pts = self.n
        return frame


async def test_handler_fps_throttle() -> None:
    track = SyntheticVideoTrack(64, 48, fps=30)
    forwarder = VideoForwarder(track, fps=30)
    ten = Recorder()
    forwarder.add_frame_handler(ten, fps=10)
    await asyncio.sleep(1.3)
    await forwarder.stop()
    assert ten.rate() == pytest.approx(10, rel=0.2)
    stats = forwarder.stats()[forwarder_name(ten)]
    assert stats.fps == 10 and stats.delivered == len(ten.calls)
    assert stats.throttled > 0 and stats.skipped == 0


def forwarder_name(handler: object) -> str:
    """The default name a callable object gets: its class's qualified name."""
    return type(handler).__qualname__


async def test_slow_handler_does_not_slow_others_and_gets_recent_frames() -> None:
    track = SyntheticVideoTrack(64, 48, fps=30)
    forwarder = VideoForwarder(track, fps=30)
    fast, slow = Recorder(), Recorder(work_s=0.3)
    forwarder.add_frame_handler(fast, name="fast")
    forwarder.add_frame_handler(slow, name="slow")
    await asyncio.sleep(1.5)
    await forwarder.stop()

    assert fast.rate() == pytest.approx(30, rel=0.2)
    assert 3 <= len(slow.calls) <= 6
    # Whenever the slow handler starts, its frame is (nearly) the newest one:
    # never more than two frames behind what the fast handler has already seen.
    for started, pts in slow.calls:
        newest_seen = max(p for t, p in fast.calls if t <= started)
        assert newest_seen - pts <= 2 * PTS_PER_FRAME_30FPS
    stats = forwarder.stats()
    assert stats["slow"].skipped >= 10 and stats["fast"].skipped == 0
    assert stats["slow"].delivered == len(slow.calls)
    assert stats["slow"].last_duration_ms is not None and stats["slow"].last_duration_ms >= 290
    assert stats["fast"].last_latency_ms is not None and stats["fast"].last_latency_ms < 100


async def test_sync_and_async_handlers_share_one_converted_frame() -> None:
    forwarder = VideoForwarder(AvTrack(), fps=30)
    seen_sync: list[VideoFrame] = []
    seen_async = Recorder()
    forwarder.add_frame_handler(seen_sync.append)
    forwarder.add_frame_handler(seen_async)
    await asyncio.sleep(0.25)
    await forwarder.stop()
    assert seen_sync and all(isinstance(f, VideoFrame) for f in seen_sync)
    by_pts = {f.pts: f for f in seen_sync}
    shared = [f for f in seen_async.frames if f.pts in by_pts]
    assert shared and all(by_pts[f.pts] is f for f in shared)  # converted once


async def test_handler_fps_defaults_and_limits() -> None:
    forwarder = VideoForwarder(SyntheticVideoTrack(16, 16), fps=15)
    with pytest.raises(ValueError, match="above the forwarder's fps 15"):
        forwarder.add_frame_handler(Recorder(), fps=30)
    with pytest.raises(ValueError, match="positive"):
        forwarder.add_frame_handler(Recorder(), fps=0)
    assert not forwarder.is_running
    handler = Recorder()
    forwarder.add_frame_handler(handler)
    assert forwarder.is_running  # auto-started by the first handler
    assert forwarder.stats()[forwarder_name(handler)].fps == 15
    await forwarder.stop()


async def test_removing_last_handler_stops_the_forwarder() -> None:
    track = SyntheticVideoTrack(16, 16, fps=30)
    forwarder = VideoForwarder(track)
    a, b = Recorder(), Recorder()
    forwarder.add_frame_handler(a, name="a")
    forwarder.add_frame_handler(b, name="b")
    await asyncio.sleep(0.1)
    assert forwarder.remove_frame_handler(a)
    assert not forwarder.remove_frame_handler(a)
    assert forwarder.is_running
    assert forwarder.remove_frame_handler(b)
    assert not forwarder.is_running
    await asyncio.wait_for(forwarder.wait_stopped(), 1.0)
    reads = track.frames_sent
    await asyncio.sleep(0.15)
    assert track.frames_sent == reads  # no longer reading the track
    assert not track.stopped  # the forwarder does not own the track
    assert forwarder.end_reason == "last frame handler removed"


async def test_handler_can_remove_itself() -> None:
    forwarder = VideoForwarder(SyntheticVideoTrack(16, 16, fps=30))
    calls: list[int] = []

    async def once(frame: VideoFrame) -> None:
        calls.append(1)
        forwarder.remove_frame_handler(once)

    forwarder.add_frame_handler(once)
    await asyncio.wait_for(forwarder.wait_stopped(), 1.0)
    assert calls == [1] and not forwarder.is_running


async def test_failing_handler_does_not_stop_others(caplog: pytest.LogCaptureFixture) -> None:
    forwarder = VideoForwarder(SyntheticVideoTrack(16, 16, fps=30))
    healthy = Recorder()

    def broken(frame: VideoFrame) -> None:
        raise RuntimeError("model crashed")

    with caplog.at_level(logging.ERROR):
        forwarder.add_frame_handler(broken, name="broken")
        forwarder.add_frame_handler(healthy, name="healthy")
        await asyncio.sleep(0.4)
    assert forwarder.is_running
    await forwarder.stop()
    stats = forwarder.stats()
    assert stats["broken"].errors >= 5 and stats["broken"].errors == stats["broken"].delivered
    assert stats["healthy"].errors == 0 and len(healthy.calls) >= 5
    reports = [r for r in caplog.records if "model crashed" in str(r.exc_info)]
    assert 1 <= len(reports) < stats["broken"].errors  # logged, but not once per frame


async def test_input_track_failure_stops_the_forwarder(caplog: pytest.LogCaptureFixture) -> None:
    track = FailingTrack(frames=3, exc=RuntimeError("decoder exploded"))
    forwarder = VideoForwarder(track)
    slow = Recorder(work_s=5.0)  # must be cancelled, not waited for
    forwarder.add_frame_handler(slow)
    with caplog.at_level(logging.ERROR):
        await asyncio.wait_for(forwarder.wait_stopped(), 1.0)
    assert not forwarder.is_running
    assert forwarder.end_reason is not None and "decoder exploded" in forwarder.end_reason
    assert any("decoder exploded" in r.getMessage() for r in caplog.records)
    calls = track.recv_calls
    await asyncio.sleep(0.05)
    assert track.recv_calls == calls
    await asyncio.wait_for(forwarder.stop(), 1.0)  # idempotent after a failure


async def test_input_track_end_stops_the_forwarder_quietly() -> None:
    forwarder = VideoForwarder(FailingTrack(frames=2, exc=VideoTrackClosedError("done")))
    got = Recorder()
    forwarder.add_frame_handler(got)
    await asyncio.wait_for(forwarder.wait_stopped(), 1.0)
    assert forwarder.end_reason == "input track ended (VideoTrackClosedError)"
    assert got.calls


async def test_unusable_input_items_are_counted_and_skipped() -> None:
    class Mixed:
        n = 0

        async def recv(self) -> object:
            await asyncio.sleep(0.005)
            self.n += 1
            if self.n % 2:
                return "not a frame"
            return VideoFrame.from_ndarray(np.zeros((4, 4, 3), np.uint8), pts=self.n)

    forwarder = VideoForwarder(Mixed())  # type: ignore[arg-type]
    got = Recorder()
    forwarder.add_frame_handler(got)
    await asyncio.sleep(0.2)
    await forwarder.stop()
    assert forwarder.frames_invalid >= 5 and forwarder.frames_received >= 5
    assert got.calls and all(pts % 2 == 0 for _, pts in got.calls)


async def test_stop_and_restart_keep_handlers() -> None:
    forwarder = VideoForwarder(SyntheticVideoTrack(16, 16, fps=30))
    got = Recorder()
    forwarder.add_frame_handler(got)
    await asyncio.sleep(0.1)
    await forwarder.stop()
    await forwarder.stop()
    before = len(got.calls)
    await asyncio.sleep(0.1)
    assert len(got.calls) == before
    forwarder.start()
    await asyncio.sleep(0.15)
    await forwarder.stop()
    assert len(got.calls) > before


def test_forwarder_rejects_bad_settings() -> None:
    track = SyntheticVideoTrack(16, 16)
    with pytest.raises(ValueError, match="fps"):
        VideoForwarder(track, fps=0)
    with pytest.raises(ValueError, match="max_buffer"):
        VideoForwarder(track, max_buffer=0)
