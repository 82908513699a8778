"""Helpers shared by the Piper and espeak-ng plugins: stop tokens, PCM."""

from __future__ import annotations

import threading
from collections.abc import Iterable

import numpy as np
import numpy.typing as npt

from va_actors.core.audio import PcmData


class StopToken:
    """Tells one synthesis, running in a worker thread, that it should stop.

    Each synthesis gets its own token, so an interrupt stops only what was in
    flight when it happened and never a synthesis that starts after it. Setting
    and reading a ``threading.Event`` is safe across the loop and worker threads.
    """

    def __init__(self) -> None:
        self._event = threading.Event()

    def stop(self) -> None:
        """Ask the synthesis to stop at its next check."""
        self._event.set()

    @property
    def stopped(self) -> bool:
        """True once :meth:`stop` was called."""
        return self._event.is_set()


class StopTokens:
    """The stop tokens of the syntheses a TTS has in flight."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._live: set[StopToken] = set()

    def new(self) -> StopToken:
        """Register and return a token for a synthesis that is about to start."""
        token = StopToken()
        with self._lock:
            self._live.add(token)
        return token

    def release(self, token: StopToken) -> None:
        """Forget ``token`` once its synthesis has ended."""
        with self._lock:
            self._live.discard(token)

    def stop_all(self) -> int:
        """Stop every synthesis in flight; return how many there were."""
        with self._lock:
            live, self._live = self._live, set()
        for token in live:
            token.stop()
        return len(live)


def s16_chunk(samples: npt.NDArray[np.int16], sample_rate: int,
              silence_s: float = 0.0) -> PcmData:
    """Mono s16 PcmData of ``samples`` followed by ``silence_s`` seconds of silence."""
    pad = round(silence_s * sample_rate)
    if pad > 0:
        samples = np.concatenate([samples, np.zeros(pad, dtype=np.int16)])
    return PcmData(sample_rate, "s16", np.ascontiguousarray(samples, dtype=np.int16))


def check_non_negative(name: str, value: object) -> float:
    """Return ``value`` as a float >= 0 or raise ValueError naming the parameter."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
        raise ValueError(f"{name} must be a number >= 0, got {value!r}")
    return float(value)


def join_arrays(parts: Iterable[npt.NDArray[np.int16]]) -> npt.NDArray[np.int16]:
    """Concatenate int16 arrays (an empty int16 array when there are none)."""
    arrays = list(parts)
    if not arrays:
        return np.zeros(0, dtype=np.int16)
    return np.concatenate(arrays).astype(np.int16, copy=False)
