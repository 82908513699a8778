"""Conversant: a scripted user who waits for each answer before the next question.

Like ``local.script`` (continuous microphone audio, silence between
utterances), but each utterance after the first starts once the agent's
answer to the previous one has played: its final text chunk came (input
``llm.text``) and then the speaker stopped playing (input
``speaker.playback``) and stayed quiet for ``QUIET_S``, then ``gap_s`` of
silence; or ``reply_timeout_s`` after the question ended if no answer came.
(The speaker pauses between the sentences of an answer too, so playback
alone cannot tell.) Restarts of other actors then delay the conversation
instead of making the user talk over the agent.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from va_actors.core.edge.events import AudioPlaybackEvent
from va_actors.core.node import Inbound, Node, NodeContext
from va_actors.plugins.local._common import participant_for, publish_finished
from va_actors.plugins.local.audio_sources import AudioTimeline, _play_file

RATE = 16000
QUIET_S = 1.5
"""Speaker silence after the final text that counts as the answer having played
(Piper may take a second for the next sentence: the speaker pauses in between)."""


class Conversant(Node):
    """Params: ``utterances`` (WAV paths), ``gap_s``, ``reply_timeout_s``, ``tail_s``,
    ``log`` (a JSONL file: when each question started and ended, and ``done`` once the
    last answer has played)."""

    outputs = ("audio",)

    def __init__(self, utterances: list[str], gap_s: float = 0.8,
                 reply_timeout_s: float = 20.0, tail_s: float = 3.0,
                 log: str | None = None) -> None:
        super().__init__(utterances=utterances, gap_s=gap_s, reply_timeout_s=reply_timeout_s,
                         tail_s=tail_s, log=log)
        self.utterances = [Path(p) for p in utterances]
        self.gap_s = gap_s
        self.reply_timeout_s = reply_timeout_s
        self.tail_s = tail_s
        self.log = Path(log) if log else None
        self._playing = False
        self._quiet_since = time.monotonic()
        self._final_at: float | None = None
        """When the current answer's final text came (None: not yet)."""

    async def on_message(self, msg: Inbound) -> None:
        event = msg.value
        if isinstance(event, AudioPlaybackEvent):
            if self._playing and not event.playing:
                self._quiet_since = time.monotonic()
            self._playing = event.playing
        elif isinstance(event, str) and msg.fields.get("final"):
            self._final_at = time.monotonic()

    def _answered(self) -> bool:
        """The final text came and the speaker has been quiet since, for QUIET_S."""
        final, now = self._final_at, time.monotonic()
        return (final is not None and not self._playing
                and now - max(final, self._quiet_since) >= QUIET_S)

    async def run(self, ctx: NodeContext) -> None:
        await ctx.wait_started()
        timeline = AudioTimeline(ctx, participant_for("user"), True, RATE, 1)
        for i, path in enumerate(self.utterances):
            if i:
                await self._wait_for_answer(timeline)
            self._note(i, "start", timeline)
            await _play_file(ctx, timeline, path, RATE, 1, f"utterance {i}")
            self._note(i, "end", timeline)
            self._final_at = None
        await self._wait_for_answer(timeline)
        self._note(len(self.utterances), "done", timeline)
        await timeline.silence_until(timeline.position + timeline.samples_for(self.tail_s))
        publish_finished(ctx, timeline.sent_ms)

    async def _wait_for_answer(self, timeline: AudioTimeline) -> None:
        """Silence until the answer has played (or the timeout), then ``gap_s`` more."""
        deadline = time.monotonic() + self.reply_timeout_s
        step = timeline.samples_for(0.02)
        while not self._answered() and time.monotonic() < deadline:
            await timeline.silence_until(timeline.position + step)
        self._final_at = None
        await timeline.silence_until(timeline.position + timeline.samples_for(self.gap_s))

    def _note(self, index: int, what: str, timeline: AudioTimeline) -> None:
        if self.log is None:
            return
        with self.log.open("a") as out:
            out.write(json.dumps({"utterance": index, what: time.time(),
                                  "stream_ms": timeline.sent_ms}) + "\n")

    async def close(self) -> None:
        return None
