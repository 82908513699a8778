"""The text reader's state event."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from va_actors.core.events import PluginBaseEvent

__all__ = ["TextReadEvent"]


@dataclass(kw_only=True)
class TextReadEvent(PluginBaseEvent):
    """Text read in one input frame (sent for every processed frame, even with none).

    ``lines`` items are ``{"text": str, "score": float, "box": [[x, y] * 4]}``
    (the box corners clockwise from top-left, in the input frame's pixels),
    in reading order (rows top to bottom, left to right within a row);
    ``text`` is the lines joined by newlines. ``frame_pts`` is the input
    frame's pts. ``processing_ms`` is the whole read (colour conversion,
    detection, classification, recognition).
    """

    type: str = field(default="plugin.rapidocr.text", init=False)
    lines: list[dict[str, Any]] = field(default_factory=list)
    text: str = ""
    image_width: int | None = None
    image_height: int | None = None
    frame_pts: int | None = None
    processing_ms: float = 0.0
    model_id: str | None = None
