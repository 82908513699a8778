"""The LLM family: final transcripts -> replies as text chunks; a VLM also watches video."""


from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any

from va_actors.core.edge.events import AudioPlaybackEvent
from va_actors.core.events.base import BaseEvent

# Imported for its registrations too: every actor can decode every core event type.
from va_actors.core.llm import events as llm_events
from va_actors.core.stt import STTPartialTranscriptEvent, STTTranscriptEvent
from va_actors.runtime.drivers.base import (
    Driver,
    HostPort,
    maybe_await,
)
from va_actors.runtime.state.recorder import ConversationRecorder
from va_actors.runtime.state.store import ReplyRecord, ReplyState
from va_actors.runtime.state.unsaid import continuation, rest_after
from va_actors.runtime.video_feed import VideoFeed
from va_actors.wire.codec import Message
from va_actors.wire.messages import Kind, TextChunk

logger = logging.getLogger("va_actors.runtime.drivers")

# -- LLM family ------------------------------------------------------------------------------
def _is_final_transcript(event: BaseEvent) -> bool:
    return (isinstance(event, STTTranscriptEvent)
            and not isinstance(event, STTPartialTranscriptEvent)
            and event.mode == "final")


CUT_GRACE_S = 3.0
"""An epoch bump this soon after a reply was done may still cut it before it was
heard (its audio is still being synthesised): the supervisor's resume grace."""


RESEND_WAIT_S = 10.0
"""Longest wait for an output to play out what it had before the unheard rest is re-sent."""


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
    """A sink reported ``HEARD_MS`` of it played (and the user did not go on over it)."""
    went_on: bool = False
    """The supervisor's bump that cut it was a resume: the user went on with this turn
    as its audio began, so what played of it does not count as heard."""
    epoch: int = 0
    sent: str = ""
    """The reply's text published so far."""
    chunks: int = 0
    """Text chunks of it published so far (the next one's index)."""
    heard_text: str = ""
    """What a sink last reported the user heard of it."""
    record_id: str = ""
    """Its key in the conversation store: provisional until the reply has an id."""
    prepared: bool = False
    """The plugin was told the reply settled (``prepare_next_turn``)."""


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
    epoch bump the supervisor marks a resume: the user went on before, or as,
    the agent began to speak) or is still being
    generated continues that user turn: ``respond(continues=True)`` keeps
    one user message with both parts and one reply.

    A crash loses nothing (:mod:`va_actors.runtime.state`): with a
    conversation store in the spec, the conversation is written as turns
    settle and the reply's progress as it goes out; a restarted LLM reads it
    back before it takes input and, if it died mid-reply, generates that
    reply again and publishes only what had not gone out yet (same
    ``response_id``, so a TTS goes on where it was). When a TTS crashes, the
    text published while it was down is held, and once it runs again the part
    of the reply the user did not hear is sent again (header ``resent=True``).
    """

    outputs = ("text", "events")

    error_event = llm_events.LLMErrorEvent

    def __init__(self, host: HostPort, plugin: Any) -> None:
        super().__init__(host, plugin)
        self._turn: _Turn | None = None
        self._recorder: ConversationRecorder | None = None
        """Set by :meth:`attach` when the spec names a conversation store."""
        self._speaker_down = False
        """A TTS crashed: text is held until it runs again (then the unheard rest goes)."""
        self._quiet = asyncio.Event()
        """No output reports playing (set until one does)."""
        self._quiet.set()

    async def start(self) -> None:
        # Deltas already go out as text; the rest (final, tools, errors) as events.
        self.forward_events(self._route_event)
        await self._start_plugin()
        if self.host.epoch > self.plugin.epoch:  # a restarted actor joins the session's epoch
            await self.plugin.interrupt(self.host.epoch)

    async def attach(self) -> None:
        self._recorder = ConversationRecorder.for_host(self.host)
        pending = self._restore()
        if pending is not None:
            self.host.spawn(self._rerun(pending), "rerun")

    def _route_event(self, event: BaseEvent) -> str | None:
        if isinstance(event, llm_events.LLMResponseDeltaEvent):
            return None
        recorder, turn = self._recorder, self._turn
        if recorder is not None and turn is not None and turn.record_id:
            if isinstance(event, llm_events.ToolStartEvent):
                recorder.tool_started(turn.record_id, event.tool_call_id or event.tool_name,
                                      event.tool_name, event.arguments)
            elif isinstance(event, llm_events.ToolEndEvent):
                recorder.tool_ended(turn.record_id, event.tool_call_id or event.tool_name,
                                    event.result if event.success else {"error": event.error})
        return "events"

    def _restore(self) -> ReplyRecord | None:
        """A restarted actor: the conversation so far, and the reply a crash cut off."""
        recorder = self._recorder
        conversation = getattr(self.plugin, "conversation", None)
        if recorder is None or conversation is None:
            return None
        instructions = recorder.instructions()
        if instructions is not None:
            self.plugin.set_instructions(instructions, expand_references=False)
        pending = recorder.restore(conversation)
        if pending is not None and pending.epoch != self.host.epoch:
            return None  # the user spoke on while it was down: that reply is over
        return pending

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
            turn = self._turn = _Turn(user_text, epoch=msg.epoch)
            self.host.spawn(self._respond(text, event.participant, msg.epoch, turn, continues),
                            "respond")

    def _continues(self) -> bool:
        """The next transcript goes on from the last turn: its reply is cut and unheard."""
        turn = self._turn
        return (turn is not None and not turn.heard and (turn.in_flight or turn.cut)
                and _reads_playback(self.host))

    def _on_context(self, event: llm_events.LLMContextEvent) -> None:
        """An edge's session began or changed: a fresh conversation, new instructions."""
        recorder = self._recorder
        if event.new_conversation:
            self.plugin.conversation.clear()
            self._turn = None  # nothing to continue in a fresh conversation
            if recorder is not None:
                recorder.clear()
        if event.instructions is not None:
            # From a remote client: never expanded (no @file.md reads on its behalf).
            self.plugin.set_instructions(event.instructions, expand_references=False)
            if recorder is not None:
                recorder.set_instructions(event.instructions)

    def _on_playback(self, event: AudioPlaybackEvent) -> None:
        """Keep only what the user heard of a reply cut off by barge-in."""
        if event.playing:
            self._quiet.clear()
        else:
            self._quiet.set()
        turn = self._turn
        if turn is not None and event.response_id == turn.response_id:
            turn.heard_text = event.heard_text or turn.heard_text
            if event.played_ms >= HEARD_MS and not turn.went_on:
                turn.heard = True
            if event.playing and not turn.in_flight and not turn.prepared:
                # Its first audio is out: the TTS has what it needs, the cores are free.
                turn.prepared = True
                self._prepare_next_turn()
        if event.interrupted and event.response_id:
            self.plugin.conversation.truncate_message(event.response_id, event.heard_text)
            self._prepare_next_turn()
        recorder = self._recorder
        if recorder is not None and event.response_id and (event.interrupted
                                                           or not event.playing):
            recorder.heard(event.response_id, event.heard_text)
            if event.interrupted:
                recorder.save(self.plugin.conversation)

    def _prepare_next_turn(self) -> None:
        """Tell the plugin the conversation settled (LLM.prepare_next_turn), if it listens."""
        prepare = getattr(self.plugin, "prepare_next_turn", None)
        if callable(prepare):
            self.host.spawn(maybe_await(prepare()), "prepare_next_turn")

    # -- replies ------------------------------------------------------------------------
    def _send(self, turn: _Turn, text: str, **marks: Any) -> None:
        """Publish one delta of ``turn``'s reply (held while a TTS is down)."""
        assert turn.response_id is not None
        turn.sent += text
        if not self._speaker_down:
            self.host.publish("text", TextChunk(text, False, turn.response_id, turn.chunks),
                              epoch=turn.epoch, **marks)
            turn.chunks += 1
        if self._recorder is not None:
            self._recorder.sent(turn.record_id or turn.response_id, turn.sent, turn.chunks)

    def _finish(self, turn: _Turn, whole: str, interrupted: bool, **marks: Any) -> None:
        """Record how ``turn``'s reply ended, then publish its final chunk.

        In that order: once anyone has seen the final, the store has the turn
        (a kill -9 right after must not lose it).
        """
        turn.in_flight, turn.finished_at = False, time.monotonic()
        response_id = turn.response_id or uuid.uuid4().hex
        recorder = self._recorder
        if recorder is not None:
            recorder.end(turn.record_id or response_id, whole,
                         ReplyState.CUT if interrupted else ReplyState.DONE)
            recorder.save(self.plugin.conversation)
        chunk = TextChunk(whole, True, response_id, turn.chunks)
        if interrupted:
            marks["interrupted"] = True
        if not self._speaker_down:
            self.host.publish("text", chunk, epoch=turn.epoch, user_text=turn.user_text,
                              **marks)

    async def _respond(self, text: str, participant: Any, epoch: int, turn: _Turn,
                       continues: bool) -> None:
        final: Any = None
        # A continuation says so on every chunk: its reply replaces the unheard one.
        marks: dict[str, Any] = {"continues": True} if continues else {}
        # Recorded before the model answers: a crash while it thinks re-runs the turn.
        turn.record_id = f"pending-{uuid.uuid4().hex}"
        if self._recorder is not None:
            self._recorder.begin(turn.record_id, epoch, turn.user_text)
        replies = (self.plugin.respond(text, participant, continues=True) if continues
                   else self.plugin.respond(text, participant))
        async with contextlib.aclosing(replies) as replies:
            async for item in replies:
                self._name_reply(turn, item)
                delta = getattr(item, "delta", None)
                if not isinstance(delta, str):
                    final = item
                elif delta:
                    self._send(turn, delta, **marks)
        whole = str(getattr(final, "text", "") or "")
        self._finish(turn, whole, bool(getattr(final, "interrupted", False)), **marks)

    def _name_reply(self, turn: _Turn, item: Any) -> None:
        """Give ``turn``'s reply its id at its first item (the store row too)."""
        if turn.response_id is not None:
            return
        # The conversation message id doubles as the reply id, so the output's
        # playback reports can truncate history to what was heard.
        turn.response_id = getattr(item, "item_id", None) or uuid.uuid4().hex
        if self._recorder is not None:
            self._recorder.rename(turn.record_id, turn.response_id)
        turn.record_id = turn.response_id

    async def _rerun(self, pending: ReplyRecord) -> None:
        """Generate again the reply a crash cut off; publish what had not gone out.

        The regenerated reply keeps the crashed one's ``response_id`` and chunk
        numbering, so the TTS holding its first part goes on with the rest.
        """
        logger.info("%s: the last reply was cut off by a crash after %d characters; "
                    "answering %r again", self.host.instance, len(pending.sent),
                    pending.user_text)
        # Nothing went out yet: the regenerated reply is a new one (its own id).
        went_out = pending.chunks > 0
        turn = self._turn = _Turn(pending.user_text, pending.response_id if went_out else None,
                                  epoch=pending.epoch, sent=pending.sent, chunks=pending.chunks,
                                  record_id=pending.response_id)
        produced, final, diverged, message_id = "", None, False, None
        replies = self.plugin.respond(pending.user_text)
        async with contextlib.aclosing(replies) as replies:
            async for item in replies:
                message_id = message_id or getattr(item, "item_id", None)
                self._name_reply(turn, item)
                delta = getattr(item, "delta", None)
                if not isinstance(delta, str):
                    final = item
                elif delta:
                    produced += delta
                    # Word for word the same so far: stream on from where it stopped;
                    # else the rest goes at the end, by word count.
                    diverged = diverged or not (produced.startswith(pending.sent)
                                                or pending.sent.startswith(produced))
                    if not diverged and len(produced) > len(turn.sent):
                        self._send(turn, produced[len(turn.sent):], rerun=True)
        regenerated = str(getattr(final, "text", "") or produced)
        tail, _ = continuation(turn.sent, regenerated)
        if tail:
            self._send(turn, tail, rerun=True)
        # What was said: all of the new reply, or the crashed one's start and its rest.
        whole = regenerated if not went_out else turn.sent.strip()
        # The conversation keeps it, under the id the outputs report.
        message = self.plugin.conversation.get(message_id or "")
        if message is not None and turn.response_id is not None:
            message.id, message.content = turn.response_id, whole
        self._finish(turn, whole, bool(getattr(final, "interrupted", False)), rerun=True)

    # -- crashed peers ------------------------------------------------------------------
    async def on_peer_down(self, actor: str, category: str) -> None:
        if category == "tts":
            self._speaker_down = True

    async def on_peer_restarted(self, actor: str, category: str) -> None:
        if category != "tts" or not self._speaker_down:
            return
        # Let the output play what it already had: "heard" then covers all of it.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._quiet.wait(), RESEND_WAIT_S)
        self._speaker_down = False
        turn = self._turn
        if turn is None or turn.response_id is None or turn.cut:
            return
        rest = rest_after(turn.sent, turn.heard_text)
        if not rest:
            return  # all of it was heard (a final alone would have the TTS say it all again)
        logger.info("%s: %s restarted; saying again the %d unheard characters of the reply",
                    self.host.instance, actor, len(rest))
        self.host.publish("text", TextChunk(rest, False, turn.response_id, turn.chunks),
                          epoch=turn.epoch, resent=True)
        turn.chunks += 1
        if not turn.in_flight:
            self.host.publish("text", TextChunk(turn.sent, True, turn.response_id, turn.chunks),
                              epoch=turn.epoch, user_text=turn.user_text, resent=True)

    async def on_epoch(self, epoch: int) -> None:
        turn = self._turn
        # A bump long after the reply was done is the next question's barge-in or
        # start: that reply played (or never will), whatever the reports said.
        if turn is not None and (turn.in_flight
                                 or time.monotonic() - turn.finished_at <= CUT_GRACE_S):
            turn.cut = True
            if self.host.resumed_epoch == epoch:
                turn.heard, turn.went_on = False, True
        await self.plugin.interrupt(epoch)

    async def close(self) -> None:
        await super().close()
        if self._recorder is not None:
            self._recorder.close()


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
