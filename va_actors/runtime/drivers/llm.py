"""The LLM family: final transcripts -> replies as text chunks; a VLM also watches video."""


from __future__ import annotations

import contextlib
import uuid
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


class LLMDriver(Driver):
    """Final transcripts -> ``llm.respond()``; deltas -> ``TextChunk`` on ``text``.

    An ``LLMContextEvent`` (from an edge such as the realtime gateway) sets
    the instructions and may start a fresh conversation.

    Every chunk of a reply carries the transcript's epoch and one
    ``response_id``; the reply ends with ``TextChunk(final=True)`` holding the
    whole text (header field ``interrupted=True`` when a newer transcript
    superseded it). One reply at a time: ``respond()`` itself ends the reply
    in flight when a new one starts. On barge-in, ``llm.interrupt(epoch)``.
    """

    outputs = ("text", "events")

    error_event = llm_events.LLMErrorEvent

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
            self.host.spawn(self._respond(text, event.participant, msg.epoch), "respond")

    def _on_context(self, event: llm_events.LLMContextEvent) -> None:
        """An edge's session began or changed: a fresh conversation, new instructions."""
        if event.new_conversation:
            self.plugin.conversation.clear()
        if event.instructions is not None:
            # From a remote client: never expanded (no @file.md reads on its behalf).
            self.plugin.set_instructions(event.instructions, expand_references=False)

    def _on_playback(self, event: AudioPlaybackEvent) -> None:
        """Keep only what the user heard of a reply cut off by barge-in."""
        if event.interrupted and event.response_id:
            self.plugin.conversation.truncate_message(event.response_id, event.heard_text)

    async def _respond(self, text: str, participant: Any, epoch: int) -> None:
        host = self.host
        response_id: str | None = None
        index = 0
        final: Any = None
        async with contextlib.aclosing(self.plugin.respond(text, participant)) as replies:
            async for item in replies:
                # The conversation message id doubles as the reply id, so the
                # output's playback reports can truncate history to what was heard.
                response_id = response_id or getattr(item, "item_id", None) or uuid.uuid4().hex
                delta = getattr(item, "delta", None)
                if not isinstance(delta, str):
                    final = item
                elif delta:
                    host.publish("text", TextChunk(delta, False, response_id, index),
                                 epoch=epoch)
                    index += 1
        whole = str(getattr(final, "text", "") or "")
        chunk = TextChunk(whole, True, response_id or uuid.uuid4().hex, index)
        if getattr(final, "interrupted", False):
            host.publish("text", chunk, epoch=epoch, interrupted=True)
        else:
            host.publish("text", chunk, epoch=epoch)

    async def on_epoch(self, epoch: int) -> None:
        await self.plugin.interrupt(epoch)


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
