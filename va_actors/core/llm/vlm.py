"""LLMs that take video (VideoLLM), audio (AudioLLM) or both (OmniLLM)."""

from __future__ import annotations

import abc
from typing import TYPE_CHECKING, Any

from va_actors.core.edge.types import Participant
from va_actors.core.llm.llm import LLM

if TYPE_CHECKING:
    from va_actors.core.audio.pcm import PcmData
    from va_actors.core.utils.video_forwarder import VideoForwarder


class VideoLLM(LLM):
    """An LLM that watches a video track (a VLM).

    Typical implementation: add a frame handler to the (shared) forwarder at
    a low fps, keep the last frames in a bounded deque, and send them with
    the text in ``simple_response``.
    """

    @abc.abstractmethod
    async def watch_video_track(self, track: Any,
                                shared_forwarder: VideoForwarder | None = None) -> None:
        """Start watching ``track``; use ``shared_forwarder`` when given instead of a new one."""

    @abc.abstractmethod
    async def stop_watching_video_track(self) -> None:
        """Stop watching (remove frame handlers, drop buffered frames)."""


class AudioLLM(LLM):
    """An LLM that takes speech directly (speech-to-speech); no STT or TTS needed.

    ``connected`` tells whether the provider session is up.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.connected = False

    @abc.abstractmethod
    async def simple_audio_response(self, pcm: PcmData,
                                    participant: Participant | None = None) -> None:
        """Forward a chunk of user audio to the model (resample to its rate here)."""


class OmniLLM(AudioLLM, VideoLLM):
    """An LLM that takes both speech and video."""
