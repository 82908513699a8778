"""The guide's VLM block: its own or a shared forwarder, JPEG frames to the provider."""

from __future__ import annotations

import asyncio
import gc
import warnings

from guide_actors import GuideVLM
from guide_helpers import wait_for

from va_actors.core.llm import LLMResponseFinal
from va_actors.core.utils import VideoForwarder
from va_actors.core.video.track import SyntheticVideoTrack


async def ask(vlm: GuideVLM, text: str) -> LLMResponseFinal:
    items = [item async for item in vlm.respond(text)]
    assert isinstance(items[-1], LLMResponseFinal)
    return items[-1]


async def test_vlm_block_with_its_own_forwarder_sends_buffered_frames_as_jpeg() -> None:
    track = SyntheticVideoTrack(320, 240, fps=30)
    vlm = GuideVLM(fps=10, frame_buffer_seconds=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a coroutine never awaited would be an error here
        await vlm.watch_video_track(track)  # the block awaits self._forwarder.start()
        assert vlm._forwarder is not None and not vlm._forwarder._shared
        await wait_for(lambda: len(vlm._frame_buffer) >= 3, timeout=3)
        final = await ask(vlm, "What do you see?")
        assert final.text.startswith("I see ") and final.text.endswith("frames of 320x240.")
        sent = vlm.provider.requests[-1]
        assert sent["messages"] == [{"role": "user", "content": "What do you see?"}]
        assert len(sent["images"]) == len(vlm.provider.images) >= 3
        await vlm.close()  # stop watching (remove_frame_handler not awaited), stop its own
        gc.collect()
    assert vlm._frame_buffer.maxlen == 10
    assert vlm._forwarder.handler_count == 0 and not vlm._forwarder.is_running


async def test_vlm_block_leaves_a_shared_forwarder_running() -> None:
    track = SyntheticVideoTrack(160, 120, fps=30)
    shared = VideoForwarder(track, fps=30, shared=True)
    others: list[object] = []
    shared.add_frame_handler(others.append, fps=30, name="another-plugin")
    vlm = GuideVLM(fps=5)
    await vlm.watch_video_track(track, shared_forwarder=shared)
    assert vlm._forwarder is shared and shared.handler_count == 2
    await wait_for(lambda: len(vlm._frame_buffer) >= 1, timeout=3)
    await vlm.close()
    assert shared.handler_count == 1 and shared.is_running  # the other handler keeps its frames
    seen = len(others)
    await asyncio.sleep(0.1)
    assert len(others) > seen
    await shared.stop()
