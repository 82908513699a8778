"""FrameSubscription: a processor's handler on a shared or its own VideoForwarder."""

from __future__ import annotations

import asyncio
import logging

import pytest

from va_actors.core.processors.frame_subscription import FrameSubscription
from va_actors.core.utils.video_forwarder import VideoForwarder
from va_actors.core.video.frame import VideoFrame
from va_actors.core.video.track import SyntheticVideoTrack


async def test_its_own_forwarder_is_stopped_on_detach_a_shared_one_is_not() -> None:
    got: list[VideoFrame] = []
    frames = FrameSubscription(got.append, fps=30, name="proc")
    own = await frames.attach(SyntheticVideoTrack(64, 48, fps=30, realtime=False))
    for _ in range(100):
        if len(got) >= 3:
            break
        await asyncio.sleep(0.01)
    assert len(got) >= 3 and own.is_running
    await frames.detach()
    assert not own.is_running and frames.forwarder is None

    shared = VideoForwarder(SyntheticVideoTrack(64, 48, fps=30, realtime=False), fps=30)
    other: list[VideoFrame] = []
    shared.add_frame_handler(other.append, name="other")
    try:
        assert await frames.attach(shared.input_track, shared) is shared
        await frames.detach()
        assert shared.is_running and list(shared.stats()) == ["other"]
    finally:
        await shared.stop()


async def test_a_rate_above_the_forwarders_is_capped_with_a_warning(
        caplog: pytest.LogCaptureFixture) -> None:
    shared = VideoForwarder(SyntheticVideoTrack(64, 48, fps=30, realtime=False), fps=10)
    frames = FrameSubscription(lambda frame: None, fps=60, name="proc")
    try:
        with caplog.at_level(logging.WARNING):
            await frames.attach(shared.input_track, shared)
        assert shared.stats()["proc"].fps == 10
        assert "runs at 10 fps" in caplog.text
    finally:
        await frames.detach()
        await shared.stop()


def test_a_bad_frame_error_names_the_frame_or_what_came_instead() -> None:
    import av
    import numpy as np

    from va_actors.core.processors import ProcessorErrorEvent
    from va_actors.core.video import PixelFormat, VideoFrame

    ours = VideoFrame.from_ndarray(np.zeros((48, 64, 3), np.uint8), PixelFormat.RGB24, 7)
    theirs = av.VideoFrame.from_ndarray(np.zeros((48, 64, 3), np.uint8), format="rgb24")
    theirs.pts = 9
    error = ValueError("no faces in a fish tank")
    for frame, named in ((ours, "64x48 rgb24 pts=7"), (theirs, "64x48 rgb24 pts=9"),
                         (b"jpeg?", "of type bytes")):
        event = ProcessorErrorEvent.bad_frame("opencv", "faces", frame, error)
        assert event.error_code == "bad_frame" and event.plugin_name == "opencv"
        assert event.context == f"faces: input frame {named}"
