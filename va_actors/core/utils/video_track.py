"""Writable video track at Vision Agents' import path (``core.utils.video_track``)."""

from va_actors.core.video.track import QueuedVideoTrack

__all__ = ["QueuedVideoTrack"]
