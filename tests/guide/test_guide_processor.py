"""The docs' processors, ported: FrameLogger and an Acme detector that publishes annotated video."""

from __future__ import annotations

import asyncio

import acme
from conftest import AcmeProvider
from guide_helpers import collect, wait_for

from va_actors.core.processors.events import VideoProcessorDetectionEvent
from va_actors.core.utils.video_forwarder import VideoForwarder
from va_actors.core.video import SyntheticVideoTrack


async def test_frame_logger_counts_frames_at_its_fps() -> None:
    track = SyntheticVideoTrack(64, 48, fps=30)
    forwarder = VideoForwarder(track, fps=30)
    logger = acme.FrameLogger(fps=10)
    try:
        await logger.process_video(track, "alice", shared_forwarder=forwarder)
        await asyncio.sleep(0.5)
        await logger.stop_processing()  # awaits remove_frame_handler, as the docs do
        counted = logger.frame_count
        await asyncio.sleep(0.1)
    finally:
        await logger.close()
        await forwarder.stop()
        track.stop()
    assert 4 <= counted <= 7, counted
    assert logger.frame_count == counted  # no frames after stop_processing()
    assert logger.name == "frame_logger"
    assert logger.events is logger.events  # usable without super().__init__()


async def test_detector_publishes_annotated_frames_and_detections(
        acme_provider: AcmeProvider) -> None:
    track = SyntheticVideoTrack(320, 240, fps=30, pattern="checker")
    processor = acme.DetectionProcessor(api_key=acme_provider.api_key,
                                        base_url=acme_provider.base_url, fps=10,
                                        width=320, height=240)
    detections = collect(processor.events, VideoProcessorDetectionEvent)
    output = processor.publish_video_track()
    try:
        await processor.process_video(track, "alice")  # no shared forwarder: makes its own
        frame = await asyncio.wait_for(output.recv(), 2.0)
        await wait_for(lambda: bool(detections))
    finally:
        await processor.close()
        track.stop()
    pixels = frame.to_ndarray("rgb24")
    assert (frame.width, frame.height) == (320, 240)
    assert tuple(pixels[60, 80]) == (255, 0, 0)  # the box's top-left corner is drawn
    (width, height) = acme_provider.state.detect_requests[0]
    assert (width, height) == (320, 240)
    event = detections[0]
    assert event.detection_count == 1 and event.detections[0]["label"] == "widget"  # type: ignore[attr-defined]
    assert event.plugin_name == "acme" and event.image_width == 320  # type: ignore[attr-defined]
    assert output.stopped
