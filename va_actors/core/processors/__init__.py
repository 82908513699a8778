"""Audio and video processors: subclass ``processors.VideoProcessor`` etc."""

from va_actors.core.processors import events
from va_actors.core.processors.base_processor import (
    AudioProcessor,
    AudioProcessorPublisher,
    AudioPublisher,
    Processor,
    VideoProcessor,
    VideoProcessorPublisher,
    VideoPublisher,
)
from va_actors.core.processors.events import (
    ProcessorErrorEvent,
    ProcessorStateEvent,
    VideoProcessorDetectionEvent,
)

__all__ = [
    "AudioProcessor",
    "AudioProcessorPublisher",
    "AudioPublisher",
    "Processor",
    "ProcessorErrorEvent",
    "ProcessorStateEvent",
    "VideoProcessor",
    "VideoProcessorDetectionEvent",
    "VideoProcessorPublisher",
    "VideoPublisher",
    "events",
]
