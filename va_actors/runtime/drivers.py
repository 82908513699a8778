"""Category drivers: how the actor host feeds a plugin and publishes what it makes.

One small class per plugin category (docs/runtime.md, "Category drivers"). The
host creates the driver for the plugin's category, calls :meth:`Driver.start`
once before any input, :meth:`Driver.on_input` for every input message (one
dispatcher per input, so inputs never wait on each other),
:meth:`Driver.on_epoch` on barge-in, :meth:`Driver.run` after ``start`` from
the supervisor, and :meth:`Driver.close` at shutdown.

A plugin exception inside a driver becomes an error event of the category's
class (``STTErrorEvent`` for an STT, ...) on ``<actor>.events``, and the actor
keeps running.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import uuid
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from va_actors.core.edge.events import AudioPlaybackEvent
from va_actors.core.events.base import BaseEvent, ExceptionEvent, PluginErrorEvent
from va_actors.core.events.manager import EventManager

# Imported for its registrations too: every actor can decode every core event type.
from va_actors.core.llm import events as llm_events
from va_actors.core.node import Inbound, Publishable
from va_actors.core.processors import (
    AudioProcessor,
    ProcessorErrorEvent,
    VideoProcessor,
    VideoPublisher,
)
from va_actors.core.stt import STTErrorEvent, STTPartialTranscriptEvent, STTTranscriptEvent
from va_actors.core.tts import TTSAudioEvent, TTSErrorEvent
from va_actors.core.tts.sentences import complete_end, first_clause_end, split_sentences
from va_actors.core.turn_detection import (
    TurnDetectionErrorEvent,
    TurnEndedEvent,
    TurnStartedEvent,
)
from va_actors.core.video.frame import VideoFrame
from va_actors.core.video.track import VideoTrackClosedError
from va_actors.runtime.video_feed import CURRENT_INPUT, FORWARDER_FPS, VideoFeed
from va_actors.wire.codec import Message
from va_actors.wire.messages import InputRef, Kind, TextChunk

if TYPE_CHECKING:
    from va_actors.runtime.plugins import Category

__all__ = [
    "CURRENT_INPUT",
    "FORWARDER_FPS",
    "AudioProcessorDriver",
    "Driver",
    "HostPort",
    "LLMDriver",
    "NodeDriver",
    "RealtimeDriver",
    "STTDriver",
    "TTSDriver",
    "TurnDriver",
    "VideoLLMDriver",
    "VideoProcessorDriver",
    "driver_for",
    "inbound",
]

MAX_PENDING_REPLIES = 16
"""Replies a TTS keeps partial text for; a reply whose final never comes is evicted."""


class HostPort(Protocol):
    """What a driver needs from the actor host (:class:`~va_actors.runtime.host.ActorHost`)."""

    actor: str
    instance: str

    @property
    def epoch(self) -> int:
        """The session epoch in force."""

    def publish(self, stream: str, value: Publishable | TextChunk, *, epoch: int | None = None,
                ref: InputRef | None = None, final: bool = False, **fields: Any) -> None:
        """Publish on ``<actor>.<stream>`` (callable from any thread)."""

    def count_drop(self, reason: str, n: int = 1) -> None:
        """Count dropped items."""

    async def wait_started(self) -> None:
        """Return once ``start`` was received."""

    def spawn(self, coro: Coroutine[Any, Any, Any], context: str) -> asyncio.Task[Any]:
        """Run a task whose exception becomes an error event."""

    def fail(self, error: BaseException, context: str,
             event_class: type[PluginErrorEvent] = PluginErrorEvent) -> None:
        """Publish an error event."""


async def _maybe_await(value: object) -> None:
    if inspect.isawaitable(value):
        await value


def inbound(msg: Message) -> Inbound:
    """The :class:`Inbound` a Node receives for a decoded message.

    Text becomes its string (``final``, ``response_id`` and ``index`` stay in
    ``fields``); control becomes ``{"op": ..., "args": {...}}``.
    """
    kind = msg.kind
    value: Any
    if kind is Kind.TEXT:
        value = msg.fields["text"]
    elif kind is Kind.CONTROL:
        control = msg.control()
        value = {"op": control.op, "args": control.args}
    else:
        value = msg.value()
    return Inbound(msg.topic, value, msg.epoch, msg.seq, msg.ts_ns, msg.source, msg.fields)


class Driver:
    """Base driver: no inputs consumed, plugin events forwarded to ``events``."""

    outputs: ClassVar[tuple[str, ...]] = ("events",)
    """Streams this driver publishes (announced in ``hello``)."""
    error_event: ClassVar[type[PluginErrorEvent]] = PluginErrorEvent

    def __init__(self, host: HostPort, plugin: Any) -> None:
        self.host = host
        self.plugin = plugin

    async def start(self) -> None:
        """Start the plugin; called once, before any input."""

    async def run(self) -> None:
        """The plugin's own work, started when the supervisor sends ``start``."""

    async def on_input(self, msg: Message) -> None:
        """Handle one input message (already epoch-checked)."""

    async def on_epoch(self, epoch: int) -> None:
        """The session epoch moved to ``epoch`` (barge-in)."""

    async def close(self) -> None:
        """Stop the plugin and release it."""
        close = getattr(self.plugin, "close", None)
        if close is not None:
            await _maybe_await(close())

    def fail(self, error: BaseException, context: str) -> None:
        """Report a plugin exception as this category's error event."""
        self.host.fail(error, context, self.error_event)

    def forward_events(self, route: Callable[[BaseEvent], str | None]) -> None:
        """Publish every event the plugin sends on the stream ``route`` names (None: skip)."""
        events = getattr(self.plugin, "events", None)
        if not isinstance(events, EventManager):
            return
        host = self.host

        # A sync handler runs inline in events.send(): no task per event (the host's
        # publish() is safe from a plugin's worker thread too).
        def forward(event: BaseEvent) -> None:
            stream = route(event)
            if stream is not None:
                host.publish(stream, event)

        events.subscribe(prefix="")(forward)

    async def _start_plugin(self) -> None:
        start = getattr(self.plugin, "start", None)
        if start is not None:
            await _maybe_await(start())


# -- custom nodes -------------------------------------------------------------------
class NodeDriver(Driver):
    """Drives a :class:`~va_actors.core.node.Node`; is the node's ``NodeContext``."""

    outputs = ()

    @property
    def name(self) -> str:
        """The actor's name."""
        return self.host.actor

    @property
    def epoch(self) -> int:
        """The session epoch in force."""
        return self.host.epoch

    def publish(self, stream: str, value: Publishable, *, epoch: int | None = None,
                final: bool = False, **fields: Any) -> None:
        """Publish ``value`` on ``<actor>.<stream>`` (``ref=InputRef`` is accepted too)."""
        self.host.publish(stream, value, epoch=epoch, final=final, **fields)

    async def wait_started(self) -> None:
        """Return once the supervisor sent ``start``."""
        await self.host.wait_started()

    def count_drop(self, reason: str, n: int = 1) -> None:
        """Count items the node dropped."""
        self.host.count_drop(reason, n)

    async def start(self) -> None:
        await self.plugin.start(self)

    async def run(self) -> None:
        await self.plugin.run(self)

    async def on_input(self, msg: Message) -> None:
        await self.plugin.on_message(inbound(msg))

    async def on_epoch(self, epoch: int) -> None:
        await self.plugin.on_epoch(epoch)


# -- audio in, events out ---------------------------------------------------------------
def _stt_route(event: BaseEvent) -> str:
    if isinstance(event, STTTranscriptEvent | STTPartialTranscriptEvent):
        return "transcript"
    if isinstance(event, TurnStartedEvent | TurnEndedEvent):
        return "turn"
    return "events"


def _turn_route(event: BaseEvent) -> str:
    return "turn" if isinstance(event, TurnStartedEvent | TurnEndedEvent) else "events"


def _processor_route(event: BaseEvent) -> str:
    return "events" if isinstance(event, PluginErrorEvent | ExceptionEvent) else "state"


class STTDriver(Driver):
    """Audio -> ``process_audio``; transcripts, turns and other events published."""

    outputs = ("transcript", "turn", "events")
    error_event = STTErrorEvent

    async def start(self) -> None:
        self.forward_events(_stt_route)
        await self._start_plugin()

    async def on_input(self, msg: Message) -> None:
        if msg.kind is Kind.AUDIO:
            pcm = msg.audio()
            await self.plugin.process_audio(pcm, pcm.participant)
        elif msg.kind is Kind.EVENT:
            await self._on_turn_event(msg.event())

    async def _on_turn_event(self, event: BaseEvent) -> None:
        # A turn detector's end of turn is authoritative: the STT finalises the
        # utterance now instead of waiting for its own end-of-speech rule.
        flush = getattr(self.plugin, "flush", None)
        if isinstance(event, TurnEndedEvent) and callable(flush):
            await flush(event.participant)


class TurnDriver(Driver):
    """Audio -> ``process_audio``; turn events on ``turn``."""

    outputs = ("turn", "events")
    error_event = TurnDetectionErrorEvent

    async def start(self) -> None:
        self.forward_events(_turn_route)
        await self._start_plugin()

    async def on_input(self, msg: Message) -> None:
        if msg.kind is Kind.AUDIO:
            pcm = msg.audio()
            await self.plugin.process_audio(pcm, pcm.participant)


class AudioProcessorDriver(Driver):
    """Audio -> ``process_audio``; processor events on ``state``, errors on ``events``."""

    outputs = ("state", "events")
    error_event = ProcessorErrorEvent

    async def start(self) -> None:
        self.forward_events(_processor_route)
        await self._start_plugin()

    async def on_input(self, msg: Message) -> None:
        if msg.kind is Kind.AUDIO:
            await self.plugin.process_audio(msg.audio())


# -- video ---------------------------------------------------------------------------------
class VideoProcessorDriver(Driver):
    """Video -> track -> shared forwarder -> ``process_video``; output track on ``video``.

    Audio inputs go to ``process_audio`` when the processor is also an
    AudioProcessor.
    """

    outputs = ("video", "state", "events")
    error_event = ProcessorErrorEvent

    def __init__(self, host: HostPort, plugin: Any) -> None:
        super().__init__(host, plugin)
        self._feed = VideoFeed(host.instance)

    async def start(self) -> None:
        self.forward_events(_processor_route)
        await self._start_plugin()
        if isinstance(self.plugin, VideoPublisher):
            self.host.spawn(self._publish_track(self.plugin.publish_video_track()),
                            "publish_video_track")

    async def on_input(self, msg: Message) -> None:
        if msg.kind is Kind.VIDEO:
            feed = self._feed
            if feed.push(msg.video(), CURRENT_INPUT.get()):
                try:
                    await self.plugin.process_video(feed.track, None, feed.forwarder)
                finally:
                    feed.adopt_handlers()
            # The next frame is handed on once the handlers are done with this
            # one: a slow processor gets the newest frame, a replica can report.
            await feed.wait_handled()
        elif msg.kind is Kind.AUDIO and isinstance(self.plugin, AudioProcessor):
            await self.plugin.process_audio(msg.audio())

    async def _publish_track(self, track: Any) -> None:
        last: object = None
        while True:
            try:
                frame = await track.recv()
            except VideoTrackClosedError:
                return
            if frame is last:  # a paced repeat of the same frame is not new output
                continue
            last = frame
            if not isinstance(frame, VideoFrame):
                frame = VideoFrame.from_av(frame)
            self.host.publish("video", frame, ref=self._feed.ref_for_pts(frame.pts))

    async def close(self) -> None:
        if isinstance(self.plugin, VideoProcessor):
            with contextlib.suppress(Exception):
                await self.plugin.stop_processing()
        await self._feed.close()
        await super().close()


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


class RealtimeDriver(Driver):
    """Speech-to-speech (thin): audio -> ``simple_audio_response``; agent audio out.

    Agent audio goes on ``audio`` stamped with its response's epoch (the
    plugin's epoch is kept equal to the session epoch through
    ``interrupt(epoch)``); user and agent transcriptions on ``transcript``;
    video, if any, to ``watch_video_track``.
    """

    outputs = ("audio", "transcript", "events")

    def __init__(self, host: HostPort, plugin: Any) -> None:
        super().__init__(host, plugin)
        self._feed = VideoFeed(host.instance)

    error_event = llm_events.RealtimeErrorEvent

    async def start(self) -> None:
        transcripts = (llm_events.RealtimeUserSpeechTranscriptionEvent,
                       llm_events.RealtimeAgentSpeechTranscriptionEvent)

        def route(event: BaseEvent) -> str | None:
            if isinstance(event, llm_events.RealtimeAudioOutputEvent):
                if event.data is not None:
                    self.host.publish("audio", event.data, epoch=event.epoch)
                return None
            return "transcript" if isinstance(event, transcripts) else "events"

        self.forward_events(route)
        await self._start_plugin()
        if self.host.epoch > self.plugin.epoch:  # a restarted actor joins the session's epoch
            await self.plugin.interrupt(self.host.epoch)
        await self.plugin.connect()

    async def on_input(self, msg: Message) -> None:
        if msg.kind is Kind.AUDIO:
            pcm = msg.audio()
            await self.plugin.simple_audio_response(pcm, pcm.participant)
        elif msg.kind is Kind.VIDEO:
            feed = self._feed
            if feed.push(msg.video()):
                await self.plugin.watch_video_track(feed.track, shared_forwarder=feed.forwarder)

    async def on_epoch(self, epoch: int) -> None:
        await self.plugin.interrupt(epoch)

    async def close(self) -> None:
        await self._feed.close()
        await super().close()


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
    text's epoch. On barge-in: buffered text is dropped and
    ``tts.interrupt()`` stops the synthesis in flight; no chunk of an older
    epoch is published.
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
        await self.plugin.interrupt()


# -- selection -------------------------------------------------------------------------------
def driver_for(category: Category | str, cls: type) -> type[Driver]:
    """The driver class for a plugin class of ``category``.

    Raises ValueError if ``cls`` is not a subclass of that category's base.
    """
    from va_actors.runtime.plugins import Category, base_classes

    cat = Category(category)
    bases = dict(base_classes())
    base = bases.get(cat)
    if base is None or not issubclass(cls, base):
        raise ValueError(f"{cls.__module__}.{cls.__qualname__} is not a {cat.value} plugin "
                         f"(it does not derive from the {cat.value} base class)")
    drivers: dict[Category, type[Driver]] = {
        Category.NODE: NodeDriver,
        Category.STT: STTDriver,
        Category.TURN: TurnDriver,
        Category.LLM: LLMDriver,
        Category.VLM: VideoLLMDriver,
        Category.REALTIME: RealtimeDriver,
        Category.TTS: TTSDriver,
        Category.VIDEO_PROCESSOR: VideoProcessorDriver,
        Category.AUDIO_PROCESSOR: AudioProcessorDriver,
    }
    return drivers[cat]
