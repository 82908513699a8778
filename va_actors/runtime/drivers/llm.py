"""The LLM family: final transcripts -> replies as text chunks; a VLM also watches video."""


from __future__ import annotations

import contextlib
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from va_actors.core.edge.events import AudioPlaybackEvent
from va_actors.core.events.base import BaseEvent

# Imported for its registrations too: every actor can decode every core event type.
from va_actors.core.llm import events as llm_events
from va_actors.core.stt import STTPartialTranscriptEvent, STTTranscriptEvent
from va_actors.runtime.drivers.base import (
    Driver,
    HostPort,
)
from va_actors.runtime.video_feed import VideoFeed
from va_actors.wire.codec import Message
from va_actors.wire.messages import Kind, TextChunk

if TYPE_CHECKING:
    pass


# -- LLM family ------------------------------------------------------------------------------
def _is_final_transcript(event: BaseEvent) -> bool:
    return (isinstance(event, STTTranscriptEvent)
            and not isinstance(event, STTPartialTranscriptEvent)
            and event.mode == "final")


CUT_GRACE_S = 3.0
"""An epoch bump this soon after a reply was done may still cut it before it was
heard (its audio is still being synthesised): the supervisor's resume grace."""


HEARD_MS = 300.0
"""Audio of a reply played before it counts as heard. A user whose start of turn
comes sooner began speaking before the reply did (a turn detector reports a
start some 200 ms into the speech): they went on, they did not answer it."""


@dataclass
class _Turn:
    """The latest user turn and what became of its reply."""

    user_text: str
    response_id: str | None = None
    in_flight: bool = True
    finished_at: float = 0.0
    """Monotonic time its reply was done (while ``in_flight`` is False)."""
    cut: bool = False
    """An epoch bump (the user resuming, or a barge-in) came while its reply was in
    flight or within ``CUT_GRACE_S`` after: the reply may not have been heard."""
    heard: bool = False
    """A sink reported ``HEARD_MS`` of it played."""


class LLMDriver(Driver):
    """Final transcripts -> ``llm.respond()``; deltas -> ``TextChunk`` on ``text``.

    An ``LLMContextEvent`` (from an edge such as the realtime gateway) sets
    the instructions and may start a fresh conversation.

    Every chunk of a reply carries the transcript's epoch and one
    ``response_id``; the reply ends with ``TextChunk(final=True)`` holding the
    whole text (header field ``interrupted=True`` when a newer transcript
    superseded it) and ``user_text``, the user turn it answers; the chunks of a
    reply that continues the last turn (below) carry ``continues=True``. One reply at
    a time: ``respond()`` itself ends the reply in flight when a new one
    starts. On barge-in, ``llm.interrupt(epoch)``.

    When this LLM hears playback reports (an input ``<sink>.playback``), a
    transcript that comes while the last reply is unheard and was cut (by an
    epoch bump: the user resumed before the agent spoke) or is still being
    generated continues that user turn: ``respond(continues=True)`` keeps
    one user message with both parts and one reply.
    """

    outputs = ("text", "events")

    error_event = llm_events.LLMErrorEvent

    def __init__(self, host: HostPort, plugin: Any) -> None:
        super().__init__(host, plugin)
        self._turn: _Turn | None = None

    async def start(self) -> None:
        # Deltas already go out as text; the rest (final, tools, errors) as events.
        self.forward_events(
            lambda e: None if isinstance(e, llm_events.LLMResponseDeltaEvent) else "events")
        await self._start_plugin()
        if self.host.epoch > self.plugin.epoch:  # a restarted actor joins the session's epoch
            await self.plugin.interrupt(self.host.epoch)

    async def on_input(self, msg: Message) -> None:
        if msg.kind is not Kind.EVENT:
            return
        event = msg.event()
        if isinstance(event, AudioPlaybackEvent):
            self._on_playback(event)
            return
        if isinstance(event, llm_events.LLMContextEvent):
            self._on_context(event)
            return
        if not _is_final_transcript(event):
            return
        assert isinstance(event, STTTranscriptEvent)
        text = event.text.strip()
        if text:
            last, continues = self._turn, self._continues()
            user_text = f"{last.user_text} {text}" if continues and last else text
            turn = self._turn = _Turn(user_text)
            self.host.spawn(self._respond(text, event.participant, msg.epoch, turn, continues),
                            "respond")

    def _continues(self) -> bool:
        """The next transcript goes on from the last turn: its reply is cut and unheard."""
        turn = self._turn
        return (turn is not None and not turn.heard and (turn.in_flight or turn.cut)
                and _reads_playback(self.host))

    def _on_context(self, event: llm_events.LLMContextEvent) -> None:
        """An edge's session began or changed: a fresh conversation, new instructions."""
        if event.new_conversation:
            self.plugin.conversation.clear()
            self._turn = None  # nothing to continue in a fresh conversation
        if event.instructions is not None:
            # From a remote client: never expanded (no @file.md reads on its behalf).
            self.plugin.set_instructions(event.instructions, expand_references=False)

    def _on_playback(self, event: AudioPlaybackEvent) -> None:
        """Keep only what the user heard of a reply cut off by barge-in."""
        turn = self._turn
        if (turn is not None and event.response_id == turn.response_id
                and event.played_ms >= HEARD_MS):
            turn.heard = True
        if event.interrupted and event.response_id:
            self.plugin.conversation.truncate_message(event.response_id, event.heard_text)

    async def _respond(self, text: str, participant: Any, epoch: int, turn: _Turn,
                       continues: bool) -> None:
        host = self.host
        response_id: str | None = None
        index = 0
        final: Any = None
        # A continuation says so on every chunk: its reply replaces the unheard one.
        marks: dict[str, Any] = {"continues": True} if continues else {}
        replies = (self.plugin.respond(text, participant, continues=True) if continues
                   else self.plugin.respond(text, participant))
        async with contextlib.aclosing(replies) as replies:
            async for item in replies:
                # The conversation message id doubles as the reply id, so the
                # output's playback reports can truncate history to what was heard.
                response_id = response_id or getattr(item, "item_id", None) or uuid.uuid4().hex
                turn.response_id = response_id
                delta = getattr(item, "delta", None)
                if not isinstance(delta, str):
                    final = item
                elif delta:
                    host.publish("text", TextChunk(delta, False, response_id, index),
                                 epoch=epoch, **marks)
                    index += 1
        turn.in_flight, turn.finished_at = False, time.monotonic()
        whole = str(getattr(final, "text", "") or "")
        chunk = TextChunk(whole, True, response_id or uuid.uuid4().hex, index)
        if getattr(final, "interrupted", False):
            host.publish("text", chunk, epoch=epoch, interrupted=True,
                         user_text=turn.user_text, **marks)
        else:
            host.publish("text", chunk, epoch=epoch, user_text=turn.user_text, **marks)

    async def on_epoch(self, epoch: int) -> None:
        turn = self._turn
        # A bump long after the reply was done is the next question's barge-in or
        # start: that reply played (or never will), whatever the reports said.
        if turn is not None and (turn.in_flight
                                 or time.monotonic() - turn.finished_at <= CUT_GRACE_S):
            turn.cut = True
        await self.plugin.interrupt(epoch)


def _reads_playback(host: HostPort) -> bool:
    """Whether the actor has a ``<sink>.playback`` input (else heard-or-not is unknown)."""
    spec = getattr(host, "spec", None)
    inputs = getattr(spec, "inputs", None) or ()
    return any(str(getattr(i, "topic", "")).endswith(".playback") for i in inputs)


class VideoLLMDriver(LLMDriver):
    """An LLM driver whose plugin also watches the input video (a VLM)."""

    def __init__(self, host: HostPort, plugin: Any) -> None:
        super().__init__(host, plugin)
        self._feed = VideoFeed(host.instance)

    async def on_input(self, msg: Message) -> None:
        if msg.kind is Kind.VIDEO:
            feed = self._feed
            if feed.push(msg.video()):
                await self.plugin.watch_video_track(feed.track, shared_forwarder=feed.forwarder)
        else:
            await super().on_input(msg)

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.plugin.stop_watching_video_track()
        await self._feed.close()
        await super().close()
