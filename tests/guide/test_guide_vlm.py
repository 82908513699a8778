"""The guide's VLM example, ported: frames via a shared VideoForwarder, base64 JPEG to the model."""

from __future__ import annotations

import asyncio
from io import BytesIO

import acme
import numpy as np
import pytest
from conftest import AcmeProvider
from PIL import Image

from va_actors.core.llm import LLMResponseFinal
from va_actors.core.utils.video_forwarder import VideoForwarder
from va_actors.core.utils.video_utils import frame_to_jpeg_bytes
from va_actors.core.video import SyntheticVideoTrack, VideoFrame


async def test_frames_arrive_at_the_vlm_fps_and_go_out_as_jpeg(
        acme_provider: AcmeProvider) -> None:
    track = SyntheticVideoTrack(320, 240, fps=30)
    forwarder = VideoForwarder(track, fps=30, name="camera")
    other: list[VideoFrame] = []
    forwarder.add_frame_handler(other.append, fps=30, name="another consumer")
    vlm = acme.VLM(api_key=acme_provider.api_key, base_url=acme_provider.base_url,
                   fps=5, frame_buffer_seconds=2, frame_width=160, frame_height=160)
    try:
        await vlm.watch_video_track(track, shared_forwarder=forwarder)
        await asyncio.sleep(0.8)
        buffered = len(vlm._frame_buffer)
        stats = forwarder.stats()["deque.append"]
        items = [item async for item in vlm.respond("What do you see?")]
        await vlm.stop_watching_video_track()
        assert forwarder.is_running  # shared: the other consumer keeps its frames
        assert "deque.append" not in forwarder.stats()
    finally:
        await vlm.close()
        await forwarder.stop()
        track.stop()

    # the VLM got about 5 frames a second from the shared forwarder, the other ~30
    assert stats.fps == 5
    assert 3 <= buffered <= 6, buffered
    assert len(other) > 3 * buffered
    final = items[-1]
    assert isinstance(final, LLMResponseFinal) and final.error is None
    # every buffered frame went to the provider as a base64 JPEG data URL, resized
    assert final.text == f"I see {buffered} frames."
    assert acme_provider.state.images == [(160, 120)] * buffered
    (request,) = acme_provider.state.chat_requests
    user = request["messages"][-1]
    assert user["content"][0] == {"type": "text", "text": "What do you see?"}


async def test_vlm_makes_its_own_forwarder_without_a_shared_one(
        acme_provider: AcmeProvider) -> None:
    track = SyntheticVideoTrack(64, 48, fps=30)
    vlm = acme.VLM(api_key=acme_provider.api_key, base_url=acme_provider.base_url, fps=10)
    try:
        await vlm.watch_video_track(track)
        forwarder = vlm._video_forwarder
        assert forwarder is not None and forwarder.fps == 10
        await asyncio.sleep(0.35)
        assert 2 <= len(vlm._frame_buffer) <= 5
        await vlm.stop_watching_video_track()
        assert not forwarder.is_running  # its last handler left
    finally:
        await vlm.close()
        track.stop()


@pytest.mark.parametrize("size", [(640, 480), (100, 300)])
def test_frame_to_jpeg_bytes_fits_the_target(size: tuple[int, int]) -> None:
    frame = VideoFrame.from_ndarray(np.zeros((size[1], size[0], 3), np.uint8), "rgb24")
    jpeg = frame_to_jpeg_bytes(frame=frame, target_width=200, target_height=200, quality=85)
    image = Image.open(BytesIO(jpeg))
    assert image.format == "JPEG" and max(image.size) == 200
