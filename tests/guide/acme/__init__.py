"""The guide's example plugin, "Acme", ported to va_actors.

The guide's package is ``plugins/acme/.../plugins/acme/``; this one is used the
same way: ``from acme import STT, TTS, LLM, VLM, Realtime``.
"""

from .events import AcmeUsageEvent
from .llm import LLM
from .processor import DetectionProcessor, FrameLogger
from .realtime import Realtime
from .stt import STT
from .tts import TTS
from .vlm import VLM

__all__ = [
    "LLM",
    "STT",
    "TTS",
    "VLM",
    "AcmeUsageEvent",
    "DetectionProcessor",
    "FrameLogger",
    "Realtime",
]
