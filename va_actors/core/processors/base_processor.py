"""Processor base classes: plugins that watch video or listen to audio.

A video processor registers a frame handler on the (shared) VideoForwarder it
is given, and may publish annotated frames on its own track and state as
events. An audio processor gets every chunk of user audio.
"""

from __future__ import annotations

import abc
from typing import TYPE_CHECKING, Any

from va_actors.core.audio.pcm import PcmData
from va_actors.core.events.manager import EventManager, WithEvents

if TYPE_CHECKING:
    from va_actors.core.utils.video_forwarder import VideoForwarder
    from va_actors.core.video.track import VideoTrack


class Processor(WithEvents, abc.ABC):
    """Base of every processor.

    Unlike Vision Agents' processors, ours have an :attr:`events` manager, so
    detections and state reach other actors as events. It is created on first
    use, so subclasses whose ``__init__`` does not call ``super().__init__()``
    (as in Vision Agents' examples) still have one.
    """

    def __init__(self) -> None:
        self._events = EventManager()

    @property
    def name(self) -> str:
        """A short name for logs and metrics (the class name by default)."""
        return type(self).__name__

    def attach_agent(self, agent: Any) -> None:
        """Optional hook: called with the agent (or actor host) that runs the processor."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Release models, threads and tracks."""


class VideoProcessor(Processor):
    """A processor that consumes video frames."""

    @abc.abstractmethod
    async def process_video(self, track: VideoTrack, participant_id: str | None,
                            shared_forwarder: VideoForwarder | None = None) -> None:
        """Start consuming ``track`` (preferably via ``shared_forwarder.add_frame_handler``)."""

    @abc.abstractmethod
    async def stop_processing(self) -> None:
        """Stop consuming video (remove frame handlers)."""


class VideoPublisher(Processor):
    """A processor that publishes a video track (e.g. annotated frames)."""

    @abc.abstractmethod
    def publish_video_track(self) -> VideoTrack:
        """The track this processor writes its output frames to."""


class AudioProcessor(Processor):
    """A processor that consumes user audio."""

    @abc.abstractmethod
    async def process_audio(self, audio_data: PcmData) -> None:
        """Consume one chunk (the speaker is ``audio_data.participant``)."""


class AudioPublisher(Processor):
    """A processor that publishes an audio track."""

    @abc.abstractmethod
    def publish_audio_track(self) -> Any:
        """The track this processor writes its output audio to."""


class VideoProcessorPublisher(VideoProcessor, VideoPublisher):
    """Consumes video and publishes a processed track."""


class AudioProcessorPublisher(AudioProcessor, AudioPublisher):
    """Consumes audio and publishes a processed track."""
