"""One utterance's audio, and the part of it already transcribed (incremental transcription).

While the user speaks, every pause of ``speculate_ms`` starts a transcription of
the audio not yet covered. When the user speaks on after a pause of at least
``COMMIT_PAUSE_MS`` and that transcription covers at least ``COMMIT_MIN_S``
of audio, it is *committed*: its text becomes a piece of the utterance's
transcript and the next transcription starts where it ended, with the pieces
so far as Whisper's previous-text prompt. At the end of the utterance only
the audio after the last piece is transcribed, so the final costs the same
for a 10 s utterance as for a 2 s one. A pause is a clean place to cut: no
word spans it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

Audio = npt.NDArray[np.float32]

COMMIT_PAUSE_MS = 160
"""A pause this long (or longer) between words may end a piece: shorter
silences can be a stop consonant's closure inside a word."""
COMMIT_MIN_S = 1.5
"""A piece covers at least this much audio: Whisper hears a shorter stretch
with too little context ("And so," alone)."""


@dataclass
class Utterance:
    """The audio of one utterance (16 kHz mono float32 frames) and its committed pieces.

    ``covered`` samples (from the start) are transcribed by ``pieces``, or by
    a transcription that will commit its text there when it finishes (the
    inference thread runs jobs in order, so a job started after it finds the
    piece in place). ``broken`` says such a transcription failed: the pieces
    no longer add up to the covered audio, and the final transcribes the
    whole utterance.
    """

    frames: list[Audio] = field(default_factory=list)
    samples: int = 0
    pieces: list[str] = field(default_factory=list)
    covered: int = 0
    covered_voiced: int = 0
    """The end-pointer's voiced-frame count at ``covered``: more now means new speech."""
    broken: bool = False

    def append(self, frame: Audio) -> None:
        """Add one frame of audio."""
        self.frames.append(frame)
        self.samples += frame.size

    def audio(self, start: int = 0) -> Audio:
        """The utterance's samples from ``start`` on."""
        if not self.frames:
            return np.zeros(0, np.float32)
        return np.concatenate(self.frames)[start:]

    def text(self, last: str = "") -> str:
        """The committed pieces, then ``last``, as one transcript."""
        return " ".join(p for p in (*self.pieces, last.strip()) if p)

    def truncate(self, samples: int) -> None:
        """Keep only the first ``samples`` (what came after is not part of it)."""
        if samples < self.samples:
            self.frames = [self.audio()[:samples]]
            self.samples = samples

    def cover(self, end: int, voiced: int) -> None:
        """A transcription up to ``end`` will commit its text as the next piece."""
        self.covered = end
        self.covered_voiced = voiced
