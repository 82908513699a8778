"""``FaceDetector``: Haar-cascade face detection on video, with an annotated output track."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import av
import cv2
import numpy as np

from va_actors.core.processors import ProcessorErrorEvent, VideoProcessorPublisher
from va_actors.core.processors.frame_subscription import FrameSubscription
from va_actors.core.utils.video_forwarder import VideoForwarder
from va_actors.core.video import PixelFormat, QueuedVideoTrack, VideoFrame
from va_actors.core.video.frame import PlaneArray
from va_actors.core.video.track import VideoTrack

from .events import FacesDetectedEvent

__all__ = ["CASCADE_FILE", "FaceDetector", "FaceResult"]

logger = logging.getLogger(__name__)

CASCADE_FILE: Final = "haarcascade_frontalface_default.xml"
"""The cascade used, from ``cv2.data.haarcascades``."""
BOX_COLOUR: Final = (0, 255, 0)
"""Box colour on the annotated frames (RGB): pure green."""
PLUGIN_NAME: Final = "opencv"
MODEL_ID: Final = "haar:" + CASCADE_FILE


@dataclass(frozen=True)
class FaceResult:
    """What :meth:`FaceDetector.detect` found in one frame."""

    event: FacesDetectedEvent
    annotated: VideoFrame | None
    """The frame with boxes drawn (same size, format and pts), or None without ``annotate``."""


def _cascade_path() -> Path:
    data = getattr(cv2, "data", None)
    folder = getattr(data, "haarcascades", None)
    if not folder:
        raise RuntimeError(
            f"OpenCV {cv2.__version__} ships no Haar cascades (cv2.data.haarcascades is "
            "missing); install opencv-python-headless<5")
    return Path(folder) / CASCADE_FILE


def load_cascade() -> cv2.CascadeClassifier:
    """The frontal-face cascade shipped in the OpenCV wheel (an error names what is missing)."""
    path = _cascade_path()
    if not path.is_file():
        raise RuntimeError(f"Haar cascade not found at {path}; install opencv-python-headless<5")
    cascade = cv2.CascadeClassifier(str(path))
    if cascade.empty():
        raise RuntimeError(f"OpenCV could not load the Haar cascade {path}")
    return cascade


def _positive_number(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ValueError(f"FaceDetector {name} must be a positive number, got {value!r}")
    return float(value)


def _min_size(value: object) -> tuple[int, int]:
    if isinstance(value, int) and not isinstance(value, bool):
        pair: Sequence[object] = (value, value)
    elif isinstance(value, Sequence) and not isinstance(value, str) and len(value) == 2:
        pair = value
    else:
        raise ValueError(f"FaceDetector min_size must be an int or [width, height], got {value!r}")
    if not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in pair):
        raise ValueError(f"FaceDetector min_size values must be positive ints, got {value!r}")
    return int(pair[0]), int(pair[1])  # type: ignore[call-overload]


def _grey(frame: VideoFrame) -> PlaneArray:
    """Luma of ``frame``: yuv420p's Y plane as is, rgb24 converted."""
    if frame.format is PixelFormat.YUV420P:
        return frame.plane_arrays[0]
    return np.asarray(cv2.cvtColor(frame.plane_arrays[0], cv2.COLOR_RGB2GRAY), np.uint8)


def _line_width(frame: VideoFrame) -> int:
    # At least 3 px so the box survives yuv420p chroma subsampling and JPEG.
    return max(3, min(frame.width, frame.height) // 160)


def _annotate(frame: VideoFrame, boxes: list[list[int]]) -> VideoFrame:
    """``frame`` with ``boxes`` drawn, in the input's pixel format, size and timing."""
    if not boxes:
        return frame
    image = frame.to_ndarray(PixelFormat.RGB24)
    width = _line_width(frame)
    for x, y, w, h in boxes:
        cv2.rectangle(image, (x, y), (x + w - 1, y + h - 1), BOX_COLOUR, width)
    drawn = VideoFrame.from_ndarray(image, PixelFormat.RGB24, frame.pts, frame.time_base,
                                    copy=False)
    return drawn.reformat(frame.format)


class FaceDetector(VideoProcessorPublisher):
    """Finds frontal faces with OpenCV's Haar cascade.

    For every frame it processes (at most ``fps`` per second, taken from the
    shared :class:`VideoForwarder`) it sends a :class:`FacesDetectedEvent`
    and, with ``annotate``, adds the frame with each face boxed in green to
    the track :meth:`publish_video_track` returns. The output keeps the input
    frame's pts and pixel format; its size is the first input frame's (later
    frames of another size are letterboxed to it). The cascade runs in a
    worker thread (OpenCV releases the GIL), so the event loop stays free.

    Args:
        fps: frames per second processed.
        scale_factor: image pyramid step of ``detectMultiScale`` (> 1; smaller
            finds more faces, slower).
        min_neighbors: overlapping candidates a face needs (higher: fewer
            false positives).
        min_size: smallest face in pixels: an int or ``[width, height]``.
        annotate: publish annotated frames; False sends the events only.
    """

    name = "opencv_faces"

    def __init__(
        self,
        fps: float = 5,
        scale_factor: float = 1.1,
        min_neighbors: int = 5,
        min_size: int | Sequence[int] = 40,
        annotate: bool = True,
    ) -> None:
        super().__init__()
        self.fps = _positive_number("fps", fps)
        if _positive_number("scale_factor", scale_factor) <= 1:
            raise ValueError(f"FaceDetector scale_factor must be above 1, got {scale_factor!r}")
        self.scale_factor = float(scale_factor)
        if isinstance(min_neighbors, bool) or not isinstance(min_neighbors, int) \
                or min_neighbors < 0:
            raise ValueError(f"FaceDetector min_neighbors must be an int >= 0, "
                             f"got {min_neighbors!r}")
        self.min_neighbors = min_neighbors
        self.min_size = _min_size(min_size)
        self.annotate = bool(annotate)
        self._cascade = load_cascade()
        # The size is a placeholder until the first frame (see _fit_output).
        self._track = QueuedVideoTrack(640, 480, fps=self.fps, max_queue_size=2)
        self._sized = False
        self._frames = FrameSubscription(self.process_frame, fps=self.fps, name=self.name)
        self.frames_processed = 0
        """Frames detected on so far."""

    # -- processor API ---------------------------------------------------------------
    def publish_video_track(self) -> QueuedVideoTrack:
        """The annotated output track."""
        return self._track

    async def process_video(self, track: VideoTrack, participant_id: str | None,
                            shared_forwarder: VideoForwarder | None = None) -> None:
        """Process ``track`` at ``fps`` (via ``shared_forwarder`` when given)."""
        await self._frames.attach(track, shared_forwarder)

    async def stop_processing(self) -> None:
        """Stop taking frames (a forwarder of our own is stopped)."""
        await self._frames.detach()

    async def close(self) -> None:
        """Stop processing and end the output track."""
        await self.stop_processing()
        self._track.stop()

    # -- work --------------------------------------------------------------------------
    async def process_frame(self, frame: VideoFrame | av.VideoFrame) -> FaceResult | None:
        """Detect on one frame, send its event and publish the annotated frame.

        Input that is not a usable frame becomes a :class:`ProcessorErrorEvent`
        naming the problem (None is returned); the detector keeps running.
        """
        try:
            result = await asyncio.to_thread(self.detect, frame)
        except (TypeError, ValueError, cv2.error) as exc:
            self.events.send(ProcessorErrorEvent.bad_frame(PLUGIN_NAME, self.name, frame, exc))
            return None
        self.frames_processed += 1
        if result.annotated is not None:
            self._fit_output(result.annotated)
            self._track.add_frame(result.annotated)
        self.events.send(result.event)
        return result

    def detect(self, frame: VideoFrame | av.VideoFrame) -> FaceResult:
        """Find faces in ``frame`` (blocking; thread-safe for one caller at a time).

        Raises:
            TypeError: ``frame`` is not a VideoFrame or ``av.VideoFrame``.
        """
        started = time.perf_counter()
        vf = _as_frame(frame)
        grey = _grey(vf)
        detect_started = time.perf_counter()
        found = self._cascade.detectMultiScale(
            grey, scaleFactor=self.scale_factor, minNeighbors=self.min_neighbors,
            minSize=self.min_size)
        inference_ms = (time.perf_counter() - detect_started) * 1000
        boxes = [[int(v) for v in box] for box in np.asarray(found).reshape(-1, 4)]
        annotated = _annotate(vf, boxes) if self.annotate else None
        event = FacesDetectedEvent(
            plugin_name=PLUGIN_NAME, model_id=MODEL_ID, boxes=boxes,
            detections=[{"label": "face", "box": box} for box in boxes],
            detection_count=len(boxes), image_width=vf.width, image_height=vf.height,
            frame_pts=vf.pts, inference_time_ms=inference_ms,
            processing_ms=(time.perf_counter() - started) * 1000)
        return FaceResult(event, annotated)

    def _fit_output(self, frame: VideoFrame) -> None:
        # The output track is created before any frame exists (it is published
        # at start); it takes the first frame's size, rounded up to even as the
        # track requires.
        if self._sized:
            return
        self._sized = True
        self._track.width = frame.width + frame.width % 2
        self._track.height = frame.height + frame.height % 2


def _as_frame(frame: object) -> VideoFrame:
    if isinstance(frame, VideoFrame):
        return frame
    if isinstance(frame, av.VideoFrame):
        return VideoFrame.from_av(frame)
    raise TypeError(f"FaceDetector needs a VideoFrame or av.VideoFrame, got "
                    f"{type(frame).__name__}")
