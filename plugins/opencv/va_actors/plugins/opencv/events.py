"""The face detector's state event."""

from __future__ import annotations

from dataclasses import dataclass, field

from va_actors.core.processors.events import VideoProcessorDetectionEvent

__all__ = ["FacesDetectedEvent"]


@dataclass(kw_only=True)
class FacesDetectedEvent(VideoProcessorDetectionEvent):
    """Faces found in one input frame (sent for every processed frame, even with none).

    ``boxes`` are ``[x, y, w, h]`` in the input frame's pixels (``image_width``
    x ``image_height``); ``detections`` holds the same boxes in the generic
    detection form (``{"label": "face", "box": [...]}``). ``frame_pts`` is the
    input frame's pts, so results can be matched to frames.
    ``inference_time_ms`` is the cascade alone; ``processing_ms`` adds the
    conversion to grey and the drawing of the annotated frame.
    """

    type: str = field(default="plugin.opencv.faces", init=False)
    boxes: list[list[int]] = field(default_factory=list)
    processing_ms: float = 0.0
