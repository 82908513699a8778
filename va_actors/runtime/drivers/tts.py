"""Text-to-speech: text chunks -> sentences -> audio, epoch by epoch."""


from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from dataclasses import dataclass
from typing import Any

# Imported for its registrations too: every actor can decode every core event type.
from va_actors.core.tts import TTSAudioEvent, TTSErrorEvent
from va_actors.core.tts.sentences import complete_end, first_clause_end, split_sentences
from va_actors.runtime.drivers.base import (
    MAX_PENDING_REPLIES,
    Driver,
    HostPort,
)
from va_actors.wire.codec import Message
from va_actors.wire.messages import Kind

# -- TTS ---------------------------------------------------------------------------------


@dataclass
class _PartialReply:
    text: str = ""
    deltas: int = 0
    spoken: bool = False
    """Some of it went to synthesis already (later cuts wait for whole sentences)."""


class TTSDriver(Driver):
    """Text chunks -> sentences -> ``send_iter`` -> audio on ``audio``.

    Deltas are collected per ``response_id`` and cut into sentences at
    ``.``, ``!`` or ``?`` followed by whitespace; a reply's first words go
    sooner, at the first clause boundary after a few words, or at a phrase
    break once a long first sentence has 16 words
    (``sentences.first_clause_end``), so speech starts before the first
    sentence is complete. The rest is said at the
    final chunk (whose own text is used only when no delta came). Sentences are
    synthesised one at a time in arrival order, each chunk stamped with its
    text's epoch. The plugin's epoch is the session's: on barge-in buffered
    text is dropped and ``tts.interrupt(epoch)`` stops the synthesis in
    flight; no chunk of an older epoch is published.
    """

    outputs = ("audio", "events")
    error_event = TTSErrorEvent

    def __init__(self, host: HostPort, plugin: Any) -> None:
        super().__init__(host, plugin)
        self._replies: dict[str | None, _PartialReply] = {}
        self._sentences: deque[tuple[str, int, str | None]] = deque()
        self._wakeup = asyncio.Event()

    async def start(self) -> None:
        # Audio goes out as audio messages; TTSAudioEvent would duplicate it.
        self.forward_events(lambda e: None if isinstance(e, TTSAudioEvent) else "events")
        await self._start_plugin()
        if self.host.epoch > self.plugin.epoch:  # a restarted actor joins the session's epoch
            await self.plugin.interrupt(self.host.epoch)
        self.host.spawn(self._speak(), "synthesis")

    async def on_input(self, msg: Message) -> None:
        if msg.kind is not Kind.TEXT:
            return
        chunk = msg.text()
        reply = self._replies.pop(chunk.response_id, None) or _PartialReply()
        if chunk.final:
            if not msg.fields.get("interrupted"):  # a superseded reply's rest is not said
                self._say(reply.text if reply.deltas else chunk.text, msg.epoch,
                          chunk.response_id)
            return
        reply.text += chunk.text
        reply.deltas += 1
        cut = complete_end(reply.text) if reply.spoken else first_clause_end(reply.text)
        if cut:
            self._say(reply.text[:cut], msg.epoch, chunk.response_id)
            reply.text = reply.text[cut:]
            reply.spoken = True
        self._replies[chunk.response_id] = reply  # re-inserted: dict order = recency
        if len(self._replies) > MAX_PENDING_REPLIES:
            del self._replies[next(iter(self._replies))]
            self.host.count_drop("overflow")

    def _say(self, text: str, epoch: int, response_id: str | None) -> None:
        for sentence in split_sentences(text):
            self._sentences.append((sentence, epoch, response_id))
        self._wakeup.set()

    async def _speak(self) -> None:
        host = self.host
        while True:
            while not self._sentences:
                self._wakeup.clear()
                await self._wakeup.wait()
            text, epoch, response_id = self._sentences.popleft()
            if epoch < host.epoch:
                host.count_drop("stale")
                continue
            if epoch > self.plugin.epoch:
                # Text of a new epoch came before on_epoch ran: adopt it now, so the
                # late on_epoch finds nothing to stop (it would cut this sentence).
                await self.plugin.interrupt(epoch)
            try:
                async with contextlib.aclosing(self.plugin.send_iter(text)) as chunks:
                    async for chunk in chunks:
                        if epoch < host.epoch:
                            break
                        if chunk.data is not None and chunk.data.samples.size:
                            # text + response_id let the output tell what was heard.
                            host.publish("audio", chunk.data, epoch=epoch, text=text,
                                         response_id=response_id)
            except Exception:  # the TTS base already sent a TTSErrorEvent
                continue

    async def on_epoch(self, epoch: int) -> None:
        dropped = len(self._sentences) + len(self._replies)
        self._sentences.clear()
        self._replies.clear()
        if dropped:
            self.host.count_drop("stale", dropped)
        await self.plugin.interrupt(epoch)
