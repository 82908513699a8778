"""Sample arrays: the two formats, channel-major layout, conversion, channel mixing.

What :class:`~va_actors.core.audio.PcmData`, the streaming Resampler and the
AudioQueue share: ``s16`` <-> ``f32`` with the symmetric scale 32768, mono
and multichannel arrays as ``(n,)`` and ``(channels, n)``, and the array
shapes soxr wants.
"""

from __future__ import annotations

import functools
import operator
from enum import StrEnum
from typing import Any, Literal, SupportsIndex, TypeAlias

import numpy as np
import numpy.typing as npt

SampleArray: TypeAlias = npt.NDArray[Any]


class AudioFormat(StrEnum):
    """Sample format of a :class:`PcmData`; compares equal to its string value."""

    S16 = "s16"
    F32 = "f32"

    @staticmethod
    def validate(fmt: object) -> AudioFormat:
        """Return the :class:`AudioFormat` for ``fmt`` or raise ``ValueError``.

        Accepts the enum members, ``"s16"``/``"f32"`` and the numpy-style
        aliases ``"int16"``/``"float32"`` (case-insensitive).
        """
        if isinstance(fmt, AudioFormat):
            return fmt
        if isinstance(fmt, str):
            found = _FORMAT_NAMES.get(fmt.lower())
            if found is not None:
                return found
        raise ValueError(f"format must be 's16' or 'f32', got {fmt!r}")


AudioFormatType: TypeAlias = AudioFormat | Literal["s16", "f32"]

_FORMAT_NAMES: dict[str, AudioFormat] = {
    "s16": AudioFormat.S16,
    "int16": AudioFormat.S16,
    "f32": AudioFormat.F32,
    "float32": AudioFormat.F32,
}
_DTYPES: dict[AudioFormat, np.dtype[Any]] = {
    AudioFormat.S16: np.dtype(np.int16),
    AudioFormat.F32: np.dtype(np.float32),
}
_WIDTHS: dict[AudioFormat, int] = {AudioFormat.S16: 2, AudioFormat.F32: 4}
_S16_SCALE = 32768.0
_INV_S16_SCALE = np.float32(1.0 / _S16_SCALE)
_RESAMPLE_QUALITY = "HQ"


# --------------------------------------------------------------------------
# validation helpers


def _positive_int(value: object, name: str) -> int:
    """Return ``value`` as a positive int or raise ValueError naming ``name``."""
    if type(value) is int and value > 0:
        return value
    as_int: int | None = None
    if isinstance(value, SupportsIndex):
        as_int = operator.index(value)
    elif isinstance(value, float) and value.is_integer():
        as_int = int(value)
    if isinstance(value, bool) or as_int is None or as_int <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(as_int)


def _channel_major(samples: object, fmt: AudioFormat, channels: int) -> SampleArray:
    """Validate dtype and return samples as (n,) for mono or (channels, n)."""
    if not isinstance(samples, np.ndarray):
        raise TypeError(
            f"samples must be a numpy.ndarray, got {type(samples).__name__}; "
            "use PcmData.from_bytes() for bytes or PcmData.from_numpy() for other arrays"
        )
    expected = _DTYPES[fmt]
    if samples.dtype != expected:
        raise TypeError(
            f"samples dtype {samples.dtype} does not match format={fmt.value!r} "
            f"(which needs {expected}); convert the array or use PcmData.from_numpy()"
        )
    if samples.ndim == 1:
        if channels == 1:
            return samples
        if samples.size % channels:
            raise ValueError(
                f"channels={channels} does not divide the {samples.size} interleaved samples"
            )
        return samples.reshape(-1, channels).T
    if samples.ndim == 2:
        if samples.shape[0] == channels:
            return samples[0] if channels == 1 else samples
        if samples.shape[1] == channels:
            return samples[:, 0] if channels == 1 else samples.T
        raise ValueError(
            f"samples shape {samples.shape} does not match channels={channels}; "
            "expected (channels, n)"
        )
    raise ValueError(f"samples must be 1-D or 2-D, got shape {samples.shape}")


def _frame_count(samples: SampleArray) -> int:
    return int(samples.shape[-1]) if samples.ndim else 0


def _empty(fmt: AudioFormat, channels: int) -> SampleArray:
    shape: tuple[int, ...] = (0,) if channels == 1 else (channels, 0)
    return np.zeros(shape, dtype=_DTYPES[fmt])


# --------------------------------------------------------------------------
# sample conversions (shared with the streaming Resampler)


def _int16_to_float32(samples: SampleArray) -> SampleArray:
    return np.multiply(samples, _INV_S16_SCALE, dtype=np.float32)


def _float_to_int16(samples: SampleArray) -> SampleArray:
    return _round_to_int16(np.multiply(samples, _S16_SCALE, dtype=np.float32))


def _round_to_int16(scaled: SampleArray) -> SampleArray:
    """Round float32 values on the int16 scale to int16, in place where possible."""
    # minimum/maximum: np.clip costs about 1 us more per call on small arrays.
    np.minimum(scaled, 32767.0, out=scaled)
    np.maximum(scaled, -32768.0, out=scaled)
    np.rint(scaled, out=scaled)
    return scaled.astype(np.int16)


def _convert_samples(samples: SampleArray, fmt: AudioFormat) -> SampleArray:
    """Convert an int16/float32 array to the dtype of ``fmt`` with scaling."""
    if samples.dtype == _DTYPES[fmt]:
        return samples
    if fmt is AudioFormat.F32:
        return _int16_to_float32(samples)
    return _float_to_int16(samples)


def _coerce_array(array: SampleArray, fmt: AudioFormat) -> SampleArray:
    """Convert an arbitrary numeric array to ``fmt`` for ``from_numpy``.

    Integer arrays are taken as 16-bit-scale sample values and float arrays as
    [-1, 1] values, so converting between the two scales by 32768.
    """
    kind = array.dtype.kind
    if kind == "f":
        floats = array if array.dtype == np.float32 else array.astype(np.float32)
        return floats if fmt is AudioFormat.F32 else _float_to_int16(floats)
    if kind in "iu":
        if array.dtype != np.int16:
            array = np.clip(array, -32768, 32767).astype(np.int16)
        return array if fmt is AudioFormat.S16 else _int16_to_float32(array)
    raise TypeError(f"array dtype must be integer or float, got {array.dtype}")


def _check_mix(src: int, dst: int) -> None:
    if src != dst and src != 1 and dst != 1:
        raise ValueError(
            f"cannot convert {src} channels to {dst}; only mono <-> N channels is supported"
        )


def _mix_channels(samples: SampleArray, src: int, dst: int) -> SampleArray:
    """Down-mix (average) to mono or up-mix mono (copy) to ``dst`` channels."""
    if src == dst:
        return samples
    _check_mix(src, dst)
    if dst > 1:
        return np.repeat(samples.reshape(1, -1), dst, axis=0)
    mixed: SampleArray = _mix_weights(src, 1.0) @ samples.astype(np.float32, copy=False)
    return _round_to_int16(mixed) if samples.dtype == np.int16 else mixed


@functools.lru_cache(maxsize=32)
def _mix_weights(channels: int, gain: float) -> SampleArray:
    """Row vector that averages ``channels`` rows and scales by ``gain``.

    One BLAS product mixes and scales: ~2x faster than adding strided rows.
    """
    return np.full(channels, gain / channels, dtype=np.float32)


def _soxr_input(samples: SampleArray, src: int, dst: int, fmt: AudioFormat) -> SampleArray:
    """Prepare channel-major samples for soxr.

    Returns float32 on the scale of ``fmt`` (+-32768 for s16, +-1 for f32),
    down-mixed when ``dst < src``, shaped (n,) or (n, channels). Working on
    the output's scale saves a multiply on the way out.
    """
    gain = 1.0
    if samples.dtype == np.int16 and fmt is AudioFormat.F32:
        gain = 1.0 / _S16_SCALE
    elif samples.dtype == np.float32 and fmt is AudioFormat.S16:
        gain = _S16_SCALE
    if dst < src:
        _check_mix(src, dst)
        mixed: SampleArray = _mix_weights(src, gain) @ samples.astype(np.float32, copy=False)
        return mixed
    if gain != 1.0 or samples.dtype != np.float32:
        samples = np.multiply(samples, np.float32(gain), dtype=np.float32)
    return samples if samples.ndim == 1 else np.ascontiguousarray(samples.T)


def _soxr_output(frames: SampleArray, fmt: AudioFormat, src: int, dst: int) -> SampleArray:
    """soxr output (see :func:`_soxr_input`) to channel-major ``fmt``, up-mixed if needed."""
    if frames.size == 0:  # soxr emits in blocks: a third of 20 ms chunks give nothing
        return _empty(fmt, dst)
    samples = frames if frames.ndim == 1 else frames.T
    if fmt is AudioFormat.S16:
        samples = _round_to_int16(samples)
    return _mix_channels(samples, src, dst) if dst > src else samples
