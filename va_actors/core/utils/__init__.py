"""Media helpers plugins use, as in Vision Agents' ``core.utils``."""

from va_actors.core.utils.audio_queue import AudioQueue, QueuedAudio
from va_actors.core.utils.video_forwarder import VideoForwarder

__all__ = ["AudioQueue", "QueuedAudio", "VideoForwarder"]
