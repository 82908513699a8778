"""``ChatCompletionsVLM``: a vision chat model fed with recent video frames.

Frames come from a :class:`VideoForwarder` at a low rate into a bounded
buffer (the last ``frame_buffer_seconds``); each reply sends them as base64
JPEG ``image_url`` parts together with the user's text. The track watched
can be a camera or a processor's annotated output (in a pipeline: the input
topic, ``camera.video`` or ``faces.video``).
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Sequence
from typing import Any

from va_actors.core.edge.types import Participant
from va_actors.core.llm import (
    LLMResponseFinal,
    VideoLLM,
    VLMInferenceCompletedEvent,
    VLMInferenceStartEvent,
)
from va_actors.core.utils.video_forwarder import VideoForwarder
from va_actors.core.video import VideoFrame, frame_to_jpeg_bytes

from .llm import DEFAULT_BASE_URL, ChatCompletionsLLM, ReplyItem

__all__ = ["ChatCompletionsVLM"]

logger = logging.getLogger(__name__)


class ChatCompletionsVLM(ChatCompletionsLLM, VideoLLM):
    """A VLM served by an OpenAI-compatible chat-completions endpoint.

    Args:
        model: a vision-capable model (``gpt-4o-mini``, ``llava``, ``qwen2.5vl``...).
        base_url: the API root, ending in ``/v1``.
        api_key: bearer token; default ``$OPENAI_API_KEY``.
        fps: frames per second taken from the video.
        frame_buffer_seconds: how many seconds of frames a reply sees.
        max_frame_side: frames are scaled down so their longer side fits.
        jpeg_quality: JPEG quality, 1..100.
        **llm_options: every other :class:`ChatCompletionsLLM` option
            (``temperature``, ``timeout_s``, ``connect_retries``, ``tools``...).
    """

    provider_name = "openai_vlm"

    def __init__(
        self,
        model: str,
        base_url: str = DEFAULT_BASE_URL,
        api_key: str | None = None,
        *,
        fps: float = 1,
        frame_buffer_seconds: float = 10,
        max_frame_side: int = 512,
        jpeg_quality: int = 75,
        **llm_options: Any,
    ) -> None:
        for name, value in (("fps", fps), ("frame_buffer_seconds", frame_buffer_seconds)):
            if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
                raise ValueError(f"ChatCompletionsVLM {name} must be a positive number, "
                                 f"got {value!r}")
        if isinstance(max_frame_side, bool) or not isinstance(max_frame_side, int) \
                or max_frame_side < 1:
            raise ValueError(f"ChatCompletionsVLM max_frame_side must be an int >= 1, "
                             f"got {max_frame_side!r}")
        if isinstance(jpeg_quality, bool) or not isinstance(jpeg_quality, int) \
                or not 1 <= jpeg_quality <= 100:
            raise ValueError(f"ChatCompletionsVLM jpeg_quality must be an int in 1..100, "
                             f"got {jpeg_quality!r}")
        super().__init__(model, base_url, api_key, **llm_options)
        self.fps = fps
        self.max_frame_side = max_frame_side
        self.jpeg_quality = jpeg_quality
        self._frame_buffer: deque[VideoFrame] = deque(
            maxlen=max(1, round(fps * frame_buffer_seconds)))
        self._video_forwarder: VideoForwarder | None = None
        self._owns_forwarder = False
        self.repeated_frames = 0
        """Frames not buffered because they repeated the previous one (an idle track)."""

    # -- video --------------------------------------------------------------------
    async def watch_video_track(self, track: Any,
                                shared_forwarder: VideoForwarder | None = None) -> None:
        """Buffer ``track``'s frames at ``fps`` (via ``shared_forwarder`` when given)."""
        await self.stop_watching_video_track()
        if shared_forwarder is not None:
            forwarder = shared_forwarder
        else:
            forwarder = VideoForwarder(track, fps=self.fps, name=f"{self.provider_name}-video")
        rate = self.fps
        if rate > forwarder.fps:  # the forwarder refuses handlers faster than itself
            logger.warning("%s: the forwarder runs at %g fps; taking frames at that rate, "
                           "not %g", self.provider_name, forwarder.fps, rate)
            rate = forwarder.fps
        forwarder.add_frame_handler(self._on_frame, fps=rate, name=self.provider_name)
        self._video_forwarder = forwarder
        self._owns_forwarder = shared_forwarder is None
        if self._owns_forwarder:
            forwarder.start()

    async def stop_watching_video_track(self) -> None:
        """Stop taking frames (our own forwarder is stopped) and drop the buffer."""
        forwarder, self._video_forwarder = self._video_forwarder, None
        if forwarder is not None:
            forwarder.remove_frame_handler(self._on_frame)
            if self._owns_forwarder:
                await forwarder.stop()
        self._frame_buffer.clear()

    def _on_frame(self, frame: VideoFrame) -> None:
        # An idle track re-sends its last frame (the same object) to keep video
        # flowing; it is not a new picture and must not push real ones out.
        if self._frame_buffer and frame is self._frame_buffer[-1]:
            self.repeated_frames += 1
            return
        self._frame_buffer.append(frame)

    async def close(self) -> None:
        """Stop watching, stop the reply in flight and close the HTTP session."""
        await self.stop_watching_video_track()
        await super().close()

    # -- the reply ----------------------------------------------------------------
    async def simple_response(
        self,
        text: str,
        processors: Sequence[Any] | None = None,
        participant: Participant | None = None,
    ) -> AsyncIterator[ReplyItem]:
        """Stream a reply about ``text`` and the buffered frames (like the LLM without frames)."""
        started = time.perf_counter()
        frames = list(self._frame_buffer)
        inference_id = uuid.uuid4().hex
        self.events.send(VLMInferenceStartEvent(
            plugin_name=self.provider_name, inference_id=inference_id, model=self.model,
            frames_count=len(frames)))
        # JPEG encoding takes milliseconds per frame: keep it off the event loop.
        images = await asyncio.to_thread(self._encode_frames, frames) if frames else []
        messages = self._build_messages(None, processors, participant)
        user = _user_message(text, images)
        if user is not None:
            messages.append(user)
        async for item in self._stream_reply(messages, started):
            if isinstance(item, LLMResponseFinal):
                self.events.send(VLMInferenceCompletedEvent(
                    plugin_name=self.provider_name, inference_id=inference_id,
                    model=item.model, text=item.text, frames_count=len(frames),
                    latency_ms=item.latency_ms, input_tokens=item.input_tokens,
                    output_tokens=item.output_tokens))
            yield item

    def _encode_frames(self, frames: list[VideoFrame]) -> list[str]:
        """The frames as ``data:image/jpeg;base64,...`` URLs (runs in a worker thread)."""
        return ["data:image/jpeg;base64," + base64.b64encode(frame_to_jpeg_bytes(
            frame, quality=self.jpeg_quality, max_size=self.max_frame_side)).decode("ascii")
            for frame in frames]


def _user_message(text: str, images: list[str]) -> dict[str, Any] | None:
    """The user turn: plain text, or text plus one ``image_url`` part per frame."""
    if not images:
        return {"role": "user", "content": text} if text else None
    parts: list[dict[str, Any]] = [{"type": "text", "text": text}] if text else []
    parts += [{"type": "image_url", "image_url": {"url": url}} for url in images]
    return {"role": "user", "content": parts}
