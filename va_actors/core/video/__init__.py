"""Video frames, tracks and encoding helpers for plugins."""

from va_actors.core.video.encode import frame_to_jpeg_bytes
from va_actors.core.video.frame import PixelFormat, VideoFrame
from va_actors.core.video.track import (
    QueuedVideoTrack,
    SyntheticVideoTrack,
    VideoTrack,
    VideoTrackClosedError,
)

__all__ = [
    "PixelFormat",
    "QueuedVideoTrack",
    "SyntheticVideoTrack",
    "VideoFrame",
    "VideoTrack",
    "VideoTrackClosedError",
    "frame_to_jpeg_bytes",
]
