"""Per-turn voice latency: from the end of the user's speech to agent audio out.

The breakdown is a chain of contiguous segments that add up to the total, so a
slow turn shows *where* the time went:

    end of speech -> turn detected -> final transcript -> first LLM token
                  -> first TTS audio -> audio out

For a speech-to-speech (Realtime) model the same chain reads: end of speech
-> the provider's VAD ends the turn -> (no transcript on the path: 0) -> first
text of its answer -> first audio of it -> audio out.

Every timestamp is a wire header ``ts`` (ns, one clock for every process on
the machine). :class:`TurnLatencyTracker` is fed the messages an observer
actor sees and returns a :class:`TurnLatencyEvent` once a turn's agent audio
starts playing.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field

from va_actors.core.events.base import PluginBaseEvent

SEGMENTS = ("turn_detected", "final_transcript", "first_token", "first_audio", "audio_out")
"""Segment names, in order; each is the time from the previous mark to this one."""


@dataclass(kw_only=True)
class TurnLatencyEvent(PluginBaseEvent):
    """Voice-to-voice latency of one turn, split into contiguous segments (ms).

    ``segments_ms`` maps each name in :data:`SEGMENTS` to its duration; they
    add up to ``total_ms``. A segment can be negative when two stages race
    (the STT finishing before the turn detector); the total is unaffected.
    """

    type: str = field(default="metrics.turn_latency", init=False)
    user_text: str = ""
    response_id: str | None = None
    total_ms: float = 0.0
    segments_ms: dict[str, float] = field(default_factory=dict)


@dataclass
class _Turn:
    speech_end_ns: int | None = None
    detected_ns: int | None = None
    transcript_ns: int | None = None
    user_text: str = ""
    response_id: str | None = None
    first_token_ns: int | None = None
    first_audio_ns: int | None = None
    speech_model: bool = False


@dataclass
class TurnLatencyTracker:
    """Assembles turns from observed messages (see the module docstring)."""

    _turn: _Turn = field(default_factory=_Turn)
    _by_response: dict[str, _Turn] = field(default_factory=dict)

    def turn_ended(self, ts_ns: int, trailing_silence_ms: float | None,
                   scoring_ms: float | None = None) -> None:
        """The turn detector said the user's turn ended (header time ``ts_ns``).

        The user stopped speaking ``trailing_silence_ms`` of audio before the
        detector decided, and it published ``scoring_ms`` after deciding (an
        end-of-turn model's inference): both lie between end of speech and
        ``ts_ns``.
        """
        silence_ns = int(((trailing_silence_ms or 0.0) + (scoring_ms or 0.0)) * 1e6)
        early = self._turn
        self._turn = _Turn(speech_end_ns=ts_ns - silence_ns, detected_ns=ts_ns)
        if (early.response_id is None and early.transcript_ns is not None
                and early.transcript_ns >= ts_ns):
            # The STT published this turn's final after the decision, but it came
            # first: another publisher's socket, fair-queued (a reused speculation
            # is out ~1 ms after the turn end).
            self._turn.transcript_ns, self._turn.user_text = early.transcript_ns, early.user_text

    def final_transcript(self, ts_ns: int, text: str) -> None:
        """The STT's final transcript of the turn arrived."""
        turn = self._turn
        if turn.transcript_ns is None:
            turn.transcript_ns = ts_ns
            if turn.speech_end_ns is None:  # no turn detector: the STT ends turns
                turn.speech_end_ns = turn.detected_ns = ts_ns
        turn.user_text = f"{turn.user_text} {text}".strip()

    def text(self, ts_ns: int, response_id: str | None, *, speech_model: bool = False) -> None:
        """A chunk of agent text; the first one of a reply is its first token.

        ``speech_model``: the text is a speech-to-speech model's transcript of
        its own answer. Such a model answers from the audio, so its reply
        belongs to the turn as soon as the turn ended (the user's transcript is
        a side product that may come later) and the transcript segment is 0.
        """
        if response_id is None or response_id in self._by_response:
            return
        turn = self._turn
        ready = turn.speech_end_ns is not None if speech_model else turn.transcript_ns is not None
        if not ready or turn.response_id is not None:
            return
        turn.response_id = response_id
        turn.first_token_ns = ts_ns
        turn.speech_model = speech_model
        self._by_response[response_id] = turn

    def audio(self, ts_ns: int, response_id: str | None) -> None:
        """A chunk of agent audio from the TTS."""
        turn = self._by_response.get(response_id or "")
        if turn is not None and turn.first_audio_ns is None:
            turn.first_audio_ns = ts_ns

    def playing(self, ts_ns: int, response_id: str | None) -> TurnLatencyEvent | None:
        """The output started playing a reply: the turn is complete."""
        turn = self._by_response.pop(response_id or "", None)
        if turn is None or None in (turn.speech_end_ns, turn.first_audio_ns):
            return None
        transcript = turn.detected_ns if turn.speech_model else turn.transcript_ns
        marks = [turn.speech_end_ns, turn.detected_ns, transcript, turn.first_token_ns,
                 turn.first_audio_ns, ts_ns]
        known = [m for m in marks if m is not None]
        if len(known) != len(marks):
            return None
        segments = {name: (b - a) / 1e6 for name, a, b in zip(SEGMENTS, known, known[1:],
                                                              strict=False)}
        return TurnLatencyEvent(user_text=turn.user_text, response_id=response_id,
                                total_ms=(ts_ns - known[0]) / 1e6, segments_ms=segments)


def median_p90(totals_ms: Sequence[float]) -> tuple[float, float]:
    """Median and p90 (nearest rank) of per-turn totals; ValueError if there are none."""
    if not totals_ms:
        raise ValueError("no turns")
    ordered = sorted(totals_ms)
    return (statistics.median(ordered),
            ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))])


def format_latency(event: TurnLatencyEvent) -> str:
    """One readable line: ``612 ms = turn 600 + transcript 5 + token 3 + ...``."""
    labels = {"turn_detected": "turn", "final_transcript": "transcript",
              "first_token": "first token", "first_audio": "first audio",
              "audio_out": "audio out"}
    parts = " + ".join(f"{labels[name]} {event.segments_ms.get(name, 0.0):.0f}"
                       for name in SEGMENTS)
    return f"voice-to-voice {event.total_ms:.0f} ms = {parts}"
