"""The turn state machine: per-frame speech probabilities in, turn changes out.

Pure and clock-free: time is counted in VAD frames of audio, so the same
audio always gives the same turns, however fast it is fed.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TurnStart:
    """Speech has lasted ``min_speech_ms``: a turn began.

    Times are milliseconds of the participant's audio stream.
    """

    confidence: float
    start_ms: float
    detected_ms: float


@dataclass(frozen=True)
class TurnPause:
    """``score_ms`` of silence followed the last speech frame inside a turn.

    The moment to ask an end-of-turn model whether the speaker is done: if
    so, :meth:`TurnTracker.end_at_pause` ends the turn once the silence
    reaches ``pause_ms``; if not, it ends after ``silence_ms`` as usual (or
    not at all, if speech resumes).
    """

    speech_end_ms: float
    detected_ms: float


@dataclass(frozen=True)
class TurnEnd:
    """``silence_ms`` of silence followed the last speech frame: the turn ended."""

    confidence: float
    start_ms: float
    speech_end_ms: float
    detected_ms: float

    @property
    def duration_ms(self) -> float:
        """From the turn's start to the end of its last speech frame."""
        return self.speech_end_ms - self.start_ms

    @property
    def trailing_silence_ms(self) -> float:
        """Silence between the last speech frame and the detection."""
        return self.detected_ms - self.speech_end_ms


class TurnTracker:
    """Turns a stream of speech probabilities (one per frame) into turn changes.

    A frame is speech when its probability is at least ``threshold``. A turn
    starts once consecutive speech frames cover ``min_speech_ms`` (a click or
    a cough shorter than that never starts one) and ends once ``silence_ms``
    of non-speech follows the last speech frame. No hysteresis is needed on
    the end: a short dip inside a word is far shorter than ``silence_ms``.

    With ``pause_ms`` set (shorter than ``silence_ms``), a :class:`TurnPause`
    is reported once per pause when the silence reaches ``score_ms``
    (default ``pause_ms``; scoring ahead of ``pause_ms`` hides the model's
    inference behind the rest of the pause).
    """

    def __init__(self, *, frame_ms: float, threshold: float, min_speech_ms: float,
                 silence_ms: float, pre_speech_ms: float,
                 pause_ms: float | None = None, score_ms: float | None = None) -> None:
        self._frame_ms = frame_ms
        self._threshold = threshold
        self._min_speech_ms = min_speech_ms
        self._silence_ms = silence_ms
        self._pre_speech_ms = pre_speech_ms
        self._pause_ms = pause_ms
        self._score_ms = score_ms if score_ms is not None else pause_ms
        self._pause_reported = False
        self._end_at_pause = False
        self._frames = 0
        self._speaking = False
        self._last_end_ms = 0.0  # a turn never reaches back into the previous one
        self._onset_ms = 0.0
        self._turn_start_ms = 0.0
        self._speech_end_ms = 0.0
        self._prob_sum = 0.0
        self._prob_count = 0

    @property
    def speaking(self) -> bool:
        """True between a turn's start and its end."""
        return self._speaking

    @property
    def audio_ms(self) -> float:
        """Audio consumed so far, in milliseconds."""
        return self._frames * self._frame_ms

    @property
    def silence_ms(self) -> float:
        """Silence that ends a turn without an end-of-turn model."""
        return self._silence_ms

    @property
    def turn_start_ms(self) -> float:
        """Start of the current (or last) turn, in audio time."""
        return self._turn_start_ms

    def update(self, probability: float) -> TurnStart | TurnPause | TurnEnd | None:
        """Account for the next frame; return the turn change it causes, if any."""
        start_ms = self.audio_ms
        self._frames += 1
        end_ms = self.audio_ms
        if probability >= self._threshold:
            return self._on_speech(probability, start_ms, end_ms)
        return self._on_silence(end_ms)

    def _on_speech(self, probability: float, start_ms: float,
                   end_ms: float) -> TurnStart | None:
        if self._prob_count == 0:
            self._onset_ms = start_ms
        self._prob_sum += probability
        self._prob_count += 1
        self._speech_end_ms = end_ms
        self._pause_reported = self._end_at_pause = False
        if self._speaking or end_ms - self._onset_ms < self._min_speech_ms:
            return None
        self._speaking = True
        self._turn_start_ms = max(self._onset_ms - self._pre_speech_ms, self._last_end_ms)
        return TurnStart(self._mean(), self._turn_start_ms, end_ms)

    def _on_silence(self, end_ms: float) -> TurnPause | TurnEnd | None:
        if not self._speaking:
            # Speech shorter than min_speech_ms must be consecutive to count.
            self._reset_speech()
            return None
        silence = end_ms - self._speech_end_ms
        if silence >= self._silence_ms or (self._end_at_pause and self._pause_reached()):
            return self.end_turn()
        if (self._score_ms is not None and silence >= self._score_ms
                and not self._pause_reported):
            self._pause_reported = True
            return TurnPause(self._speech_end_ms, end_ms)
        return None

    def _pause_reached(self) -> bool:
        return self._pause_ms is not None and self.audio_ms - self._speech_end_ms >= self._pause_ms

    def end_at_pause(self) -> TurnEnd | None:
        """End the turn at ``pause_ms`` of silence: now if reached, else at that frame.

        For an end-of-turn model that said the speaker is done. Speech before
        then cancels it.
        """
        if self._pause_reached():
            return self.end_turn()
        self._end_at_pause = True
        return None

    def end_turn(self) -> TurnEnd:
        """End the current turn now (an end-of-turn model said the speaker is done).

        Raises:
            RuntimeError: no turn is open.
        """
        if not self._speaking:
            raise RuntimeError("end_turn() outside a turn")
        ended = TurnEnd(self._mean(), self._turn_start_ms, self._speech_end_ms, self.audio_ms)
        self._speaking = self._end_at_pause = False
        self._last_end_ms = self._speech_end_ms
        self._reset_speech()
        return ended

    def _mean(self) -> float:
        return self._prob_sum / self._prob_count

    def _reset_speech(self) -> None:
        self._prob_sum = 0.0
        self._prob_count = 0
