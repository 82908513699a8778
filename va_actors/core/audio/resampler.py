"""The project's streaming resampler: one instance per audio stream.

Resampling 20 ms chunks independently clicks at every boundary and, with
getstream's linear interpolator, aliases. :class:`Resampler` keeps a
``soxr.ResampleStream`` (quality HQ) alive between chunks, so a stream cut
into chunks comes out the same as the whole signal resampled at once.
"""

from __future__ import annotations

import logging

import numpy as np
import soxr

from va_actors.core.audio.pcm import PcmData
from va_actors.core.audio.samples import (
    AudioFormat,
    AudioFormatType,
    SampleArray,
    _check_mix,
    _convert_samples,
    _empty,
    _mix_channels,
    _positive_int,
    _soxr_input,
    _soxr_output,
)

logger = logging.getLogger(__name__)

_QUALITY = "HQ"


class Resampler:
    """Convert a stream of :class:`PcmData` to one rate, channel count and format.

    Create one per stream (per participant and direction) and feed it every
    chunk in order with :meth:`process`; call :meth:`flush` at the end of the
    stream to get the last few milliseconds the filter still holds.

    * The input side configures itself from the first chunk. If a later
      chunk has a different sample rate or channel count, the resampler
      flushes the old stream (its tail is prepended to that chunk's output)
      and reconfigures instead of failing. A change of input *format* alone
      needs no reconfiguration.
    * Down-mixing averages channels; up-mixing copies mono to every channel.
    * ``pts``, ``dts``, ``time_base`` and ``participant`` of each input chunk
      are copied to its output chunk.
    * Output length varies from chunk to chunk: soxr emits in blocks, so a
      chunk may produce nothing and the next one more. The total is exact
      after :meth:`flush`.
    * When the input already has the target rate, channels and format, the
      input object itself is returned (no copy).

    Not thread-safe; use from one task or thread.
    """

    def __init__(
        self,
        target_sample_rate: int,
        target_channels: int = 1,
        target_format: AudioFormatType = AudioFormat.S16,
    ) -> None:
        self._rate = _positive_int(target_sample_rate, "target_sample_rate")
        self._channels = _positive_int(target_channels, "target_channels")
        self._format = AudioFormat.validate(target_format)
        self._source: tuple[int, int] | None = None
        self._stream: soxr.ResampleStream | None = None
        self._stream_channels = self._channels
        self._primed = False
        self._participant: object = None

    def __repr__(self) -> str:
        return (
            f"Resampler(target_sample_rate={self._rate}, target_channels={self._channels}, "
            f"target_format={self._format.value!r}, source={self._source})"
        )

    @property
    def target_sample_rate(self) -> int:
        """Output sample rate."""
        return self._rate

    @property
    def target_channels(self) -> int:
        """Output channel count."""
        return self._channels

    @property
    def target_format(self) -> AudioFormat:
        """Output sample format."""
        return self._format

    def process(self, pcm: PcmData) -> PcmData:
        """Convert the next chunk of the stream.

        Raises:
            TypeError: ``pcm`` is not a PcmData.
            ValueError: the channel conversion is not mono <-> N.
        """
        if not isinstance(pcm, PcmData):
            raise TypeError(f"Resampler.process expects PcmData, got {type(pcm).__name__}")
        tail = None
        if (pcm.sample_rate, pcm.channels) != self._source:
            tail = self._configure(pcm.sample_rate, pcm.channels)
        self._participant = pcm.participant
        if tail is None and self._stream is None and self._matches(pcm):
            return pcm
        samples = self._convert(pcm.samples, pcm.channels)
        if tail is not None:
            samples = np.concatenate((tail, samples), axis=-1)
        return pcm._like(
            samples, sample_rate=self._rate, channels=self._channels, format=self._format
        )

    def flush(self) -> PcmData:
        """End the stream: return what the filter still holds (may be empty).

        The configuration is kept, so the resampler can take a new stream of
        the same input format right away.
        """
        tail = self._drain()
        samples = _empty(self._format, self._channels) if tail is None else tail
        return PcmData(
            self._rate,
            self._format,
            samples,
            channels=self._channels,
            participant=self._participant,
        )

    def reset(self) -> None:
        """Drop all buffered audio and forget the input configuration."""
        self._source = None
        self._stream = None
        self._primed = False

    def _matches(self, pcm: PcmData) -> bool:
        return (
            pcm.sample_rate == self._rate
            and pcm.channels == self._channels
            and pcm.format is self._format
        )

    def _configure(self, rate: int, channels: int) -> SampleArray | None:
        """Switch to a new input rate/channel count; return the old stream's tail."""
        _check_mix(channels, self._channels)
        tail = self._drain()
        if self._source is not None:
            logger.info(
                "Resampler input changed from %s Hz x%d to %s Hz x%d; flushed and reconfigured",
                *self._source,
                rate,
                channels,
            )
        self._source = (rate, channels)
        self._stream_channels = min(channels, self._channels)
        self._stream = None
        if rate != self._rate:
            self._stream = soxr.ResampleStream(
                rate, self._rate, self._stream_channels, dtype="float32", quality=_QUALITY
            )
        self._primed = False
        return tail

    def _convert(self, samples: SampleArray, channels: int) -> SampleArray:
        if self._stream is None:
            mixed = _mix_channels(samples, channels, self._channels)
            return _convert_samples(mixed, self._format)
        floats = _soxr_input(samples, channels, self._channels, self._format)
        if floats.shape[0]:
            self._primed = True
        out = self._stream.resample_chunk(floats)
        return _soxr_output(out, self._format, self._stream_channels, self._channels)

    def _drain(self) -> SampleArray | None:
        """Flush the soxr stream; None when it holds nothing."""
        stream = self._stream
        if stream is None or not self._primed:
            return None
        last_in = np.zeros((0, self._stream_channels), np.float32)
        out = stream.resample_chunk(last_in if self._stream_channels > 1 else last_in[:, 0], True)
        stream.clear()
        self._primed = False
        return _soxr_output(out, self._format, self._stream_channels, self._channels)
