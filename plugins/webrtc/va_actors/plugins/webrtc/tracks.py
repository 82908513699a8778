"""The tracks the edge sends to a peer: the agent's voice and, optionally, a video.

Neither track keeps time itself. aiortc's sender awaits ``recv()`` and
encodes whatever it returns at once, so the edge's 20 ms clock (one for all
peers) decides when audio leaves, and a video frame leaves when the pipeline
delivers it.
"""

from __future__ import annotations

import asyncio
import fractions
import time
from collections import deque

import av
import numpy as np
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from va_actors.core.audio.pcm import SampleArray
from va_actors.core.video import VideoFrame

VIDEO_CLOCK_HZ = 90000
"""RTP clock of video (RFC 3551); pts of sent frames count in it."""
_AUDIO_QUEUE_FRAMES = 5
"""Frames waiting for the encoder at most (100 ms); beyond it the oldest go."""


class AgentAudioTrack(MediaStreamTrack):
    """Mono s16 audio handed over frame by frame by the edge's clock.

    ``pts`` counts samples from the first frame, so the RTP timestamps run
    with the clock that produced them (silence included: the stream never
    pauses).
    """

    kind = "audio"

    def __init__(self, sample_rate: int) -> None:
        super().__init__()
        self.sample_rate = sample_rate
        self._time_base = fractions.Fraction(1, sample_rate)
        self._frames: deque[av.AudioFrame] = deque()
        self._ready = asyncio.Event()
        self._pts = 0
        self.dropped = 0
        """Frames dropped because the encoder fell behind by more than 100 ms."""

    def push(self, samples: SampleArray) -> None:
        """Queue one frame of mono int16 samples for the encoder."""
        frame = av.AudioFrame(format="s16", layout="mono", samples=int(samples.shape[-1]))
        frame.planes[0].update(np.ascontiguousarray(samples, dtype="<i2").tobytes())
        frame.sample_rate = self.sample_rate
        frame.time_base = self._time_base
        frame.pts = self._pts
        self._pts += int(samples.shape[-1])
        self._frames.append(frame)
        while len(self._frames) > _AUDIO_QUEUE_FRAMES:
            self._frames.popleft()
            self.dropped += 1
        self._ready.set()

    def clear(self) -> None:
        """Barge-in: drop the frames not yet encoded."""
        self._frames.clear()

    async def recv(self) -> av.AudioFrame:
        """The next frame, as soon as the edge has pushed it."""
        while not self._frames:
            if self.readyState != "live":
                raise MediaStreamError
            self._ready.clear()
            await self._ready.wait()
        return self._frames.popleft()

    def stop(self) -> None:
        """End the track (wakes a waiting ``recv``)."""
        super().stop()
        self._ready.set()


class AgentVideoTrack(MediaStreamTrack):
    """The newest frame of a pipeline video topic (an annotated camera, say).

    A frame replaced before the encoder asked for it is skipped (counted in
    ``replaced``): the peer always sees the newest picture, never a backlog.
    """

    kind = "video"

    def __init__(self) -> None:
        super().__init__()
        self._frame: VideoFrame | None = None
        self._ready = asyncio.Event()
        self._start: float | None = None
        self._last_pts = -1
        self.sent = 0
        self.replaced = 0

    def push(self, frame: VideoFrame) -> None:
        """Offer the newest frame."""
        if self._frame is not None:
            self.replaced += 1
        self._frame = frame
        self._ready.set()

    async def recv(self) -> av.VideoFrame:
        """The newest frame once there is one the peer has not had."""
        while self._frame is None:
            if self.readyState != "live":
                raise MediaStreamError
            self._ready.clear()
            await self._ready.wait()
        frame, self._frame = self._frame, None
        out = frame.reformat("yuv420p").to_av() if frame.format != "yuv420p" else frame.to_av()
        now = time.monotonic()
        if self._start is None:
            self._start = now
        # pts from the wall clock: the peer plays frames at the pace they came.
        pts = max(self._last_pts + 1, int((now - self._start) * VIDEO_CLOCK_HZ))
        self._last_pts = pts
        out.pts = pts
        out.time_base = fractions.Fraction(1, VIDEO_CLOCK_HZ)
        self.sent += 1
        return out

    def stop(self) -> None:
        """End the track (wakes a waiting ``recv``)."""
        super().stop()
        self._ready.set()
