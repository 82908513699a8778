"""Processor events."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from va_actors.core.events.base import PluginBaseEvent, PluginErrorEvent


@dataclass(kw_only=True)
class VideoProcessorDetectionEvent(PluginBaseEvent):
    """A video processor found things in a frame.

    ``detections`` items are maps such as ``{"label", "confidence", "box": [x, y, w, h]}``;
    ``frame_pts`` / ``frame_seq`` identify the input frame.
    """

    type: str = field(default="plugin.video_processor.detection", init=False)
    model_id: str | None = None
    inference_time_ms: float | None = None
    detection_count: int = 0
    detections: list[dict[str, Any]] = field(default_factory=list)
    image_width: int | None = None
    image_height: int | None = None
    frame_pts: int | None = None
    frame_seq: int | None = None


@dataclass(kw_only=True)
class ProcessorStateEvent(PluginBaseEvent):
    """Free-form state a processor publishes (e.g. text read by OCR)."""

    type: str = field(default="plugin.processor.state", init=False)
    processor: str = ""
    state: dict[str, Any] = field(default_factory=dict)
    frame_pts: int | None = None
    frame_seq: int | None = None


@dataclass(kw_only=True)
class ProcessorErrorEvent(PluginErrorEvent):
    """A processor failed on an input."""

    type: str = field(default="plugin.processor_error", init=False)
