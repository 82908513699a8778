"""Frame encoding helpers at Vision Agents' import path (``core.utils.video_utils``).

VLM plugins written for Vision Agents call
``frame_to_jpeg_bytes(frame=..., target_width=..., target_height=..., quality=...)``
from this module; it wraps :func:`va_actors.core.video.encode.frame_to_jpeg_bytes`.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

from va_actors.core.video.encode import frame_to_jpeg_bytes as _encode_jpeg
from va_actors.core.video.frame import PixelFormat, VideoFrame, is_av_video_frame

if TYPE_CHECKING:
    import av  # imported lazily at run time: see va_actors.core.video.frame

__all__ = ["frame_to_jpeg_bytes", "frame_to_png_bytes"]


def frame_to_jpeg_bytes(frame: VideoFrame | av.VideoFrame, target_width: int,
                        target_height: int, quality: int = 85) -> bytes:
    """Encode ``frame`` as JPEG, scaled to fit ``target_width`` x ``target_height``.

    The aspect ratio is kept and the image is never enlarged.

    Raises:
        ValueError: a target size is not a positive int, or ``quality`` is not in 1..100.
        TypeError: ``frame`` is neither a VideoFrame nor an ``av.VideoFrame``.
    """
    for label, value in (("target_width", target_width), ("target_height", target_height)):
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ValueError(f"{label} must be a positive int, got {value!r}")
    return _encode_jpeg(frame, quality=quality, max_size=(target_width, target_height))


def frame_to_png_bytes(frame: VideoFrame | av.VideoFrame) -> bytes:
    """Encode ``frame`` as PNG (lossless, full size)."""
    if is_av_video_frame(frame):
        frame = VideoFrame.from_av(frame, PixelFormat.RGB24)
    elif not isinstance(frame, VideoFrame):
        raise TypeError(f"frame must be a VideoFrame or av.VideoFrame, got {type(frame).__name__}")
    out = io.BytesIO()
    frame.to_image().save(out, format="PNG")
    return out.getvalue()
