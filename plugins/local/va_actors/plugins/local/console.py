"""Console: the live transcript of both sides and each turn's latency breakdown.

Feed it the conversation's topics; it recognises each by what it carries::

    [[actor]]
    name = "console"
    plugin = "va_actors.plugins.local.console:Console"
    inputs = ["turn.turn", "stt.transcript", "llm.text", "tts.audio", "speaker.playback"]

or, for a speech-to-speech actor, ``["agent.turn", "agent.transcript", "agent.audio",
"speaker.playback"]`` (both sides' transcripts come on ``agent.transcript``).

It prints ``user:`` / ``agent:`` lines and, when the agent's reply starts
playing, a ``voice-to-voice`` line split into contiguous segments; the same
figures are published as :class:`TurnLatencyEvent` on ``<name>.metrics`` (see
them with ``va-launch tap console.metrics``). At shutdown it prints the median
and p90 over all turns.
"""

from __future__ import annotations

import sys
from typing import Any, TextIO

from va_actors.core.audio.pcm import PcmData
from va_actors.core.edge.events import AudioPlaybackEvent
from va_actors.core.events.foreign import ForeignEvent
from va_actors.core.latency import (
    TurnLatencyEvent,
    TurnLatencyTracker,
    format_latency,
    median_p90,
)
from va_actors.core.node import Inbound, Node, NodeContext
from va_actors.core.stt.events import STTTranscriptEvent
from va_actors.core.turn_detection.events import TurnEndedEvent


class Console(Node):
    """Prints the conversation and its per-turn latency (params: none)."""

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self._tracker = TurnLatencyTracker()
        self._totals: list[float] = []
        self._ctx: NodeContext | None = None
        self._out: TextIO = sys.stdout

    async def start(self, ctx: NodeContext) -> None:
        self._ctx = ctx

    async def on_message(self, msg: Inbound) -> None:
        value = msg.value
        if isinstance(value, TurnEndedEvent):
            scoring = value.custom.get("scoring_ms")
            self._tracker.turn_ended(msg.ts_ns, value.trailing_silence_ms,
                                     scoring if isinstance(scoring, int | float) else None)
        elif isinstance(value, STTTranscriptEvent):
            self._tracker.final_transcript(msg.ts_ns, value.text)
            self._say(f"user:  {value.text}")
        elif isinstance(value, str):
            self._on_text(msg, value)
        elif isinstance(value, PcmData):
            self._tracker.audio(msg.ts_ns, msg.fields.get("response_id"))
        elif isinstance(value, AudioPlaybackEvent):
            self._on_playback(msg, value)
        elif isinstance(value, ForeignEvent) and isinstance(value.data.get("text"), str):
            # A processor's reading (OCR, captions) from a plugin not imported here.
            text = " | ".join(value.data["text"].splitlines()) or "(nothing read)"
            self._say(f"[{msg.source}] {text}")

    def _on_text(self, msg: Inbound, text: str) -> None:
        # Agent text on a transcript stream is a speech-to-speech model's own
        # transcript of what it says (a Realtime actor), not an LLM's reply.
        speech_model = msg.topic.partition(".")[2] == "transcript"
        self._tracker.text(msg.ts_ns, msg.fields.get("response_id"), speech_model=speech_model)
        if msg.fields.get("final"):
            cut = ""
            if msg.fields.get("interrupted"):
                cut = " (cut off: what the user heard)" if speech_model else " (superseded)"
            self._say(f"agent: {text}{cut}")

    def _on_playback(self, msg: Inbound, event: AudioPlaybackEvent) -> None:
        if event.interrupted:
            self._say(f"       [barge-in: the user heard {event.heard_text!r}]")
            return
        if not event.playing:
            return
        latency = self._tracker.playing(msg.ts_ns, event.response_id)
        if latency is None:
            return
        self._totals.append(latency.total_ms)
        self._say(f"       {format_latency(latency)}")
        if self._ctx is not None:
            self._ctx.publish("metrics", latency)

    def _say(self, line: str) -> None:
        print(line, file=self._out, flush=True)

    def summary(self) -> str | None:
        """Median and p90 voice-to-voice latency over the turns seen, if any."""
        if not self._totals:
            return None
        median, p90 = median_p90(self._totals)
        return (f"voice-to-voice over {len(self._totals)} turn(s): median "
                f"{median:.0f} ms, p90 {p90:.0f} ms")

    async def close(self) -> None:
        line = self.summary()
        if line is not None:
            self._say(line)


__all__ = ["Console", "TurnLatencyEvent"]
