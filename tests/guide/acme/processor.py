"""Acme video processors.

``FrameLogger`` is the docs' minimal video processor; ``DetectionProcessor``
sends frames to Acme's detection API and publishes annotated video.
"""

# ruff: noqa: UP045 - kept in the guide's typing style (Optional, List, Dict)

from __future__ import annotations  # aiortc is only needed for the type hints below

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Optional

import aiohttp
import av

from va_actors.core.processors import VideoProcessor, VideoProcessorPublisher
from va_actors.core.processors.events import VideoProcessorDetectionEvent
from va_actors.core.utils.video_forwarder import VideoForwarder
from va_actors.core.utils.video_track import QueuedVideoTrack
from va_actors.core.utils.video_utils import frame_to_jpeg_bytes

from ._client import DEFAULT_BASE_URL, api_key_from_env, auth_headers

if TYPE_CHECKING:  # the guide imports aiortc at run time; va_actors does not ship it
    import aiortc

logger = logging.getLogger(__name__)


class FrameLogger(VideoProcessor):
    name = "frame_logger"

    def __init__(self, fps: int = 5):
        self.fps = fps
        self.frame_count = 0
        self._forwarder: Optional[VideoForwarder] = None

    async def process_video(
        self,
        track: aiortc.VideoStreamTrack,
        participant_id: Optional[str],
        shared_forwarder: Optional[VideoForwarder] = None,
    ) -> None:
        self._forwarder = shared_forwarder
        self._forwarder.add_frame_handler(
            self._log_frame,
            fps=float(self.fps),
            name="frame_logger",
        )

    async def _log_frame(self, frame: av.VideoFrame):
        self.frame_count += 1
        logger.info(f"Frame {self.frame_count} ({frame.width}x{frame.height})")

    async def stop_processing(self) -> None:
        if self._forwarder:
            await self._forwarder.remove_frame_handler(self._log_frame)
            self._forwarder = None

    async def close(self) -> None:
        await self.stop_processing()


class DetectionProcessor(VideoProcessorPublisher):
    """Detects objects with Acme and publishes the frames with boxes drawn."""

    name = "acme_detection"

    def __init__(
        self,
        api_key: Optional[str] = None,
        fps: int = 5,
        width: int = 640,
        height: int = 480,
        base_url: str = DEFAULT_BASE_URL,
        client: Optional[aiohttp.ClientSession] = None,
    ):
        super().__init__()
        self.api_key = api_key_from_env(api_key)
        self.fps = fps
        self.base_url = base_url
        self._client = client
        self._own_client = client is None
        self._forwarder: Optional[VideoForwarder] = None
        self._video_track = QueuedVideoTrack(width=width, height=height, fps=fps)

    def publish_video_track(self) -> QueuedVideoTrack:
        return self._video_track

    async def process_video(
        self,
        track: aiortc.VideoStreamTrack,
        participant_id: Optional[str],
        shared_forwarder: Optional[VideoForwarder] = None,
    ) -> None:
        self._forwarder = shared_forwarder or VideoForwarder(
            track, max_buffer=self.fps, fps=self.fps, name="acme_detection"
        )
        self._forwarder.add_frame_handler(
            self._process_frame, fps=float(self.fps), name="acme_detection"
        )

    async def _process_frame(self, frame: av.VideoFrame) -> None:
        if self._client is None:
            self._client = aiohttp.ClientSession()
        start = time.perf_counter()
        jpeg = await asyncio.to_thread(
            frame_to_jpeg_bytes, frame=frame, target_width=640, target_height=480, quality=80
        )
        async with self._client.post(
            f"{self.base_url}/v1/detect",
            data=jpeg,
            headers={**auth_headers(self.api_key), "Content-Type": "image/jpeg"},
        ) as resp:
            resp.raise_for_status()
            result = await resp.json()
        objects = result["objects"]
        image = frame.to_ndarray(format="rgb24")
        for obj in objects:
            x, y, w, h = obj["box"]
            image[y:y + h, [x, x + w - 1]] = (255, 0, 0)
            image[[y, y + h - 1], x:x + w] = (255, 0, 0)
        self._video_track.add_frame(av.VideoFrame.from_ndarray(image, format="rgb24"))
        self.events.send(
            VideoProcessorDetectionEvent(
                plugin_name="acme",
                model_id="acme-detect-1",
                inference_time_ms=(time.perf_counter() - start) * 1000,
                detection_count=len(objects),
                detections=objects,
                image_width=frame.width,
                image_height=frame.height,
            )
        )

    async def stop_processing(self) -> None:
        if self._forwarder:
            await self._forwarder.remove_frame_handler(self._process_frame)
            self._forwarder = None

    async def close(self) -> None:
        await self.stop_processing()
        self._video_track.stop()
        if self._own_client and self._client is not None:
            await self._client.close()
