"""Whisper on a shortened encoder window: the fast path for short utterances.

Whisper's encoder always sees a 30 s window, padded with silence, whatever the
length of the speech in it. Attention makes that cost grow faster than the
window: on one core tiny.en spends about 300 ms encoding 30 s, and about 40 ms
encoding 10 s. A voice turn is a few seconds long, so almost all of that time
goes into encoding silence.

CTranslate2 accepts a shorter mel input. From a 10 s window up, tiny.en gave
the same transcripts as with the full window on our test sentences. Below
about 8 s it lost track of where the speech ends and repeated itself until it
ran out of tokens (as whisper.cpp's ``audio_ctx`` is known to do). So the
window is at least ``MIN_WINDOW_S``, always leaves ``MARGIN_S`` of silence after
the speech, and the decoded text is only used when it looks sound. Otherwise
:meth:`ShortWindow.transcribe` returns ``None``, and the caller runs Whisper's
usual 30 s path, with its temperature fallback.
"""

from __future__ import annotations

import math
import re
import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

MIN_WINDOW_S = 10.0
"""The shortest window that gave full-window transcripts (8 s did not)."""
FULL_WINDOW_S = 30.0
"""Whisper's own window: the encoder's positions end here."""
MARGIN_S = 2.0
"""Silence kept after the speech, so the decoder sees where it ends."""
FRAMES_PER_S = 100
"""Mel frames per second (10 ms hop)."""
SAMPLE_RATE = 16_000
MAX_TOKENS_PER_S = 12.0
"""Decoding stops here; fast speech makes about 6 tokens a second, a
repetition loop runs to the limit and is then rejected."""
MIN_TOKENS = 16
COMPRESSION_RATIO_LIMIT = 2.4
"""faster-whisper's threshold for text that repeats itself."""
LOGPROB_LIMIT = -1.0
"""faster-whisper's threshold for a doubtful decode."""
MAX_PROMPT_TOKENS = 96
"""Tokens of earlier text given to the decoder as context (Whisper's ``<|startofprev|>``):
the end of what was already transcribed of the utterance."""
REPEATS = 2
"""The same words this many times in a row: a loop too short for the ratio
(a real "bye bye" only costs the full path)."""

Audio = npt.NDArray[np.float32]


@dataclass(frozen=True)
class Decoded:
    """A transcript from the short window."""

    text: str
    avg_logprob: float
    window_s: float


class ShortWindow:
    """Greedy or beam decoding of one utterance on a window of ``window_s``.

    Args:
        model: a loaded ``faster_whisper.WhisperModel``.
        window_s: the encoder window, at least ``MIN_WINDOW_S``; longer
            utterances get their length plus ``MARGIN_S``, up to 30 s.
        language: the spoken language; ``None`` on a multilingual model
            leaves every utterance to the full path (which detects it).
        beam_size: decoding beam, as in the full path.

    Raises:
        ValueError: ``window_s`` is outside ``MIN_WINDOW_S`` .. 30.
    """

    def __init__(self, model: Any, window_s: float, *, language: str | None,
                 beam_size: int) -> None:
        check_window_s(window_s)
        from faster_whisper.tokenizer import Tokenizer
        from faster_whisper.transcribe import get_suppressed_tokens

        self._model = model
        self._min_frames = round(window_s * FRAMES_PER_S)
        self._beam_size = beam_size
        multilingual = bool(model.model.is_multilingual)
        self._usable = language is not None or not multilingual
        self._tokenizer = Tokenizer(model.hf_tokenizer, multilingual, task="transcribe",
                                    language=language or "en")
        self._prompt = [*self._tokenizer.sot_sequence, self._tokenizer.no_timestamps]
        self._suppress = list(get_suppressed_tokens(self._tokenizer, [-1]))

    def transcribe(self, audio: Audio, prompt: str | None = None) -> Decoded | None:
        """Transcribe 16 kHz mono ``audio``, or ``None``: use the full window.

        ``prompt``: text said just before ``audio`` (the utterance's part
        already transcribed), given to the decoder as previous text, as
        Whisper does between its 30 s windows.

        ``None`` when the utterance does not fit with its margin, or when the
        text repeats itself, fills the token budget or is doubtful (Whisper's
        own thresholds), so that the full path, which retries with sampling,
        decides.
        """
        if not self._usable:
            return None
        features = self._model.feature_extractor(audio)
        speech = features.shape[-1]
        window = max(self._min_frames, speech + round(MARGIN_S * FRAMES_PER_S))
        window = math.ceil(window / FRAMES_PER_S) * FRAMES_PER_S
        if window > FULL_WINDOW_S * FRAMES_PER_S:
            return None
        return self._decode(_padded(features, window), self._prompt_for(prompt), budget=max(
            MIN_TOKENS, math.ceil(audio.size / SAMPLE_RATE * MAX_TOKENS_PER_S)))

    def _prompt_for(self, previous: str | None) -> list[int]:
        """Whisper's prompt, with the end of ``previous`` as the previous text."""
        text = (previous or "").strip()
        if not text:
            return self._prompt
        tokens = self._tokenizer.encode(" " + text)[-MAX_PROMPT_TOKENS:]
        return [self._tokenizer.sot_prev, *tokens, *self._prompt]

    def _decode(self, features: npt.NDArray[np.float32], prompt: list[int], *,
                budget: int) -> Decoded | None:
        import ctranslate2

        model = self._model.model
        window_s = features.shape[-1] / FRAMES_PER_S
        encoded = model.encode(ctranslate2.StorageView.from_array(features[np.newaxis]))
        result = model.generate(
            encoded, [prompt], beam_size=self._beam_size,
            max_length=len(prompt) + budget, return_scores=True,
            suppress_blank=True,
            suppress_tokens=self._suppress)[0]
        tokens = [t for t in result.sequences_ids[0] if t < self._tokenizer.eot]
        # CTranslate2 scores are length-normalised; faster-whisper averages
        # over the tokens plus the end token, and so do we.
        avg_logprob = result.scores[0] * len(tokens) / (len(tokens) + 1)
        text = self._tokenizer.decode(tokens).strip()
        # Silence, a loop or a doubtful text: Whisper's full path decides.
        if (len(tokens) >= budget or avg_logprob < LOGPROB_LIMIT
                or _compression_ratio(text) > COMPRESSION_RATIO_LIMIT or _repeats(text)):
            return None
        return Decoded(text, avg_logprob, window_s)


def check_window_s(window_s: float) -> None:
    """Raise ValueError unless ``window_s`` is a usable window (10 .. 30 s)."""
    if isinstance(window_s, bool) or not isinstance(window_s, int | float) \
            or not MIN_WINDOW_S <= window_s <= FULL_WINDOW_S:
        raise ValueError(
            f"window_s must be between {MIN_WINDOW_S:g} and {FULL_WINDOW_S:g} s "
            f"(below {MIN_WINDOW_S:g} s Whisper repeats itself; "
            f"{FULL_WINDOW_S:g} s is Whisper's own window), got {window_s!r}")


def _padded(features: npt.NDArray[np.float32], frames: int) -> npt.NDArray[np.float32]:
    """``features`` (mel x time) padded with zeros (silence) to ``frames``."""
    missing = frames - features.shape[-1]
    return np.ascontiguousarray(np.pad(features, ((0, 0), (0, missing)))
                                if missing > 0 else features[:, :frames])


def _repeats(text: str) -> bool:
    """True if some run of words occurs ``REPEATS`` times in a row."""
    words = re.findall(r"[\w']+", text.lower())
    for size in range(1, len(words) // REPEATS + 1):
        for start in range(len(words) - size * REPEATS + 1):
            run = words[start:start + size]
            if all(words[start + k * size:start + (k + 1) * size] == run
                   for k in range(1, REPEATS)):
                return True
    return False


def _compression_ratio(text: str) -> float:
    data = text.encode("utf-8")
    return len(data) / len(zlib.compress(data)) if data else 0.0
