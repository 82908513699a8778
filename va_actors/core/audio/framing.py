"""Cut a stream of PcmData into frames of exactly ``frame_ms``."""

from __future__ import annotations

import logging

import numpy as np

from va_actors.core.audio.pcm import AudioFormat, PcmData, SampleArray

logger = logging.getLogger(__name__)

_Layout = tuple[int, int, AudioFormat]


def _describe(layout: _Layout) -> str:
    rate, channels, fmt = layout
    return f"{rate} Hz, {channels} ch, {fmt.value}"


class AudioFramer:
    """Re-chunk audio of any chunk size into frames of exactly ``frame_ms``.

    :meth:`push` returns the whole frames available and keeps the remainder
    for the next call; :meth:`flush` returns the remainder at the end of the
    stream. All chunks of one stream must share rate, channels and format;
    a change raises ``ValueError``. :meth:`flush` and :meth:`reset` end the
    stream, after which a new format is accepted.

    Frames may be views of the pushed arrays (no copy); do not modify a
    pushed array afterwards. ``pts`` is carried per frame when the input has
    ``pts`` and ``time_base``.
    """

    def __init__(self, frame_ms: float = 20) -> None:
        if not frame_ms > 0:
            raise ValueError(f"frame_ms must be > 0, got {frame_ms!r}")
        self._frame_ms = frame_ms
        self._layout: _Layout | None = None
        self._frame_size = 0
        self._pending: PcmData | None = None

    @property
    def frame_ms(self) -> float:
        """Frame length in milliseconds."""
        return self._frame_ms

    @property
    def frame_size(self) -> int:
        """Samples per channel in a frame (0 until the first push)."""
        return self._frame_size

    @property
    def pending_ms(self) -> float:
        """Buffered audio not yet returned, in milliseconds."""
        return 0.0 if self._pending is None else self._pending.duration_ms

    def push(self, pcm: PcmData) -> list[PcmData]:
        """Add a chunk; return every complete frame now available (maybe none).

        Raises:
            TypeError: ``pcm`` is not a PcmData.
            ValueError: ``pcm`` differs in rate, channels or format from the
                stream so far, or ``frame_ms`` is not a whole number of
                samples at this rate.
        """
        if not isinstance(pcm, PcmData):
            raise TypeError(f"AudioFramer.push expects PcmData, got {type(pcm).__name__}")
        self._check_layout((pcm.sample_rate, pcm.channels, pcm.format))
        head = self._pending
        if head is None:
            stream = pcm
        else:
            joined = np.concatenate((head.samples, pcm.samples), axis=-1)
            stream = head._like(joined)
            stream.participant = pcm.participant
        size = self._frame_size
        whole = stream.samples.shape[-1] // size * size
        samples = stream.samples
        frames = [
            stream._like(samples[..., i : i + size], pts=stream._pts_at(i))
            for i in range(0, whole, size)
        ]
        self._pending = self._remainder(stream, whole)
        return frames

    def flush(self, pad: bool = True) -> PcmData | None:
        """End the stream: return the buffered remainder, or None if there is none.

        With ``pad`` the remainder is zero-padded to a full frame.
        """
        rest = self._pending
        self.reset()
        if rest is None:
            return None
        if pad:
            return rest.head(self._frame_ms / 1000, pad=True)
        return rest

    def reset(self) -> None:
        """Drop buffered audio and accept a new stream format on the next push."""
        self._pending = None
        self._layout = None

    def _check_layout(self, layout: _Layout) -> None:
        if self._layout == layout:
            return
        if self._layout is not None:
            raise ValueError(
                f"AudioFramer stream changed from {_describe(self._layout)} to "
                f"{_describe(layout)}; call flush() or reset() before switching format"
            )
        size = layout[0] * self._frame_ms / 1000
        if size != int(size) or size < 1:
            raise ValueError(
                f"frame_ms={self._frame_ms} is not a whole number of samples at {layout[0]} Hz"
            )
        self._layout = layout
        self._frame_size = int(size)

    @staticmethod
    def _remainder(stream: PcmData, start: int) -> PcmData | None:
        samples: SampleArray = stream.samples[..., start:]
        if samples.shape[-1] == 0:
            return None
        # Copy: the caller may reuse the array it pushed.
        return stream._like(samples.copy(), pts=stream._pts_at(start))
