"""FaceDetector on a real face: the public-domain NASA astronaut photo (assets/README.md)."""

from __future__ import annotations

import asyncio
import importlib.metadata
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from va_actors.core.events import BaseEvent
from va_actors.core.processors import ProcessorErrorEvent, VideoProcessorPublisher
from va_actors.core.utils.video_forwarder import VideoForwarder
from va_actors.core.video import PixelFormat, QueuedVideoTrack, VideoFrame
from va_actors.plugins.opencv import FaceDetector, FacesDetectedEvent

ASSET = Path(__file__).parent / "assets" / "astronaut_face.jpg"
FACE = (113, 67, 93, 93)  # [177, 67, 93, 93] in the full 512x512 image, minus the crop's x 64
TIME_BASE = Fraction(1, 90000)
GREEN = np.array([0, 255, 0])


def _astronaut(pts: int | None = 0, fmt: PixelFormat = PixelFormat.RGB24) -> VideoFrame:
    image = Image.open(ASSET).convert("RGB")
    return VideoFrame.from_image(image, pts, TIME_BASE).reformat(fmt)


def _blank(width: int, height: int, pts: int | None = 0) -> VideoFrame:
    return VideoFrame.from_ndarray(np.full((height, width, 3), 128, np.uint8),
                                   PixelFormat.RGB24, pts, TIME_BASE)


def _iou(a: list[int] | tuple[int, ...], b: list[int] | tuple[int, ...]) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    w = max(0, min(ax + aw, bx + bw) - max(ax, bx))
    h = max(0, min(ay + ah, by + bh) - max(ay, by))
    inter = w * h
    return inter / (aw * ah + bw * bh - inter)


def _greenish(pixels: np.ndarray) -> np.ndarray:
    """Pixels that are clearly the box colour (tolerant of yuv420p and JPEG rounding)."""
    r, g, b = (pixels[..., i].astype(int) for i in range(3))
    return (g > 180) & (r < 110) & (b < 110)


def _collect(detector: FaceDetector, cls: type[BaseEvent]) -> list[BaseEvent]:
    got: list[BaseEvent] = []
    detector.events.subscribe(event_types=(cls,))(got.append)
    return got


@pytest.mark.parametrize("fmt", [PixelFormat.RGB24, PixelFormat.YUV420P])
def test_finds_the_astronauts_face_and_boxes_it_in_green(fmt: PixelFormat) -> None:
    detector = FaceDetector()
    result = detector.detect(_astronaut(pts=4500, fmt=fmt))
    event = result.event
    assert len(event.boxes) == 1 and _iou(event.boxes[0], FACE) > 0.7, event.boxes
    assert event.detection_count == 1 and event.detections[0]["box"] == event.boxes[0]
    assert (event.image_width, event.image_height, event.frame_pts) == (320, 320, 4500)
    assert event.processing_ms >= (event.inference_time_ms or 0) > 0
    annotated = result.annotated
    assert annotated is not None
    assert (annotated.format, annotated.pts, annotated.width) == (fmt, 4500, 320)
    pixels = annotated.to_ndarray()
    x, y, w, h = event.boxes[0]
    assert _greenish(pixels[y + h // 2, x - 1 : x + 3]).any()  # left edge of the box
    assert _greenish(pixels[y : y + 3, x + w // 2]).any()  # top edge
    assert not _greenish(pixels[y + h // 2, x + 10 : x + w - 10]).any()  # face not painted
    assert _greenish(_astronaut(fmt=fmt).to_ndarray()).sum() < 50  # the photo has next to none


def test_no_face_in_a_plain_frame_gives_an_empty_event_and_the_frame_unchanged() -> None:
    frame = _blank(640, 480, pts=9)
    result = FaceDetector().detect(frame)
    assert result.event.boxes == [] and result.event.detection_count == 0
    assert result.annotated == frame


def test_min_size_larger_than_the_face_finds_nothing() -> None:
    assert FaceDetector(min_size=[150, 150]).detect(_astronaut()).event.boxes == []


def test_the_event_round_trips_through_the_wire_form() -> None:
    event = FaceDetector().detect(_astronaut(pts=7)).event
    back = BaseEvent.from_dict(event.to_dict())
    assert isinstance(back, FacesDetectedEvent) and back.type == "plugin.opencv.faces"
    assert back.boxes == event.boxes and back.frame_pts == 7


async def test_processes_a_track_at_its_fps_and_publishes_annotated_frames_keeping_pts() -> None:
    source = QueuedVideoTrack(320, 320, fps=30, max_queue_size=2)
    forwarder = VideoForwarder(source, fps=30)
    detector = FaceDetector(fps=5)
    events = _collect(detector, FacesDetectedEvent)
    output = detector.publish_video_track()
    sent: list[int] = []
    try:
        await detector.process_video(source, None, shared_forwarder=forwarder)
        for i in range(30):  # one second at 30 fps
            pts = i * 3000
            source.add_frame(_astronaut(pts=pts))
            sent.append(pts)
            await asyncio.sleep(1 / 30)
        await asyncio.sleep(0.3)
        first_out = await asyncio.wait_for(output.recv(), 2.0)
    finally:
        await detector.close()
        await forwarder.stop()
        source.stop()
    assert 3 <= len(events) <= 8, len(events)  # 5 fps, not 30
    pts_seen = [e.frame_pts for e in events]  # type: ignore[attr-defined]
    assert all(p in sent for p in pts_seen) and pts_seen == sorted(pts_seen)
    assert all(len(e.boxes) == 1 for e in events)  # type: ignore[attr-defined]
    assert first_out.pts in pts_seen and (first_out.width, first_out.height) == (320, 320)
    assert _greenish(first_out.to_ndarray()).sum() > 300
    assert output.stopped


async def test_annotate_off_publishes_no_frames_but_still_reports() -> None:
    detector = FaceDetector(annotate=False)
    result = await detector.process_frame(_astronaut())
    assert result is not None and result.annotated is None and len(result.event.boxes) == 1
    assert len(detector.publish_video_track()._queue) == 0
    await detector.close()


async def test_bad_input_becomes_an_error_event_and_the_detector_keeps_working() -> None:
    detector = FaceDetector()
    errors = _collect(detector, ProcessorErrorEvent)
    faces = _collect(detector, FacesDetectedEvent)
    assert await detector.process_frame(np.zeros((10, 10, 3), np.uint8)) is None
    assert len(errors) == 1
    error = errors[0]
    assert isinstance(error, ProcessorErrorEvent) and error.error_code == "bad_frame"
    assert "of type ndarray" in error.context and "VideoFrame" in str(error.error)
    result = await detector.process_frame(_astronaut(pts=1))
    assert result is not None and len(result.event.boxes) == 1 and len(faces) == 1
    await detector.close()


async def test_tiny_and_resized_frames_are_handled() -> None:
    detector = FaceDetector()
    output = detector.publish_video_track()
    tiny = await detector.process_frame(_blank(2, 2, pts=1))
    assert tiny is not None and tiny.event.boxes == [] and tiny.event.image_width == 2
    # Later frames of another size still report in their own pixels; the output
    # track keeps the first size (letterboxed).
    big = await detector.process_frame(_astronaut(pts=2))
    assert big is not None and big.event.image_width == 320 and len(big.event.boxes) == 1
    frames = [await output.recv(), await output.recv()]
    assert [(f.width, f.height) for f in frames] == [(2, 2), (2, 2)]
    await detector.close()


def test_av_frames_are_accepted() -> None:
    av_frame = _astronaut(pts=5).to_av()
    assert len(FaceDetector().detect(av_frame).event.boxes) == 1


@pytest.mark.parametrize(("kwargs", "named"), [
    ({"fps": 0}, "fps"), ({"scale_factor": 1.0}, "scale_factor"),
    ({"min_neighbors": -1}, "min_neighbors"), ({"min_size": [10]}, "min_size"),
    ({"min_size": 0}, "min_size"), ({"fps": True}, "fps"),
])
def test_bad_params_are_rejected_by_name(kwargs: dict[str, object], named: str) -> None:
    with pytest.raises(ValueError, match=named):
        FaceDetector(**kwargs)


def test_entry_point_loads_the_detector() -> None:
    eps = importlib.metadata.entry_points(group="va_actors.plugins")
    cls = next(ep for ep in eps if ep.name == "opencv.faces").load()
    assert cls is FaceDetector and issubclass(cls, VideoProcessorPublisher)
