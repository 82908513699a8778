"""Speech-to-speech (Realtime): audio in, agent audio, transcripts and turns out."""


from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from va_actors.core.edge.events import AudioPlaybackEvent
from va_actors.core.events.base import BaseEvent, PluginErrorEvent

# Imported for its registrations too: every actor can decode every core event type.
from va_actors.core.llm import events as llm_events
from va_actors.core.llm.conversation import Conversation
from va_actors.core.llm.llm import is_recoverable_error
from va_actors.core.stt import STTPartialTranscriptEvent, STTTranscriptEvent
from va_actors.core.turn_detection import (
    TurnEndedEvent,
    TurnStartedEvent,
)
from va_actors.runtime.drivers.base import (
    MAX_PENDING_REPLIES,
    Driver,
    HostPort,
    maybe_await,
)
from va_actors.runtime.state.recorder import ConversationRecorder
from va_actors.runtime.state.store import ReplyState
from va_actors.runtime.video_feed import VideoFeed
from va_actors.wire.codec import Message
from va_actors.wire.messages import Kind, TextChunk

logger = logging.getLogger("va_actors.runtime.drivers")


@dataclass
class _AgentSpeech:
    """What a Realtime response has said so far (its transcript) and its next chunk index."""

    text: str = ""
    index: int = 0


class RealtimeDriver(Driver):
    """Speech-to-speech: audio -> ``simple_audio_response``; agent audio, transcripts, turns out.

    - Agent audio on ``audio``, stamped with its response's epoch exactly like
      TTS output (the host's publish drops a stale epoch), with header fields
      ``response_id``, ``text`` (the response's transcript so far) and
      ``synthesis_id`` (= ``response_id``), so a speaker can report what of it
      was heard.
    - Transcripts on ``transcript``, in the forms an edge or the console
      already reads: the user's as :class:`STTTranscriptEvent` (interim ones
      as :class:`STTPartialTranscriptEvent`), the agent's as
      :class:`TextChunk` s (deltas, then a final holding the whole text; a
      final cut by barge-in carries ``interrupted=True`` and what was heard).
    - The provider's own turn events (server VAD) on ``turn``: a
      ``TurnStartedEvent`` there lets the supervisor bump the epoch.
    - Inputs: audio; a speaker's ``AudioPlaybackEvent`` -> ``on_playback``
      (truncation to what was heard); a turn detector's ``TurnEndedEvent`` ->
      ``flush(participant)`` when the plugin has one (turns the pipeline
      detects); video -> ``watch_video_track``. On barge-in: ``interrupt(epoch)``.
    - The conversation is written to the session's conversation store
      (:mod:`va_actors.runtime.state`) as transcripts settle; a restarted
      actor gives it back to the plugin (``restore_conversation``) before it
      connects, asking for an answer when the last user turn has none yet
      or its answer was cut off by the crash.
    - A ``connect()`` that fails for good (the error's ``transient`` is false,
      or ``is_recoverable_error`` says so: a refused key) is reported once, on
      ``events`` once the pipeline runs, and the actor stays up without a
      session (no restart loop); a temporary failure fails the actor, which
      the supervisor restarts with its backoff.
    """

    outputs = ("audio", "transcript", "turn", "events")
    error_event = llm_events.RealtimeErrorEvent

    def __init__(self, host: HostPort, plugin: Any) -> None:
        super().__init__(host, plugin)
        self._feed = VideoFeed(host.instance)
        self._speech: dict[str, _AgentSpeech] = {}
        # Errors while starting are held until run(): before "start" nobody may
        # be subscribed yet, and a refused key must reach <actor>.events.
        self._held: list[PluginErrorEvent] | None = []
        self._recorder = ConversationRecorder.for_host(host)
        """None for a warm spare until :meth:`attach` (it knows no instance yet)."""
        self._restored = False

    async def start(self) -> None:
        self.forward_events(self._route)
        await self._start_plugin()
        if self.host.epoch > self.plugin.epoch:  # a restarted actor joins the session's epoch
            await self.plugin.interrupt(self.host.epoch)
        self._restore()
        try:
            await self.plugin.connect()
        except Exception as exc:
            if _temporary(exc):
                raise
            if not self._held:  # the plugin did not report it itself
                self._held = [self.error_event(error=exc, context="connect",
                                               plugin_name=self.host.actor,
                                               is_recoverable=False)]
            logger.error("%s: the realtime session cannot be opened (%s: %s); the actor "
                         "stays up without one", self.host.instance, type(exc).__name__, exc)

    async def attach(self) -> None:
        if self._recorder is None:  # a warm spare, connected already: restore now
            self._recorder = ConversationRecorder.for_host(self.host)
            self._restore()

    def _restore(self) -> None:
        """A restarted actor: the conversation so far back to the plugin, before connect."""
        if self._restored:
            return
        self._restored = True
        recorder = self._recorder
        restore = getattr(self.plugin, "restore_conversation", None)
        if recorder is None or not callable(restore):
            return
        conversation = Conversation()
        pending = recorder.restore(conversation, keep_user=True)
        messages = conversation.messages
        if not messages:
            return
        owed = (pending is not None and pending.epoch == self.host.epoch) or \
            messages[-1].role == "user"
        restore(messages, respond=owed)

    def _save(self) -> None:
        conversation = getattr(self.plugin, "conversation", None)
        if self._recorder is not None and isinstance(conversation, Conversation):
            self._recorder.save(conversation)

    async def run(self) -> None:
        held, self._held = self._held or [], None
        for event in held:
            self.host.publish("events", event)

    def _route(self, event: BaseEvent) -> str | None:
        if isinstance(event, llm_events.RealtimeAudioOutputEvent):
            self._publish_audio(event)
            return None
        if isinstance(event, llm_events.RealtimeAgentSpeechTranscriptionEvent):
            self._publish_agent_text(event)
            return None
        if isinstance(event, llm_events.RealtimeUserSpeechTranscriptionEvent):
            if event.mode == "final":
                self._save()  # stored before anyone sees it
            self.host.publish("transcript", _user_transcript(event))
            return None
        if isinstance(event, TurnStartedEvent | TurnEndedEvent):
            return "turn"
        if isinstance(event, PluginErrorEvent) and self._held is not None:
            self._held.append(event)
            return None
        return "events"

    def _said(self, response_id: str) -> _AgentSpeech:
        speech = self._speech.pop(response_id, None) or _AgentSpeech()
        self._speech[response_id] = speech  # re-inserted: dict order = recency
        if len(self._speech) > MAX_PENDING_REPLIES:
            del self._speech[next(iter(self._speech))]
        return speech

    def _publish_audio(self, event: llm_events.RealtimeAudioOutputEvent) -> None:
        if event.data is None:
            return
        rid = event.response_id
        if rid is None:
            self.host.publish("audio", event.data, epoch=event.epoch)
            return
        self.host.publish("audio", event.data, epoch=event.epoch, response_id=rid,
                          text=self._said(rid).text, synthesis_id=rid)

    def _publish_agent_text(self, event: llm_events.RealtimeAgentSpeechTranscriptionEvent) -> None:
        rid = event.response_id or event.session_id or "realtime"
        speech = self._said(rid)
        recorder = self._recorder
        if recorder is not None and speech.index == 0 and not speech.text and event.text:
            recorder.begin(rid, self.host.epoch, "")
        if event.mode == "delta":
            speech.text += event.text
            if event.text:
                self.host.publish("transcript", TextChunk(event.text, False, rid, speech.index))
                speech.index += 1
            return
        speech.text = event.text
        if event.mode == "final":
            if recorder is not None:  # stored before anyone sees the final
                recorder.end(rid, event.text,
                             ReplyState.CUT if event.interrupted else ReplyState.DONE)
                self._save()
            chunk = TextChunk(event.text, True, rid, speech.index)
            if event.interrupted:
                self.host.publish("transcript", chunk, interrupted=True)
            else:
                self.host.publish("transcript", chunk)

    async def on_input(self, msg: Message) -> None:
        if msg.kind is Kind.AUDIO:
            pcm = msg.audio()
            await self.plugin.simple_audio_response(pcm, pcm.participant)
        elif msg.kind is Kind.EVENT:
            event = msg.event()
            if isinstance(event, AudioPlaybackEvent):
                self.plugin.on_playback(event)
                if event.interrupted:
                    self._save()
            elif isinstance(event, TurnEndedEvent):
                flush = getattr(self.plugin, "flush", None)
                if callable(flush):
                    await maybe_await(flush(event.participant))
        elif msg.kind is Kind.VIDEO:
            feed = self._feed
            if feed.push(msg.video()):
                await self.plugin.watch_video_track(feed.track, shared_forwarder=feed.forwarder)

    async def on_epoch(self, epoch: int) -> None:
        await self.plugin.interrupt(epoch)

    async def close(self) -> None:
        await self._feed.close()
        await super().close()
        if self._recorder is not None:
            self._recorder.close()


def _temporary(exc: BaseException) -> bool:
    """Whether retrying may help: the error's own ``transient`` verdict, else a guess."""
    transient = getattr(exc, "transient", None)
    return transient if isinstance(transient, bool) else is_recoverable_error(exc)


def _user_transcript(event: llm_events.RealtimeUserSpeechTranscriptionEvent,
                     ) -> STTTranscriptEvent | STTPartialTranscriptEvent:
    """The provider's transcript of the user as the STT event a console or LLM reads."""
    common: dict[str, Any] = {"text": event.text, "participant": event.participant,
                              "plugin_name": event.plugin_name, "session_id": event.session_id}
    if event.mode == "final":
        return STTTranscriptEvent(**common)
    return STTPartialTranscriptEvent(**common, mode=event.mode)
