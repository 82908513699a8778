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

    @classmethod
    def bad_frame(cls, plugin_name: str, processor: str, frame: object,
                  error: BaseException) -> ProcessorErrorEvent:
        """The event for an input frame ``processor`` could not use.

        ``context`` names the frame (size, format and pts), or the type of
        what came instead of one; ``error_code`` is ``"bad_frame"``.
        """
        return cls(plugin_name=plugin_name, error=error, error_code="bad_frame",
                   context=f"{processor}: input frame {_describe_frame(frame)}")


def _describe_frame(frame: object) -> str:
    # Duck-typed: our VideoFrame and av.VideoFrame both have these (and av is
    # not imported here; actor hosts load it only when they need it).
    if all(hasattr(frame, name) for name in ("width", "height", "format", "pts")):
        f: Any = frame
        fmt = f.format if isinstance(f.format, str) else getattr(f.format, "name", f.format)
        return f"{f.width}x{f.height} {fmt} pts={f.pts}"
    return f"of type {type(frame).__name__}"
