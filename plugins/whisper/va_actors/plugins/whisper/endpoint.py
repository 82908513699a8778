"""End-of-utterance rule: frame energy against an adaptive noise floor.

In a pipeline the STT actor receives audio only; whether a turn detector runs
elsewhere it cannot tell. So it decides by itself when an utterance starts and
ends, cheaply enough to run on the event loop for every 20 ms frame.
"""

from __future__ import annotations

import enum
import math
from collections import deque

import numpy as np
import numpy.typing as npt

_FLOOR_START = 1e-3
"""Assumed floor (-60 dBFS) until the window has seen real audio, so a stream
that starts with speech is heard at once."""
_FLOOR_MIN = 1e-4
"""Digital silence must not drive the floor (and so the threshold) to zero."""
_BLOCK_FRAMES = 25
"""Frames per block of the minimum tracker (0.5 s at 20 ms)."""
_WINDOW_BLOCKS = 6
"""Blocks the floor is the minimum over (3 s): longer than any gap-free
stretch of speech, shorter than the time a new steady hum should take to be
accepted as background."""
_HANGOVER_RATIO = 0.5
"""Once speaking, frames down to half the onset threshold (-6 dB) still count as voiced,
so soft word endings do not start the silence count."""


class Endpoint(enum.Enum):
    """What a frame changed."""

    NONE = "none"
    START = "start"
    END = "end"


def db_to_amplitude(db: float) -> float:
    """dBFS to linear RMS amplitude (full scale = 1.0)."""
    return float(10.0 ** (db / 20.0))


def frame_rms(frames: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
    """RMS of each row of a (n_frames, frame_len) array."""
    rms: npt.NDArray[np.float64] = np.sqrt(np.mean(np.square(frames, dtype=np.float64), axis=1))
    return rms


class EnergyEndpointer:
    """Speech start/end from per-frame RMS.

    A frame is voiced when its RMS exceeds both an absolute threshold and the
    noise floor times ``floor_margin_db``. Speech starts after ``onset_ms`` of
    consecutive voiced frames and ends after ``silence_ms`` of unvoiced ones.

    The noise floor is the minimum frame RMS of the last 3 s (minimum
    statistics): speech always has quieter frames between words, so the floor
    stays at the background; a steady hum becomes the floor within 3 s, and
    then stops counting as speech.
    """

    def __init__(self, *, frame_ms: float = 20.0, silence_ms: float = 600.0,
                 onset_ms: float = 60.0, threshold_db: float = -40.0,
                 floor_margin_db: float = 12.0) -> None:
        if frame_ms <= 0 or silence_ms <= 0 or onset_ms < 0:
            raise ValueError("frame_ms and silence_ms must be > 0, onset_ms >= 0")
        self._onset_frames = max(1, math.ceil(onset_ms / frame_ms))
        self._silence_frames = max(1, math.ceil(silence_ms / frame_ms))
        self._threshold = db_to_amplitude(threshold_db)
        self._margin = db_to_amplitude(floor_margin_db)
        self.frame_ms = frame_ms
        self.reset()

    def reset(self) -> None:
        """Forget the noise floor and any speech in progress."""
        self._blocks: deque[float] = deque([_FLOOR_START], maxlen=_WINDOW_BLOCKS)
        self._block_min = math.inf
        self._block_len = 0
        self.speaking = False
        self.voiced_frames = 0
        """Voiced frames of the current (or, after END, the last) utterance."""
        self.loud_frames = 0
        """Of those, frames above the onset threshold: more of them means new
        words (the quieter voiced frames may be a word's decay)."""
        self._run = 0
        self._silent = 0
        self._quiet = 0

    def end_utterance(self) -> None:
        """The utterance is over (END, or the caller flushed): wait for a new onset."""
        self.speaking = False
        self._run = 0
        self._silent = 0
        self._quiet = 0

    @property
    def silent_frames(self) -> int:
        """Unvoiced frames in a row so far in the current utterance."""
        return self._silent

    @property
    def quiet_frames(self) -> int:
        """Frames in a row below the onset threshold in the current utterance.

        A pause starts here sooner than :attr:`silent_frames` does: a word's
        soft ending and the room's reverberation (down to half the threshold)
        still count as voiced for the end of the utterance, but no new word
        is that quiet. A transcript started at a pause starts from this.
        """
        return self._quiet

    @property
    def noise_floor(self) -> float:
        """Current background level (RMS)."""
        return max(_FLOOR_MIN, min(self._block_min, *self._blocks))

    @property
    def threshold(self) -> float:
        """RMS a frame must exceed to start speech, given the current floor."""
        return max(self._threshold, self.noise_floor * self._margin)

    def update(self, rms: float) -> Endpoint:
        """Account for one frame; return START, END or NONE."""
        self._track_floor(rms)
        if self.speaking:
            return self._while_speaking(rms)
        return self._while_idle(rms)

    def _while_idle(self, rms: float) -> Endpoint:
        voiced = rms > self.threshold
        self._run = self._run + 1 if voiced else 0
        if self._run < self._onset_frames:
            return Endpoint.NONE
        self.speaking = True
        self.voiced_frames = self.loud_frames = self._run
        self._silent = 0
        return Endpoint.START

    def _while_speaking(self, rms: float) -> Endpoint:
        if rms > self.threshold:
            self._quiet = 0
            self.loud_frames += 1
        else:
            self._quiet += 1
        if rms > self.threshold * _HANGOVER_RATIO:
            self.voiced_frames += 1
            self._silent = 0
            return Endpoint.NONE
        self._silent += 1
        if self._silent < self._silence_frames:
            return Endpoint.NONE
        self.end_utterance()
        return Endpoint.END

    def _track_floor(self, rms: float) -> None:
        # Block minima keep this O(1) per frame; the window slides by blocks.
        self._block_min = min(self._block_min, rms)
        self._block_len += 1
        if self._block_len == _BLOCK_FRAMES:
            self._blocks.append(self._block_min)
            self._block_min = math.inf
            self._block_len = 0
