"""Acme vision LLM: buffers recent video frames and sends them with the question."""

# ruff: noqa: UP035, UP045 - kept in the guide's typing style (Optional, List, Dict)

import asyncio
import base64
import json
import logging
import time
from collections import deque
from typing import Any, AsyncIterator, Optional

import aiohttp
import av

from va_actors.core.edge.types import Participant

# Vision Agents' plugins import VideoLLM from ``core.llm.llm``; va_actors only
# exports it from ``core.llm`` (see test_guide_llm_gaps.py).
from va_actors.core.llm import VideoLLM
from va_actors.core.llm.llm import LLMResponseDelta, LLMResponseFinal
from va_actors.core.utils.video_forwarder import VideoForwarder
from va_actors.core.utils.video_utils import frame_to_jpeg_bytes

from ._client import DEFAULT_BASE_URL, api_key_from_env, auth_headers
from .llm import iter_sse

logger = logging.getLogger(__name__)

PLUGIN_NAME = "acme_vlm"


class VLM(VideoLLM):
    """Answers questions about what the camera shows."""

    def __init__(
        self,
        model: str = "acme-vision-1",
        api_key: Optional[str] = None,
        fps: int = 1,
        frame_buffer_seconds: int = 10,
        frame_width: int = 800,
        frame_height: int = 600,
        base_url: str = DEFAULT_BASE_URL,
        client: Optional[aiohttp.ClientSession] = None,
    ):
        super().__init__()
        self.model = model
        self.api_key = api_key_from_env(api_key)
        self.base_url = base_url
        self._client = client
        self._own_client = client is None
        self._fps = fps
        self._video_forwarder: Optional[VideoForwarder] = None
        self._frame_buffer: deque[av.VideoFrame] = deque(maxlen=fps * frame_buffer_seconds)
        self._frame_width = frame_width
        self._frame_height = frame_height

    async def watch_video_track(
        self,
        track: Any,
        shared_forwarder: Optional[VideoForwarder] = None,
    ) -> None:
        if self._video_forwarder is not None and shared_forwarder is None:
            await self._video_forwarder.stop()
            self._video_forwarder = None
        if shared_forwarder:
            self._video_forwarder = shared_forwarder
        else:
            self._video_forwarder = VideoForwarder(
                track, max_buffer=10, fps=self._fps, name=f"{PLUGIN_NAME}_forwarder"
            )
            self._video_forwarder.start()
        self._video_forwarder.add_frame_handler(self._frame_buffer.append, fps=self._fps)

    async def stop_watching_video_track(self) -> None:
        if self._video_forwarder is not None:
            await self._video_forwarder.remove_frame_handler(self._frame_buffer.append)
            self._video_forwarder = None

    def _get_frames_bytes(self) -> list[bytes]:
        return [
            frame_to_jpeg_bytes(
                frame=frame,
                target_width=self._frame_width,
                target_height=self._frame_height,
                quality=85,
            )
            for frame in list(self._frame_buffer)
        ]

    async def simple_response(
        self,
        text: str,
        participant: Optional[Participant] = None,
    ) -> AsyncIterator[LLMResponseDelta | LLMResponseFinal]:
        if self._client is None:
            self._client = aiohttp.ClientSession()
        start = time.perf_counter()
        frames = await asyncio.to_thread(self._get_frames_bytes)
        content: list[dict[str, Any]] = [{"type": "text", "text": text}]
        content += [
            {"type": "image_url",
             "image_url": {"url": "data:image/jpeg;base64," + base64.b64encode(f).decode()}}
            for f in frames
        ]
        messages = [*self._build_messages(), {"role": "user", "content": content}]
        parts: list[str] = []
        async with self._client.post(
            f"{self.base_url}/v1/chat/completions",
            json={"model": self.model, "messages": messages, "stream": True},
            headers=auth_headers(self.api_key),
        ) as resp:
            resp.raise_for_status()
            async for chunk in iter_sse(resp):
                delta = chunk["choices"][0].get("delta", {}).get("content")
                if delta:
                    yield LLMResponseDelta(delta=delta, item_id=chunk["id"],
                                           is_first_chunk=not parts)
                    parts.append(delta)
        yield LLMResponseFinal(
            text="".join(parts),
            model=self.model,
            latency_ms=(time.perf_counter() - start) * 1000,
            original=json.dumps({"frames": len(frames)}),
        )

    async def close(self) -> None:
        await self.stop_watching_video_track()
        await super().close()
        if self._own_client and self._client is not None:
            await self._client.close()
