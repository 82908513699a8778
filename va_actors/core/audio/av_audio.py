"""PyAV audio frames <-> sample arrays (PyAV itself is imported only when a frame is made).

s16 and flt (packed or planar) are kept as they are; the other formats
decoders produce (u8, s32 from 24-bit files, s64, dbl) become f32.
"""

from __future__ import annotations

from fractions import Fraction
from typing import TYPE_CHECKING

import numpy as np

from va_actors.core.audio.samples import AudioFormat, SampleArray, _empty

if TYPE_CHECKING:
    # An idle actor process should not pay ~16 MB RSS for PyAV (issue #6).
    import av

__all__ = ["frame_of", "samples_of"]

_AV_FORMATS: dict[str, tuple[AudioFormat, bool]] = {
    # PyAV format name -> (our format, planar)
    "s16": (AudioFormat.S16, False),
    "s16p": (AudioFormat.S16, True),
    "flt": (AudioFormat.F32, False),
    "fltp": (AudioFormat.F32, True),
}
# Formats decoders produce that we carry as f32: name -> (zero level, full scale).
_AV_WIDE_FORMATS: dict[str, tuple[float, float]] = {
    "u8": (128.0, 128.0), "s32": (0.0, 2.0**31), "s64": (0.0, 2.0**63), "dbl": (0.0, 1.0),
}
_AV_LAYOUTS: dict[int, str] = {
    1: "mono",
    2: "stereo",
    3: "3.0",
    4: "quad",
    5: "5.0",
    6: "5.1",
    7: "6.1",
    8: "7.1",
}


def _time_base_fraction(time_base: float) -> Fraction:
    return Fraction(time_base).limit_denominator(1 << 30)


def samples_of(frame: av.AudioFrame) -> tuple[AudioFormat, SampleArray, int]:
    """``(format, samples, channels)`` of a PyAV ``AudioFrame``."""
    name = frame.format.name
    base = name.removesuffix("p")
    if name not in _AV_FORMATS and base not in _AV_WIDE_FORMATS:
        raise ValueError(
            f"unsupported AudioFrame format {name!r}; expected one of "
            f"{', '.join([*_AV_FORMATS, *_AV_WIDE_FORMATS])} (planar variants too)"
        )
    fmt, planar = _AV_FORMATS.get(name, (AudioFormat.F32, frame.format.is_planar))
    channels = frame.layout.nb_channels
    if frame.samples == 0:
        samples = _empty(fmt, channels)
    else:
        raw = frame.to_ndarray()
        if base in _AV_WIDE_FORMATS:
            zero, scale = _AV_WIDE_FORMATS[base]
            raw = ((raw.astype(np.float64) - zero) / scale).astype(np.float32)
        samples = raw if planar else raw.reshape(-1)
    return fmt, samples, channels


def frame_of(samples: SampleArray, fmt: AudioFormat, channels: int, sample_rate: int,
             pts: int | None, time_base: float | None) -> av.AudioFrame:
    """A planar PyAV ``AudioFrame`` (``s16p`` or ``fltp``) of channel-major ``samples``."""
    import av

    layout = _AV_LAYOUTS.get(channels)
    if layout is None:
        raise ValueError(f"no PyAV layout for channels={channels}")
    av_format = "s16p" if fmt is AudioFormat.S16 else "fltp"
    planes = np.ascontiguousarray(samples.reshape(channels, -1))
    frame = av.AudioFrame.from_ndarray(planes, format=av_format, layout=layout)
    frame.sample_rate = sample_rate
    if pts is not None:
        frame.pts = pts
    if time_base is not None:
        frame.time_base = _time_base_fraction(time_base)
    return frame
