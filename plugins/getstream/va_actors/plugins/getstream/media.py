"""The SDK's media <-> ours: inbound audio per participant, camera frames, the
agent's outgoing audio and video tracks.

SDK objects are only touched here and in :mod:`.edge`; nothing here imports
the SDK at module level (aiortc comes with it and is imported when an
outgoing video track is first needed).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from fractions import Fraction
from typing import Any

import numpy as np

from va_actors.core.audio import AudioFormat, AudioFramer, PcmData, Resampler
from va_actors.core.edge import Participant
from va_actors.core.video.frame import VideoFrame

__all__ = ["Inbound", "OutboundAudio", "participant_of", "video_frame"]

logger = logging.getLogger(__name__)

FRAME_MS = 20
"""Inbound audio goes out in chunks of exactly this length."""
TRACK_RATE = 48000
"""The agent's audio track: 48 kHz mono, Opus's own rate (no resampling in the SDK)."""


def participant_of(sdk_participant: Any) -> Participant | None:
    """The SDK's RemoteParticipant as ours (user id; the session id tells devices apart)."""
    if sdk_participant is None:
        return None
    return Participant(user_id=str(getattr(sdk_participant, "user_id", "") or ""),
                       id=str(getattr(sdk_participant, "session_id", "") or ""))


class Inbound:
    """Each participant's audio: resampled once (stateful), re-cut to 20 ms frames."""

    def __init__(self, sample_rate: int, channels: int) -> None:
        self._rate = sample_rate
        self._channels = channels
        self._streams: dict[str, tuple[Resampler, AudioFramer]] = {}

    def frames(self, sdk_pcm: Any) -> list[PcmData]:
        """The 20 ms frames ready after this chunk of the SDK's ``audio`` event."""
        who = participant_of(getattr(sdk_pcm, "participant", None))
        key = who.id if who is not None else ""
        stream = self._streams.get(key)
        if stream is None:
            stream = (Resampler(self._rate, self._channels, AudioFormat.S16),
                      AudioFramer(FRAME_MS))
            self._streams[key] = stream
        resampler, framer = stream
        samples = np.asarray(sdk_pcm.samples)
        pcm = PcmData.from_bytes(samples.astype("<i2", copy=False).tobytes(),
                                 sample_rate=int(sdk_pcm.sample_rate), format=AudioFormat.S16,
                                 channels=int(sdk_pcm.channels))
        out = framer.push(resampler.process(pcm))
        for frame in out:
            frame.participant = who
        return out

    def forget(self, sdk_participant: Any) -> None:
        """A participant left: drop their filter state."""
        who = participant_of(sdk_participant)
        if who is not None:
            self._streams.pop(who.id, None)


def video_frame(sdk_frame: Any) -> VideoFrame | None:
    """A decoded SDK frame (I420, or RGB/RGBA by its size) as ours; None if unknown."""
    width, height = int(sdk_frame.width), int(sdk_frame.height)
    data = np.asarray(sdk_frame.data, dtype=np.uint8).reshape(-1)
    time_base = Fraction(1, 90000)  # the RTP video clock
    pts = int(getattr(sdk_frame, "rtp_timestamp", 0) or 0)
    if data.size == width * height * 3 // 2 and width % 2 == 0 and height % 2 == 0:
        return VideoFrame.from_ndarray(data.reshape(height * 3 // 2, width), "yuv420p", pts,
                                       time_base)
    if data.size == width * height * 3:
        return VideoFrame.from_ndarray(data.reshape(height, width, 3), "rgb24", pts, time_base)
    if data.size == width * height * 4:
        rgb = data.reshape(height, width, 4)[:, :, :3]
        return VideoFrame.from_ndarray(rgb, "rgb24", pts, time_base)
    return None


class OutboundAudio:
    """Writes played agent audio to the SDK's ``AudioStreamTrack`` in order.

    The speaker model (:class:`~va_actors.plugins.local.sinks.PlaybackSink`)
    hands over samples at real time from a synchronous hook; writes and
    flushes go through one queue so a flush (barge-in) never overtakes the
    audio written before it, and nothing written after it is lost.
    """

    def __init__(self, rtc: Any) -> None:
        self._rtc = rtc
        self.track: Any = rtc.AudioStreamTrack(sample_rate=TRACK_RATE, channels=1)
        self._queue: asyncio.Queue[np.ndarray[Any, Any] | None] = asyncio.Queue()
        self._task = asyncio.create_task(self._pump(), name="stream-edge-audio-out")

    def write(self, samples: np.ndarray[Any, Any]) -> None:
        """Queue channel-major s16 samples (48 kHz mono) for the track."""
        self._queue.put_nowait(np.ascontiguousarray(samples.reshape(-1), dtype=np.int16))

    def flush(self) -> None:
        """Barge-in: drop what is queued here and in the track."""
        while not self._queue.empty():
            self._queue.get_nowait()
        self._queue.put_nowait(None)

    async def _pump(self) -> None:
        rtc = self._rtc
        while True:
            item = await self._queue.get()
            try:
                if item is None:
                    await self.track.flush()
                else:
                    await self.track.write(rtc.PcmData(sample_rate=TRACK_RATE,
                                                       format=rtc.AudioFormat.S16,
                                                       samples=item, channels=1))
            except Exception:  # the track went away with the connection
                logger.debug("agent audio write failed", exc_info=True)

    async def close(self) -> None:
        """Stop the writer and the track."""
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        with contextlib.suppress(Exception):
            self.track.stop()


def outbound_video_track() -> Any:
    """An aiortc video track the SDK reads: frames put with ``put(av_frame)``, newest wins."""
    import aiortc  # comes with getstream[webrtc]

    class _Track(aiortc.VideoStreamTrack):
        kind = "video"

        def __init__(self) -> None:
            super().__init__()
            self._slot: asyncio.Queue[Any] = asyncio.Queue(maxsize=1)

        def put(self, frame: Any) -> None:
            if self._slot.full():
                self._slot.get_nowait()
            self._slot.put_nowait(frame)

        async def recv(self) -> Any:
            return await self._slot.get()

    return _Track()
