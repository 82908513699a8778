"""ChatCompletionsVLM's frame buffer (no server needed; the HTTP side is in test_openai.py)."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pytest

from va_actors.core.utils.video_forwarder import VideoForwarder
from va_actors.core.video import PixelFormat, QueuedVideoTrack, VideoFrame
from va_actors.plugins.openai import ChatCompletionsVLM

pytestmark = pytest.mark.timeout(10)


def _frame(shade: int, pts: int) -> VideoFrame:
    return VideoFrame.from_ndarray(np.full((48, 64, 3), shade, np.uint8), PixelFormat.RGB24,
                                   pts)


async def test_an_idle_tracks_repeats_do_not_push_real_frames_out_of_the_buffer() -> None:
    # The runtime's input track re-sends its last frame while nothing new comes.
    track = QueuedVideoTrack(64, 48, fps=20, max_queue_size=2)
    forwarder = VideoForwarder(track, fps=30)
    vlm = ChatCompletionsVLM("m", "http://127.0.0.1:9/v1", fps=10, frame_buffer_seconds=0.5)
    try:
        await vlm.watch_video_track(track, shared_forwarder=forwarder)
        for shade, pts in ((10, 0), (200, 9000)):
            track.add_frame(_frame(shade, pts))
            await asyncio.sleep(0.15)
        await asyncio.sleep(0.8)  # idle: 16 repeats at the track's 20 fps
        buffered = [f.pts for f in vlm._frame_buffer]
    finally:
        await vlm.close()
        await forwarder.stop()
        track.stop()
    assert buffered == [0, 9000]
    assert vlm.repeated_frames >= 3


@pytest.mark.parametrize(("kwargs", "named"), [
    ({"fps": 0}, "fps"), ({"fps": True}, "fps"),
    ({"frame_buffer_seconds": -1}, "frame_buffer_seconds"),
    ({"max_frame_side": 0}, "max_frame_side"), ({"jpeg_quality": 101}, "jpeg_quality"),
])
def test_bad_video_params_are_rejected_by_name(kwargs: dict[str, Any], named: str) -> None:
    with pytest.raises(ValueError, match=named):
        ChatCompletionsVLM("m", "http://127.0.0.1:9/v1", **kwargs)
