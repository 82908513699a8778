"""``TextReader``: OCR on video frames, one :class:`TextReadEvent` per processed frame."""

from __future__ import annotations

import logging
import time
from typing import Any, Final

import av
import cv2
import numpy as np
import numpy.typing as npt

from va_actors.core.processors import ProcessorErrorEvent, VideoProcessor
from va_actors.core.processors.frame_subscription import FrameSubscription
from va_actors.core.utils.video_forwarder import VideoForwarder
from va_actors.core.video import PixelFormat, VideoFrame
from va_actors.core.video.track import VideoTrack

from .engine import MODEL_FILES, EngineOptions, LimitType, build_engine
from .events import TextReadEvent

__all__ = ["TextReader"]

logger = logging.getLogger(__name__)

PLUGIN_NAME: Final = "rapidocr"
MODEL_ID: Final = "rapidocr:" + MODEL_FILES["Rec"].removesuffix(".onnx")


def _bgr(frame: VideoFrame) -> npt.NDArray[np.uint8]:
    """The frame as the BGR array RapidOCR takes for ndarray input."""
    if frame.format is PixelFormat.YUV420P:
        i420 = frame.to_ndarray(PixelFormat.YUV420P)
        return np.asarray(cv2.cvtColor(i420, cv2.COLOR_YUV2BGR_I420), np.uint8)
    return np.asarray(cv2.cvtColor(frame.plane_arrays[0], cv2.COLOR_RGB2BGR), np.uint8)


def _as_frame(frame: object) -> VideoFrame:
    if isinstance(frame, VideoFrame):
        return frame
    if isinstance(frame, av.VideoFrame):
        return VideoFrame.from_av(frame)
    raise TypeError(f"TextReader needs a VideoFrame or av.VideoFrame, got {type(frame).__name__}")


def _lines(output: Any) -> list[dict[str, Any]]:
    """RapidOCR's output as plain line records in reading order (no text: an empty list)."""
    texts, scores, boxes = output.txts, output.scores, output.boxes
    if texts is None or scores is None or boxes is None:
        return []
    lines = [{"text": str(text), "score": round(float(score), 4),
              "box": [[round(float(x), 1), round(float(y), 1)] for x, y in box]}
             for text, score, box in zip(texts, scores, boxes, strict=True)]
    return _reading_order(lines)


def _reading_order(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Top to bottom, and left to right within a row.

    RapidOCR returns boxes in detection order, which can put a word of a row
    after a later one. Boxes whose vertical centres are within half the
    median box height of a row's first box share that row.
    """
    if len(lines) < 2:
        return lines

    def centre_y(line: dict[str, Any]) -> float:
        return float(sum(y for _, y in line["box"])) / 4

    def height(line: dict[str, Any]) -> float:
        ys = [float(y) for _, y in line["box"]]
        return max(ys) - min(ys)

    tolerance = float(np.median([height(line) for line in lines])) / 2
    rows: list[list[dict[str, Any]]] = []
    for line in sorted(lines, key=centre_y):
        if rows and abs(centre_y(line) - centre_y(rows[-1][0])) <= tolerance:
            rows[-1].append(line)
        else:
            rows.append([line])
    return [line for row in rows for line in sorted(row, key=lambda ln: min(ln["box"])[0])]


class TextReader(VideoProcessor):
    """Reads the text in video frames with RapidOCR (PP-OCR ONNX models from the wheel).

    At most ``fps`` frames per second are taken from the shared
    :class:`VideoForwarder` (always the newest; the rest are skipped). Each
    read sends a :class:`TextReadEvent` (lines with text, score and box, the
    input frame's pts, the time taken), also when no text was found.

    **The read blocks the event loop on purpose** (about 0.1 to 2 s per frame
    depending on size and settings): in va-actors every actor is its own
    process, so nothing else shares this loop but the actor's own input
    reading, and heartbeats come from the host's control thread. This is the
    heavy, blocking stage the runtime scales with ``replicas``. In-process
    (one loop for many plugins) run :meth:`read` in a thread instead.

    Args:
        fps: frames read per second (at most).
        text_score: lines recognised with a lower confidence are dropped (0..1).
        use_cls: run the text-orientation classifier (handles upside-down
            text; about 10 % of the time).
        det_limit_side_len, det_limit_type: the detector's input scaling:
            with ``"min"`` (RapidOCR's default) the shorter side is scaled
            up or down to ``det_limit_side_len``; with ``"max"`` the longer
            side is scaled down to it when larger (much faster on wide frames).
        threads: onnxruntime intra-op threads; None = onnxruntime's default
            (all cores). One per replica when scaling out.
    """

    name = "rapidocr_text"

    def __init__(
        self,
        fps: float = 1,
        text_score: float = 0.5,
        use_cls: bool = True,
        det_limit_side_len: int = 736,
        det_limit_type: LimitType = "min",
        threads: int | None = None,
    ) -> None:
        super().__init__()
        if isinstance(fps, bool) or not isinstance(fps, int | float) or not fps > 0:
            raise ValueError(f"TextReader fps must be a positive number, got {fps!r}")
        self.fps = float(fps)
        self.options = EngineOptions(text_score, use_cls, det_limit_side_len, det_limit_type,
                                     threads)
        self._engine = build_engine(self.options)
        self._frames = FrameSubscription(self.process_frame, fps=self.fps, name=self.name)
        self.frames_read = 0
        """Frames read so far."""

    async def start(self) -> None:
        """Load the three models now (about 1 s), not on the first frame."""
        self.warm_up()

    def warm_up(self) -> None:
        """Run one read of a rendered line of text, which loads det, cls and rec."""
        image = np.full((64, 320, 3), 255, np.uint8)
        cv2.putText(image, "warm up 123", (8, 44), cv2.FONT_HERSHEY_SIMPLEX, 1.2, (0, 0, 0), 2)
        self._engine(image)

    # -- processor API -------------------------------------------------------------
    async def process_video(self, track: VideoTrack, participant_id: str | None,
                            shared_forwarder: VideoForwarder | None = None) -> None:
        """Read ``track`` at ``fps`` (via ``shared_forwarder`` when given)."""
        await self._frames.attach(track, shared_forwarder)

    async def stop_processing(self) -> None:
        """Stop taking frames (a forwarder of our own is stopped)."""
        await self._frames.detach()

    async def close(self) -> None:
        """Stop reading."""
        await self.stop_processing()

    # -- work ----------------------------------------------------------------------
    def process_frame(self, frame: VideoFrame | av.VideoFrame) -> TextReadEvent | None:
        """Read one frame (blocking) and send its event.

        Input that is not a usable frame becomes a :class:`ProcessorErrorEvent`
        naming the problem (None is returned); the reader keeps running.
        """
        try:
            event = self.read(frame)
        except (TypeError, ValueError, cv2.error) as exc:
            self.events.send(ProcessorErrorEvent.bad_frame(PLUGIN_NAME, self.name, frame, exc))
            return None
        self.frames_read += 1
        self.events.send(event)
        return event

    def read(self, frame: VideoFrame | av.VideoFrame) -> TextReadEvent:
        """The text in ``frame`` (blocking; one caller at a time).

        Raises:
            TypeError: ``frame`` is not a VideoFrame or ``av.VideoFrame``.
        """
        started = time.perf_counter()
        vf = _as_frame(frame)
        lines = _lines(self._engine(_bgr(vf)))
        return TextReadEvent(
            plugin_name=PLUGIN_NAME, model_id=MODEL_ID, lines=lines,
            text="\n".join(line["text"] for line in lines),
            image_width=vf.width, image_height=vf.height, frame_pts=vf.pts,
            processing_ms=(time.perf_counter() - started) * 1000)
