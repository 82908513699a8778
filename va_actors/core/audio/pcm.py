"""PCM audio container compatible with getstream's ``PcmData``.

Plugin code written against ``getstream.video.rtc.track_util.PcmData`` works
unchanged with :class:`PcmData` from this module. Conventions:

* ``samples`` is a numpy array: 1-D ``(n,)`` for mono, channel-major
  ``(channels, n)`` for more channels. Its dtype always matches ``format``
  (``int16`` for ``s16``, ``float32`` for ``f32``).
* Bytes (``from_bytes``, ``to_bytes``, ``data``) are interleaved
  ``L R L R ...``, little-endian, as providers send and expect them.
* ``s16`` <-> ``f32`` uses the symmetric scale 32768, so a round trip
  ``to_float32().to_int16()`` returns the original samples exactly.
* ``resample`` is a one-shot, anti-aliased (soxr HQ) conversion of a whole
  clip. For a stream of 20 ms chunks use
  :class:`va_actors.core.audio.Resampler`, which keeps filter state.
"""

from __future__ import annotations

import io
import logging
import wave
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeAlias, overload

import numpy as np
import soxr

if TYPE_CHECKING:
    # PyAV is imported only by to_av_frame: an idle actor process should not
    # pay ~16 MB RSS for it (issue #6). from_av_frame gets a frame, so no import.
    import av

from va_actors.core.audio import av_audio, g711
from va_actors.core.audio.g711 import G711Encoding, G711Mapping
from va_actors.core.audio.samples import (
    _DTYPES,
    _RESAMPLE_QUALITY,
    _WIDTHS,
    AudioFormat,
    AudioFormatType,
    SampleArray,
    _channel_major,
    _check_mix,
    _coerce_array,
    _convert_samples,
    _empty,
    _float_to_int16,
    _frame_count,
    _int16_to_float32,
    _mix_channels,
    _positive_int,
    _soxr_input,
    _soxr_output,
)

__all__ = ["AudioFormat", "AudioFormatType", "G711Encoding", "G711Mapping", "PcmData",
           "SampleArray"]

logger = logging.getLogger(__name__)



class _HasBytesData(Protocol):
    @property
    def data(self) -> bytes | bytearray | memoryview: ...


BytesLike: TypeAlias = bytes | bytearray | memoryview
ResponseChunk: TypeAlias = "BytesLike | PcmData | _HasBytesData"


class PcmData:
    """A chunk of PCM audio plus its rate, format, channel count and timing.

    Args:
        sample_rate: samples per second per channel (positive int).
        format: ``AudioFormat.S16``/``"s16"`` or ``AudioFormat.F32``/``"f32"``.
        samples: numpy array whose dtype matches ``format``; ``(n,)`` for mono,
            ``(channels, n)`` otherwise (a 1-D array with ``channels > 1`` is
            read as interleaved, an ``(n, channels)`` array is transposed).
            Defaults to an empty array.
        pts, dts: timestamps in ``time_base`` units.
        time_base: seconds per timestamp unit.
        channels: channel count (positive int).
        participant: who produced the audio (opaque, passed through).

    Raises:
        TypeError: ``samples`` is not a numpy array or its dtype does not match
            ``format``.
        ValueError: unknown ``format``, non-positive ``sample_rate`` or
            ``channels``, or a sample shape that does not fit ``channels``.
    """

    def __init__(
        self,
        sample_rate: int,
        format: AudioFormatType,
        samples: SampleArray | None = None,
        pts: int | None = None,
        dts: int | None = None,
        time_base: float | None = None,
        channels: int = 1,
        participant: Any = None,
    ) -> None:
        fmt = AudioFormat.validate(format)
        self.sample_rate: int = _positive_int(sample_rate, "sample_rate")
        self.channels: int = _positive_int(channels, "channels")
        self.format: AudioFormat = fmt
        self.samples: SampleArray = (
            _empty(fmt, self.channels)
            if samples is None
            else _channel_major(samples, fmt, self.channels)
        )
        self.pts = pts
        self.dts = dts
        self.time_base = time_base
        self.participant = participant

    # ------------------------------------------------------------------ info

    def __repr__(self) -> str:
        return (
            f"PcmData(sample_rate={self.sample_rate}, format={self.format.value!r}, "
            f"channels={self.channels}, samples={self.num_samples}, "
            f"duration_ms={self.duration_ms:.1f})"
        )

    @property
    def num_samples(self) -> int:
        """Samples per channel (the length of the clip in sample periods)."""
        return _frame_count(self.samples)

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return _frame_count(self.samples) / self.sample_rate

    @property
    def duration_ms(self) -> float:
        """Length in milliseconds."""
        return _frame_count(self.samples) * 1000.0 / self.sample_rate

    @property
    def stereo(self) -> bool:
        """True for exactly two channels."""
        return self.channels == 2

    @property
    def empty(self) -> bool:
        """True when there are no samples."""
        return bool(self.samples.size == 0)

    @property
    def pts_seconds(self) -> float | None:
        """``pts`` in seconds, or None without ``pts`` and ``time_base``."""
        if self.pts is None or self.time_base is None:
            return None
        return self.pts * self.time_base

    @property
    def dts_seconds(self) -> float | None:
        """``dts`` in seconds, or None without ``dts`` and ``time_base``."""
        if self.dts is None or self.time_base is None:
            return None
        return self.dts * self.time_base

    @property
    def data(self) -> SampleArray:
        """The samples as one interleaved 1-D array in this clip's dtype.

        This is the layout providers take (``pcm.data.tobytes()`` equals
        ``pcm.to_bytes()``). It is ``samples`` itself for mono and a view for
        clips built from interleaved bytes; other multichannel layouts are
        copied. Treat it as read-only.
        """
        samples = self.samples
        if samples.ndim == 1:
            return samples
        return samples.T.reshape(-1)

    # ---------------------------------------------------------- constructors

    def _like(self, samples: SampleArray, **changes: Any) -> PcmData:
        """A PcmData with ``samples`` and this clip's metadata (minus ``changes``)."""
        out = PcmData.__new__(PcmData)
        out.sample_rate = changes.get("sample_rate", self.sample_rate)
        out.channels = changes.get("channels", self.channels)
        out.format = changes.get("format", self.format)
        out.samples = samples
        out.pts = changes.get("pts", self.pts)
        out.dts = self.dts
        out.time_base = self.time_base
        out.participant = self.participant
        return out

    @classmethod
    def from_bytes(
        cls,
        audio_bytes: BytesLike,
        sample_rate: int = 16000,
        format: AudioFormatType = AudioFormat.S16,
        channels: int = 1,
    ) -> PcmData:
        """Build from interleaved little-endian PCM bytes.

        Trailing bytes that do not make a whole sample frame (one sample for
        every channel) are dropped.
        """
        fmt = AudioFormat.validate(format)
        channels = _positive_int(channels, "channels")
        if not isinstance(audio_bytes, bytes):
            if not isinstance(audio_bytes, bytearray | memoryview):
                raise TypeError(f"audio_bytes must be bytes-like, got {type(audio_bytes).__name__}")
            # Copy so later writes to a mutable buffer cannot change the samples.
            audio_bytes = bytes(audio_bytes)
        frame_width = _WIDTHS[fmt] * channels
        usable = len(audio_bytes) - len(audio_bytes) % frame_width
        if usable != len(audio_bytes):
            logger.debug("from_bytes: dropping %d misaligned bytes", len(audio_bytes) - usable)
        flat = np.frombuffer(audio_bytes, dtype=_DTYPES[fmt], count=usable // _WIDTHS[fmt])
        return cls(sample_rate, fmt, flat, channels=channels)

    @classmethod
    def from_numpy(
        cls,
        array: SampleArray,
        sample_rate: int = 16000,
        format: AudioFormatType = AudioFormat.S16,
        channels: int = 1,
    ) -> PcmData:
        """Build from any numeric numpy array, converting dtype and layout.

        Integer arrays are read as 16-bit sample values, float arrays as values
        in [-1, 1]; ``s16`` <-> ``f32`` conversion scales by 32768. Accepted
        shapes: ``(n,)`` (interleaved when ``channels > 1``), ``(channels, n)``
        and ``(n, channels)``.
        """
        fmt = AudioFormat.validate(format)
        if not isinstance(array, np.ndarray):
            raise TypeError(
                f"array must be a numpy.ndarray, got {type(array).__name__}; "
                "use from_bytes() for bytes or from_response() for provider responses"
            )
        return cls(sample_rate, fmt, _coerce_array(array, fmt), channels=channels)

    @classmethod
    def from_av_frame(cls, frame: av.AudioFrame) -> PcmData:
        """Build from a PyAV ``AudioFrame``.

        s16 and flt (packed or planar) are kept as they are; the other formats
        decoders produce (u8, s32 from 24-bit files, s64, dbl) become f32.
        ``pts``, ``dts`` and ``time_base`` (as float seconds) are carried over.
        """
        fmt, samples, channels = av_audio.samples_of(frame)
        time_base = frame.time_base
        return cls(
            frame.sample_rate,
            fmt,
            samples,
            pts=frame.pts,
            dts=frame.dts,
            time_base=None if time_base is None else float(time_base),
            channels=channels,
        )

    @classmethod
    def from_g711(
        cls,
        g711_data: BytesLike | str,
        sample_rate: int = 8000,
        channels: int = 1,
        mapping: G711Mapping | Literal["mulaw", "alaw"] = G711Mapping.MULAW,
        encoding: G711Encoding | Literal["raw", "base64"] = G711Encoding.RAW,
    ) -> PcmData:
        """Decode G.711 (mu-law or A-law) bytes to ``s16``.

        A ``str`` is always read as base64; bytes are read per ``encoding``.
        Multichannel input is interleaved; trailing bytes that do not fill a
        frame are dropped.
        """
        channels = _positive_int(channels, "channels")
        samples = g711.decode(g711_data, mapping, encoding, channels)
        return cls(sample_rate, AudioFormat.S16, samples, channels=channels)

    @overload
    @classmethod
    def from_response(
        cls,
        response: BytesLike | PcmData | _HasBytesData,
        *,
        sample_rate: int = ...,
        channels: int = ...,
        format: AudioFormatType = ...,
    ) -> PcmData: ...

    @overload
    @classmethod
    def from_response(
        cls,
        response: AsyncIterable[ResponseChunk],
        *,
        sample_rate: int = ...,
        channels: int = ...,
        format: AudioFormatType = ...,
    ) -> AsyncIterator[PcmData]: ...

    @overload
    @classmethod
    def from_response(
        cls,
        response: Iterable[ResponseChunk],
        *,
        sample_rate: int = ...,
        channels: int = ...,
        format: AudioFormatType = ...,
    ) -> Iterator[PcmData]: ...

    @classmethod
    def from_response(
        cls,
        response: object,
        *,
        sample_rate: int = 16000,
        channels: int = 1,
        format: AudioFormatType = AudioFormat.S16,
    ) -> PcmData | Iterator[PcmData] | AsyncIterator[PcmData]:
        """Turn a provider response into PcmData.

        * bytes-like -> one ``PcmData``; a ``PcmData`` is returned as is;
        * a sync iterable of chunks -> an iterator of ``PcmData``;
        * an async iterable of chunks -> an async iterator of ``PcmData``;
        * any object whose ``.data`` is bytes -> one ``PcmData``.

        Chunks may be bytes-like, objects with bytes ``.data``, or ``PcmData``
        (passed through). Byte chunks are re-aligned so that a sample split
        across two chunks is reassembled; an incomplete frame left at the end
        of the stream is dropped.
        """
        fmt = AudioFormat.validate(format)
        sample_rate = _positive_int(sample_rate, "sample_rate")
        channels = _positive_int(channels, "channels")
        if isinstance(response, PcmData):
            return response
        if isinstance(response, bytes | bytearray | memoryview):
            return cls.from_bytes(response, sample_rate, fmt, channels)
        aligner = _ByteAligner(sample_rate, fmt, channels)
        if isinstance(response, AsyncIterable):
            return aligner.aiter(response)
        if isinstance(response, Iterable) and not isinstance(response, str):
            return aligner.iter(response)
        data = getattr(response, "data", None)
        if isinstance(data, bytes | bytearray | memoryview):
            return cls.from_bytes(data, sample_rate, fmt, channels)
        raise TypeError(
            f"from_response cannot read {type(response).__name__}; expected bytes, "
            "PcmData, an (async) iterator of bytes, or an object with bytes .data"
        )

    # ----------------------------------------------------------- conversions

    def resample(self, target_sample_rate: int, target_channels: int | None = None) -> PcmData:
        """Return this clip at another rate and/or channel count, same format.

        One-shot, anti-aliased (soxr HQ) conversion of the whole clip; returns
        ``self`` when nothing changes. Resampling 20 ms chunks one by one
        with this method leaves edge artifacts: use ``Resampler`` for streams.
        Down-mixing averages the channels; up-mixing copies mono.
        """
        rate = _positive_int(target_sample_rate, "target_sample_rate")
        channels = self.channels if target_channels is None else target_channels
        channels = _positive_int(channels, "target_channels")
        if rate == self.sample_rate and channels == self.channels:
            return self
        _check_mix(self.channels, channels)
        if rate == self.sample_rate:
            samples = _mix_channels(self.samples, self.channels, channels)
        elif self.samples.shape[-1] == 0:
            samples = _empty(self.format, channels)
        else:
            floats = _soxr_input(self.samples, self.channels, channels, self.format)
            out = soxr.resample(floats, self.sample_rate, rate, _RESAMPLE_QUALITY)
            samples = _soxr_output(out, self.format, min(self.channels, channels), channels)
        return self._like(samples, sample_rate=rate, channels=channels)

    def to_float32(self) -> PcmData:
        """Return an ``f32`` copy scaled to [-1, 1) (``self`` if already ``f32``)."""
        if self.format is AudioFormat.F32:
            return self
        return self._like(_int16_to_float32(self.samples), format=AudioFormat.F32)

    def to_int16(self) -> PcmData:
        """Return an ``s16`` copy, rounded and clipped (``self`` if already ``s16``)."""
        if self.format is AudioFormat.S16:
            return self
        return self._like(_float_to_int16(self.samples), format=AudioFormat.S16)

    def to_bytes(self) -> bytes:
        """Interleaved little-endian PCM bytes in this clip's format."""
        return self.data.tobytes()

    def to_wav_bytes(self) -> bytes:
        """A complete 16-bit WAV file (header and frames)."""
        buffer = io.BytesIO()
        with wave.open(buffer, "wb") as wav:
            wav.setnchannels(self.channels)
            wav.setsampwidth(2)
            wav.setframerate(self.sample_rate)
            wav.writeframes(self.to_int16().to_bytes())
        return buffer.getvalue()

    def to_av_frame(self) -> av.AudioFrame:
        """A planar PyAV ``AudioFrame`` (``s16p`` or ``fltp``) with rate and pts."""
        return av_audio.frame_of(self.samples, self.format, self.channels, self.sample_rate,
                                 self.pts, self.time_base)

    def g711_bytes(
        self,
        sample_rate: int = 8000,
        channels: int = 1,
        mapping: G711Mapping | Literal["mulaw", "alaw"] = G711Mapping.MULAW,
    ) -> bytes:
        """Encode to G.711 bytes, resampling/mixing to ``sample_rate``/``channels``."""
        pcm = self.resample(sample_rate, channels).to_int16()
        return g711.encode(pcm.data, mapping)

    # ---------------------------------------------------------------- editing

    def append(self, other: PcmData) -> PcmData:
        """Append ``other`` in place and return ``self``.

        ``other`` is first converted to this clip's rate, channel count and
        format (rate changes use the one-shot :meth:`resample`).
        """
        if not isinstance(other, PcmData):
            raise TypeError(f"append expects PcmData, got {type(other).__name__}")
        adjusted = other.resample(self.sample_rate, self.channels)
        addition = _convert_samples(adjusted.samples, self.format)
        if addition.shape[-1] == 0:
            return self
        if self.samples.shape[-1] == 0:
            self.samples = addition
        else:
            self.samples = np.concatenate((self.samples, addition), axis=-1)
        return self

    def copy(self) -> PcmData:
        """A deep copy: the samples are copied, metadata shared."""
        return self._like(self.samples.copy())

    def clear(self) -> None:
        """Remove all samples in place, keeping rate, format and metadata."""
        self.samples = _empty(self.format, self.channels)

    def head(self, duration_s: float, pad: bool = False, pad_at: str = "end") -> PcmData:
        """The first ``duration_s`` seconds; zero-padded to length if ``pad``."""
        return self._cut(duration_s, pad, pad_at, from_end=False)

    def tail(self, duration_s: float, pad: bool = False, pad_at: str = "end") -> PcmData:
        """The last ``duration_s`` seconds; zero-padded to length if ``pad``.

        As in getstream, padding goes at the end unless ``pad_at="start"``
        (which keeps the real audio as the most recent part).
        """
        return self._cut(duration_s, pad, pad_at, from_end=True)

    def _cut(self, duration_s: float, pad: bool, pad_at: str, from_end: bool) -> PcmData:
        if pad_at not in ("start", "end"):
            raise ValueError(f"pad_at must be 'start' or 'end', got {pad_at!r}")
        if not duration_s >= 0:
            raise ValueError(f"duration_s must be >= 0, got {duration_s!r}")
        target = round(duration_s * self.sample_rate)
        have = self.samples.shape[-1]
        if have >= target:
            start = have - target if from_end else 0
            return self._like(self.samples[..., start : start + target])
        if not pad:
            return self._like(self.samples)
        missing = target - have
        widths = [(0, 0)] * (self.samples.ndim - 1)
        widths.append((missing, 0) if pad_at == "start" else (0, missing))
        return self._like(np.pad(self.samples, widths))

    def chunks(
        self, chunk_size: int, overlap: int = 0, pad_last: bool = False
    ) -> Iterator[PcmData]:
        """Yield consecutive ``chunk_size``-sample pieces (views, not copies).

        With ``overlap`` each piece starts ``chunk_size - overlap`` samples
        after the previous one. The last piece is shorter unless ``pad_last``
        zero-pads it. ``pts`` advances with each piece when ``time_base`` is set.
        """
        size = _positive_int(chunk_size, "chunk_size")
        if not 0 <= overlap < size:
            raise ValueError(f"overlap must be in [0, chunk_size={size}), got {overlap!r}")
        return self._windows(size, size - overlap, pad_last)

    def sliding_window(
        self, window_ms: float, hop_ms: float, pad_last: bool = False
    ) -> Iterator[PcmData]:
        """Yield ``window_ms`` windows every ``hop_ms`` (see :meth:`chunks`)."""
        size = round(self.sample_rate * window_ms / 1000)
        step = round(self.sample_rate * hop_ms / 1000)
        if size <= 0:
            raise ValueError(f"window_ms={window_ms!r} is shorter than one sample")
        if step <= 0:
            raise ValueError(f"hop_ms={hop_ms!r} is shorter than one sample")
        return self._windows(size, step, pad_last)

    def _windows(self, size: int, step: int, pad_last: bool) -> Iterator[PcmData]:
        samples = self.samples
        total = samples.shape[-1]
        for start in range(0, total, step):
            piece = samples[..., start : start + size]
            got = piece.shape[-1]
            if got < size and pad_last:
                widths = [(0, 0)] * (samples.ndim - 1) + [(0, size - got)]
                piece = np.pad(piece, widths)
            yield self._like(piece, pts=self._pts_at(start))

    def _pts_at(self, offset: int) -> int | None:
        if self.pts is None or self.time_base is None or offset == 0:
            return self.pts
        return self.pts + round(offset / self.sample_rate / self.time_base)


class _ByteAligner:
    """Turns a stream of byte chunks into PcmData cut on whole sample frames."""

    def __init__(self, sample_rate: int, fmt: AudioFormat, channels: int) -> None:
        self._rate = sample_rate
        self._format = fmt
        self._channels = channels
        self._frame_width = _WIDTHS[fmt] * channels
        self._pending = bytearray()

    def _feed(self, chunk: object) -> PcmData | None:
        if isinstance(chunk, PcmData):
            return chunk
        data = chunk if isinstance(chunk, bytes | bytearray | memoryview) else None
        if data is None:
            data = getattr(chunk, "data", None)
            if not isinstance(data, bytes | bytearray | memoryview):
                raise TypeError(
                    f"response chunk must be bytes, PcmData or have bytes .data, "
                    f"got {type(chunk).__name__}"
                )
        pending = self._pending
        if not pending and len(data) % self._frame_width == 0:
            whole: BytesLike = data
        else:
            pending += data
            usable = len(pending) - len(pending) % self._frame_width
            whole = bytes(pending[:usable])
            del pending[:usable]
        if not whole:
            return None
        return PcmData.from_bytes(whole, self._rate, self._format, self._channels)

    def _finish(self) -> None:
        if self._pending:
            logger.debug("from_response: dropping %d trailing bytes", len(self._pending))
            self._pending.clear()

    def iter(self, response: Iterable[object]) -> Iterator[PcmData]:
        for chunk in response:
            pcm = self._feed(chunk)
            if pcm is not None:
                yield pcm
        self._finish()

    async def aiter(self, response: AsyncIterable[object]) -> AsyncIterator[PcmData]:
        async for chunk in response:
            pcm = self._feed(chunk)
            if pcm is not None:
                yield pcm
        self._finish()
