"""Audio primitives: PCM container, streaming resampler and framer.

Plugin authors import ``PcmData`` from here in place of getstream's
``getstream.video.rtc.track_util.PcmData``.
"""

from va_actors.core.audio.framing import AudioFramer
from va_actors.core.audio.pcm import (
    AudioFormat,
    AudioFormatType,
    G711Encoding,
    G711Mapping,
    PcmData,
)
from va_actors.core.audio.resampler import Resampler

__all__ = [
    "AudioFormat",
    "AudioFormatType",
    "AudioFramer",
    "G711Encoding",
    "G711Mapping",
    "PcmData",
    "Resampler",
]
