"""Image encoding helpers for frames sent to vision models (base64 JPEG)."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

from va_actors.core.video.frame import PixelFormat, VideoFrame, is_av_video_frame

if TYPE_CHECKING:
    import av  # imported lazily at run time: see va_actors.core.video.frame

__all__ = ["frame_to_jpeg_bytes"]


def _fit_size(width: int, height: int, max_size: int | tuple[int, int]) -> tuple[int, int]:
    """Largest size within ``max_size`` keeping the aspect ratio; never upscales."""
    if isinstance(max_size, int):
        box_w = box_h = max_size
    else:
        box_w, box_h = max_size
    if isinstance(box_w, bool) or isinstance(box_h, bool) or box_w <= 0 or box_h <= 0:
        raise ValueError(f"max_size must be a positive int or (width, height), got {max_size!r}")
    scale = min(box_w / width, box_h / height, 1.0)
    return max(1, round(width * scale)), max(1, round(height * scale))


def frame_to_jpeg_bytes(
    frame: VideoFrame | av.VideoFrame,
    quality: int = 80,
    max_size: int | tuple[int, int] | None = None,
) -> bytes:
    """Encode a frame as JPEG.

    Args:
        frame: a :class:`VideoFrame` or a PyAV frame.
        quality: JPEG quality, 1..100.
        max_size: bound on the output size, either one int for the longest side
            or a ``(width, height)`` box. The aspect ratio is kept and the image
            is never enlarged.
    """
    if isinstance(quality, bool) or not isinstance(quality, int) or not 1 <= quality <= 100:
        raise ValueError(f"quality must be an int in 1..100, got {quality!r}")
    if is_av_video_frame(frame):
        frame = VideoFrame.from_av(frame, PixelFormat.RGB24)
    elif not isinstance(frame, VideoFrame):
        raise TypeError(f"frame must be a VideoFrame or av.VideoFrame, got {type(frame).__name__}")
    image = frame.to_image()
    if max_size is not None:
        size = _fit_size(frame.width, frame.height, max_size)
        if size != image.size:
            from PIL import Image

            image = image.resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0)
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=quality)
    return out.getvalue()
