"""What a peer sends the pipeline: its microphone on ``audio``, its camera on ``video``.

aiortc decodes Opus to 48 kHz stereo s16 (20 ms per packet) and VP8/H.264 to
yuv420p frames. The microphone is resampled once, with one stateful
:class:`~va_actors.core.audio.Resampler` per peer, to the rate the pipeline
wants, cut into 20 ms chunks and tagged with the peer's participant. The
camera keeps only its newest frame: the publisher takes one at most
``fps`` times a second, so a slow consumer never builds a backlog here.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import av
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from va_actors.core.audio import AudioFormat, AudioFramer, PcmData, Resampler
from va_actors.core.edge import Participant
from va_actors.core.node import NodeContext
from va_actors.core.video import VideoFrame

logger = logging.getLogger(__name__)

FRAME_MS = 20
"""Length of every audio chunk the edge publishes."""
AUDIO = "audio"
VIDEO = "video"


class MicForwarder:
    """Publishes one peer's microphone track as 20 ms chunks on ``<edge>.audio``.

    ``pts`` counts samples published for this peer (``time_base`` = 1 / rate).
    ``last_media`` is the monotonic time of the last frame received (the
    edge's watchdog reads it to notice a peer that went silent for good).
    """

    def __init__(self, ctx: NodeContext, participant: Participant, sample_rate: int,
                 channels: int) -> None:
        self._ctx = ctx
        self._participant = participant
        self._rate = sample_rate
        self._resampler = Resampler(sample_rate, channels, AudioFormat.S16)
        self._framer = AudioFramer(FRAME_MS)
        self.position = 0
        """Samples published so far."""
        self.frames_in = 0
        self.last_media = time.monotonic()

    async def run(self, track: MediaStreamTrack) -> None:
        """Forward until the track ends."""
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            if isinstance(frame, av.AudioFrame):
                self.push(PcmData.from_av_frame(frame))

    def push(self, pcm: PcmData) -> None:
        """Resample, frame and publish one decoded chunk."""
        self.frames_in += 1
        self.last_media = time.monotonic()
        for chunk in self._framer.push(self._resampler.process(pcm)):
            chunk.pts = self.position
            chunk.time_base = 1.0 / self._rate
            chunk.participant = self._participant
            self._ctx.publish(AUDIO, chunk)
            self.position += chunk.num_samples

    @property
    def sent_ms(self) -> float:
        """Milliseconds of audio published so far."""
        return self.position * 1000 / self._rate


class CameraForwarder:
    """Publishes the newest frame of one peer's camera on ``<edge>.video``, at most ``fps``.

    ``allowed`` says whether this camera is the one published now (an edge
    has one video topic; the frames of two cameras interleaved on it would
    mean nothing to a detector).
    """

    def __init__(self, ctx: NodeContext, fps: float,
                 allowed: Callable[[], bool] | None = None) -> None:
        self._ctx = ctx
        self._interval = 1.0 / fps
        self._newest: av.VideoFrame | None = None
        self._arrived = asyncio.Event()
        self._allowed = allowed
        self.received = 0
        self.published = 0
        self.skipped = 0

    async def run(self, track: MediaStreamTrack) -> None:
        """Receive and publish until the track ends."""
        publisher = asyncio.create_task(self._publish())
        try:
            while True:
                try:
                    frame = await track.recv()
                except MediaStreamError:
                    return
                if not isinstance(frame, av.VideoFrame):
                    continue
                self.received += 1
                if self._newest is not None:
                    self.skipped += 1
                self._newest = frame
                self._arrived.set()
        finally:
            publisher.cancel()
            await asyncio.gather(publisher, return_exceptions=True)

    async def _publish(self) -> None:
        loop = asyncio.get_running_loop()
        next_due = loop.time()
        while True:
            await self._arrived.wait()
            delay = next_due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            frame, self._newest = self._newest, None
            self._arrived.clear()
            if frame is None:
                continue
            if self._allowed is not None and not self._allowed():
                continue  # another peer's camera is the one published
            try:
                value = VideoFrame.from_av(frame)
            except (TypeError, ValueError) as exc:  # odd sizes, exotic formats
                self._ctx.count_drop("bad_frame")
                logger.warning("%s: camera frame dropped: %s", self._ctx.name, exc)
                continue
            self._ctx.publish(VIDEO, value)
            self.published += 1
            next_due = max(next_due + self._interval, loop.time())
