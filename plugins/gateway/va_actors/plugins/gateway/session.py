"""One client's Realtime session: client events in, pipeline messages in, server events out.

The session turns the client's events into the pipeline's messages (audio on
``audio``, user turns and LLM context on ``transcript``, a barge-in request on
``turn``, what was heard on ``playback``) and the pipeline's turn events,
transcripts, LLM text and TTS audio into GA server events. It never blocks:
server events go to ``send`` (the connection's outbox). A
:class:`~va_actors.core.edge.playback.PlaybackSink` models the client's speaker
(audio sent plays in real time from its first piece), so the pipeline's
barge-in and heard-text rules work as with a local speaker.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from va_actors.core.audio import PcmData
from va_actors.core.edge import AudioPlaybackEvent, Participant
from va_actors.core.edge.playback import PlaybackSink
from va_actors.core.events.base import BaseEvent
from va_actors.core.llm.events import LLMContextEvent, LLMErrorEvent
from va_actors.core.node import Inbound, NodeContext, Publishable
from va_actors.core.stt import STTTranscriptEvent
from va_actors.core.turn_detection import TurnEndedEvent, TurnStartedEvent

from .media import InputAudio, OutputAudio, decode_base64
from .protocol import (
    CLIENT_EVENTS,
    JSON,
    SERVER_ERROR,
    ClientError,
    new_id,
    server_event,
    user_audio_item,
    user_text_item,
)
from .response import ReplyRouter, Response, Status
from .session_config import DEFAULT_RATE, SessionConfig

logger = logging.getLogger("va_actors.plugins.gateway")

PLUGIN_NAME = "gateway"
AUDIO = "audio"
TRANSCRIPT = "transcript"
TURN = "turn"
PLAYBACK = "playback"
MIN_COMMIT_MS = 100.0
"""The API refuses to commit less audio than this."""
CUT_GRACE_S = 0.1
"""After a barge-in's epoch bump, how long the response's end waits for the turn
detector's start of speech, so the client sees speech_started first, as from the API."""


@dataclass(frozen=True)
class Settings:
    """What every session of one gateway shares (the node's params)."""

    model: str = "va-actors"
    voice: str = "default"
    instructions: str = ""
    participant: str = "user"
    response_idle_s: float = 2.0
    llm_timeout_s: float = 30.0
    transcript_wait_s: float = 0.7
    playback_interval_ms: float = 100.0
    idle_ms: float = 250.0
    max_buffer_s: float = 120.0


@dataclass
class _UserItem:
    """A user item not answered yet."""

    item_id: str
    audio: bool
    text: str | None = None
    """None while its transcript is still to come."""
    respond: bool = False
    """Answer it as soon as its transcript comes (server VAD with create_response)."""
    duration_ms: float = 0.0


@dataclass(frozen=True)
class _Wanted:
    """A response asked for (``response.create``, or a turn with create_response)."""

    modalities: list[str] | None = None
    metadata: object = None


@dataclass
class _Timers:
    handles: dict[str, asyncio.TimerHandle] = field(default_factory=dict)

    def arm(self, name: str, delay_s: float, callback: Callable[[], None]) -> None:
        self.cancel(name)
        self.handles[name] = asyncio.get_running_loop().call_later(delay_s, callback)

    def cancel(self, name: str) -> None:
        handle = self.handles.pop(name, None)
        if handle is not None:
            handle.cancel()

    def cancel_all(self) -> None:
        for handle in self.handles.values():
            handle.cancel()
        self.handles.clear()


class _SpeakerPort:
    """The NodeContext the client-speaker model publishes through: it notes what was heard."""

    def __init__(self, ctx: NodeContext, on_report: Callable[[AudioPlaybackEvent], None]) -> None:
        self._ctx = ctx
        self._on_report = on_report

    @property
    def name(self) -> str:
        return self._ctx.name

    @property
    def epoch(self) -> int:
        return self._ctx.epoch

    def publish(self, stream: str, value: Publishable, *, epoch: int | None = None,
                final: bool = False, **fields: Any) -> None:
        if isinstance(value, AudioPlaybackEvent):
            value.plugin_name = PLUGIN_NAME
            self._on_report(value)
        self._ctx.publish(stream, value, epoch=epoch, final=final, **fields)

    async def wait_started(self) -> None:
        await self._ctx.wait_started()

    def inputs(self) -> AsyncIterator[Inbound]:
        return self._ctx.inputs()

    def count_drop(self, reason: str, n: int = 1) -> None:
        self._ctx.count_drop(reason, n)


class RealtimeSession:
    """The protocol state of one client (see the module docstring).

    Args:
        ctx: the gateway node's context (its topics).
        settings: the gateway's params.
        router: maps LLM reply ids to responses (shared by all sessions).
        send: queues one server event for the client.
        model: the model the client asked for (``?model=``), if any.
    """

    def __init__(self, ctx: NodeContext, settings: Settings, router: ReplyRouter,
                 send: Callable[[JSON], None], model: str | None = None) -> None:
        self.id = new_id("sess")
        self._ctx = ctx
        self._settings = settings
        self._router = router
        self._send_event = send
        self.config = SessionConfig(self.id, model or settings.model, settings.instructions,
                                    settings.voice)
        self.participant = Participant(user_id=settings.participant, id=self.id)
        self._conversation_id = new_id("conv")
        self._input = InputAudio(self.participant)
        self._output = OutputAudio(self.config.output_format)
        self._speaker = PlaybackSink(DEFAULT_RATE, 1, True, settings.playback_interval_ms,
                                     settings.idle_ms, settings.max_buffer_s)
        self._port = _SpeakerPort(ctx, self._on_playback_report)
        self._speaker_task: asyncio.Task[None] | None = None
        self._timers = _Timers()
        self._items: list[str] = []
        self._docs: dict[str, JSON] = {}
        self._pending: list[_UserItem] = []
        self._uncommitted: list[str] = []
        self._speech: tuple[str, float] | None = None  # (item id, audio_start_ms)
        self._wanted: _Wanted | None = None  # a response asked for, waiting for transcripts
        self._response: Response | None = None
        self._cut: Response | None = None  # cut by a barge-in, its end not yet sent
        self._responses: dict[str, Response] = {}  # by item id
        self._sim_heard: dict[str, str] = {}  # LLM reply id -> heard, from the speaker model
        self._audio_sent = False
        self._closed = False

    # -- lifetime --------------------------------------------------------------------
    async def open(self) -> None:
        """Start the speaker model, greet the client, give the LLM a fresh conversation."""
        await self._speaker.start(self._port)
        self._speaker_task = asyncio.create_task(self._speaker.run(self._port),
                                                 name=f"{self.id}:speaker")
        self._send("session.created", session=self.config.as_json())
        self._publish(TRANSCRIPT, LLMContextEvent(instructions=self.config.instructions,
                                                  new_conversation=True,
                                                  plugin_name=PLUGIN_NAME))

    async def close(self) -> None:
        """The client left: stop what the pipeline still does for it."""
        if self._closed:
            return
        self._closed = True
        self._timers.cancel_all()
        if self._response is not None:
            # Ask for a barge-in so the LLM and TTS stop (the supervisor bumps
            # only while the speaker model plays).
            self._publish(TURN, TurnStartedEvent(participant=self.participant,
                                                 custom={"reason": "client disconnected"},
                                                 plugin_name=PLUGIN_NAME))
            self._response.status = Status.CANCELLED
            self._response = None
        if self._speaker_task is not None:
            self._speaker_task.cancel()
            await asyncio.gather(self._speaker_task, return_exceptions=True)
        await self._speaker.close()

    @property
    def responding(self) -> bool:
        """A response is in progress."""
        return self._response is not None

    # -- client events -----------------------------------------------------------------
    def handle_text(self, data: str) -> None:
        """One client message; any problem goes back as an ``error`` event, never raised."""
        event_id: str | None = None
        try:
            event = self._parse(data)
            event_id = event.get("event_id") if isinstance(event.get("event_id"), str) else None
            handler = self._HANDLERS.get(event["type"])
            if handler is None:
                raise ClientError(
                    f"client event type {event['type']!r} is not served here"
                    if event["type"] in CLIENT_EVENTS else
                    f"unknown client event type {event['type']!r}; the GA Realtime client "
                    f"events are {', '.join(CLIENT_EVENTS)}", code="invalid_event",
                    param="type")
            handler(self, event)
        except ClientError as err:
            err.event_id = err.event_id or event_id
            self._send_event(err.event())
        except Exception as exc:  # a gateway bug must not end the session
            logger.exception("%s: cannot handle a client event", self.id)
            self._send_event(ClientError(f"the gateway failed on this event: "
                                         f"{type(exc).__name__}: {exc}", code="internal_error",
                                         event_id=event_id, kind=SERVER_ERROR).event())

    @staticmethod
    def _parse(data: str) -> JSON:
        try:
            event = json.loads(data)
        except json.JSONDecodeError as exc:
            raise ClientError(f"the message is not valid JSON: {exc.msg} at line {exc.lineno} "
                              f"column {exc.colno}", code="invalid_json") from None
        if not isinstance(event, dict) or not isinstance(event.get("type"), str):
            raise ClientError("a client event must be a JSON object with a 'type' string",
                              code="invalid_event", param="type")
        return event

    def _session_update(self, event: JSON) -> None:
        before = self.config.output_format
        changed = self.config.update(event.get("session"), audio_sent=self._audio_sent,
                                     responding=self.responding)
        if self.config.output_format != before:
            self._output = OutputAudio(self.config.output_format)
        if self.config.turn_detection is None:
            self._speech = None
        if changed:
            self._publish(TRANSCRIPT, LLMContextEvent(instructions=self.config.instructions,
                                                      plugin_name=PLUGIN_NAME))
        self._send("session.updated", session=self.config.as_json())

    def _append(self, event: JSON) -> None:
        try:
            data = decode_base64(event.get("audio"), "audio")
        except ValueError as exc:
            raise ClientError(str(exc), code="invalid_audio", param="audio") from None
        if not data:
            return
        pcm = self.config.input_format.decode(data, "audio")
        for chunk in self._input.append(pcm):
            self._publish(AUDIO, chunk)

    def _commit(self, event: JSON) -> None:
        if self._input.buffered_ms < MIN_COMMIT_MS:
            raise ClientError(
                f"cannot commit the input audio buffer: it holds "
                f"{self._input.buffered_ms:.0f} ms of audio, at least {MIN_COMMIT_MS:.0f} ms "
                "are needed", code="input_audio_buffer_commit_empty")
        for chunk in self._input.flush():
            self._publish(AUDIO, chunk)
        # The STT finalises what it holds when it sees the end of a turn.
        self._publish(TURN, TurnEndedEvent(participant=self.participant,
                                           custom={"reason": "input_audio_buffer.commit"},
                                           plugin_name=PLUGIN_NAME))
        item_id = self._speech[0] if self._speech is not None else new_id("item")
        self._speech = None
        item = self._add_audio_item(item_id, respond=False)
        self._timers.arm(f"transcript:{item_id}", self._settings.transcript_wait_s,
                         lambda: self._transcribed(item, " ".join(self._uncommitted)))

    def _clear(self, event: JSON) -> None:
        self._input.clear()
        self._uncommitted.clear()
        self._send("input_audio_buffer.cleared")

    def _item_create(self, event: JSON) -> None:
        item = event.get("item")
        if not isinstance(item, Mapping):
            raise ClientError("item must be an object", param="item")
        self._check_position(event.get("previous_item_id"))
        kind, role = item.get("type", "message"), item.get("role")
        if kind == "function_call_output":
            raise ClientError(
                f"no function call {item.get('call_id')!r} is pending: the pipeline's LLM runs "
                "its own tools and never asks the client to call one", param="item.call_id")
        if kind != "message" or role != "user":
            raise ClientError(
                f"only user messages can be added here (got type {kind!r}, role {role!r}): the "
                "pipeline's LLM keeps its own history; set instructions with session.update",
                param="item.role" if kind == "message" else "item.type")
        texts = self._user_texts(item.get("content"))
        given = item.get("id")
        item_id = given if isinstance(given, str) and given else new_id("item")
        if item_id in self._docs:
            raise ClientError(f"an item with id {item_id!r} already exists", param="item.id")
        doc = user_text_item(item_id, texts)
        previous = self._last_item()
        self._remember(doc)
        self._pending.append(_UserItem(item_id, audio=False, text=" ".join(texts)))
        self._send("conversation.item.added", previous_item_id=previous, item=doc)
        self._send("conversation.item.done", previous_item_id=previous, item=doc)

    @staticmethod
    def _user_texts(content: object) -> list[str]:
        if not isinstance(content, list) or not content:
            raise ClientError("item.content must be a non-empty array of input_text parts",
                              param="item.content")
        texts = []
        for i, part in enumerate(content):
            where = f"item.content[{i}]"
            if not isinstance(part, Mapping) or part.get("type") != "input_text":
                kind = part.get("type") if isinstance(part, Mapping) else part
                raise ClientError(
                    f"{where}: only input_text parts are served here, got {kind!r} (send audio "
                    "with input_audio_buffer.append)", param=f"{where}.type")
            text = part.get("text")
            if not isinstance(text, str):
                raise ClientError(f"{where}.text must be a string", param=f"{where}.text")
            texts.append(text)
        return texts

    def _check_position(self, previous: object) -> None:
        if previous is None or previous == self._last_item() or (
                previous == "root" and not self._items):
            return
        raise ClientError(f"previous_item_id {previous!r}: items can only be added at the end "
                          "of the conversation here (the pipeline's LLM history is append-only)",
                          param="previous_item_id")

    def _item_retrieve(self, event: JSON) -> None:
        doc = self._docs.get(str(event.get("item_id")))
        if doc is None:
            raise ClientError(f"no item {event.get('item_id')!r} in this conversation",
                              code="item_not_found", param="item_id")
        self._send("conversation.item.retrieved", item=doc)

    def _item_truncate(self, event: JSON) -> None:
        item_id = event.get("item_id")
        response = self._responses.get(str(item_id))
        if response is None:
            kind = "not an assistant message" if item_id in self._docs else "not found"
            raise ClientError(f"item {item_id!r} is {kind}: only assistant audio can be "
                              "truncated", code="item_not_found", param="item_id")
        if event.get("content_index", 0) != 0:
            raise ClientError("content_index must be 0", param="content_index")
        end_ms = event.get("audio_end_ms")
        if isinstance(end_ms, bool) or not isinstance(end_ms, int) or end_ms < 0:
            raise ClientError(f"audio_end_ms must be a whole number of milliseconds >= 0, got "
                              f"{end_ms!r}", param="audio_end_ms")
        if end_ms > response.audio_ms + 1:
            raise ClientError(f"audio_end_ms {end_ms} is past the end of item {item_id!r}'s "
                              f"audio ({response.audio_ms:.0f} ms)", param="audio_end_ms")
        response.heard = response.heard_at(end_ms)
        response.heard_reported = False
        self._report_heard(response)
        self._docs[response.item_id] = _with_transcript(response.item(), response.heard)
        self._send("conversation.item.truncated", item_id=item_id, content_index=0,
                   audio_end_ms=end_ms)

    def _response_create(self, event: JSON) -> None:
        options = event.get("response")
        if options is not None and not isinstance(options, Mapping):
            raise ClientError("response must be an object", param="response")
        options = options or {}
        for key in ("instructions", "input"):
            if key in options:
                raise ClientError(f"response.{key} is not served here: the pipeline's LLM "
                                  "answers from the session's conversation and instructions",
                                  code="unsupported", param=f"response.{key}")
        if options.get("conversation", "auto") != "auto":
            raise ClientError("response.conversation must be 'auto' here (out-of-band responses "
                              "are not served)", code="unsupported", param="response.conversation")
        modalities = options.get("output_modalities")
        if modalities not in (None, ["audio"], ["text"]):
            raise ClientError(f"response.output_modalities must be [\"audio\"] or [\"text\"], "
                              f"got {modalities!r}", param="response.output_modalities")
        if self._response is not None:
            raise ClientError(f"response {self._response.id} is still in progress; cancel it "
                              "or wait for response.done",
                              code="conversation_already_has_active_response")
        if not self._pending and not self._wanted:
            raise ClientError("nothing to respond to: the pipeline's LLM answers user turns; "
                              "add a user message (conversation.item.create) or commit audio "
                              "first", code="no_user_input")
        self._wanted = _Wanted(modalities, options.get("metadata"))
        self._maybe_respond()

    def _response_cancel(self, event: JSON) -> None:
        response = self._response
        wanted = event.get("response_id")
        if response is None or (wanted is not None and wanted != response.id):
            what = f"response {wanted!r} is" if wanted else "no response is"
            raise ClientError(f"{what} in progress; nothing to cancel",
                              code="response_cancel_not_active", param="response_id")
        response.cancel_requested = True
        # Ask the supervisor for a barge-in: the LLM and TTS stop and the
        # speaker model drops what it holds (a bump only happens while it plays).
        self._publish(TURN, TurnStartedEvent(participant=self.participant, confidence=1.0,
                                             custom={"reason": "response.cancel",
                                                     "response_id": response.id},
                                             plugin_name=PLUGIN_NAME))
        self._end(response, Status.CANCELLED, reason="client_cancelled")

    def _item_delete(self, event: JSON) -> None:
        raise ClientError("items cannot be deleted here: the pipeline's LLM history is "
                          "append-only (truncate assistant audio instead)", code="unsupported",
                          param="item_id")

    def _output_clear(self, event: JSON) -> None:
        raise ClientError("output_audio_buffer.clear is for WebRTC connections; over a "
                          "WebSocket stop your own playback and send conversation.item.truncate",
                          code="unsupported")

    _HANDLERS: dict[str, Callable[[RealtimeSession, JSON], None]] = {
        "session.update": _session_update,
        "input_audio_buffer.append": _append,
        "input_audio_buffer.commit": _commit,
        "input_audio_buffer.clear": _clear,
        "conversation.item.create": _item_create,
        "conversation.item.retrieve": _item_retrieve,
        "conversation.item.truncate": _item_truncate,
        "conversation.item.delete": _item_delete,
        "response.create": _response_create,
        "response.cancel": _response_cancel,
        "output_audio_buffer.clear": _output_clear,
    }

    # -- pipeline: the user's side -------------------------------------------------------
    def on_turn_started(self, event: TurnStartedEvent) -> None:
        """The pipeline's turn detector heard the user start."""
        if not self._mine(event.participant) or self.config.turn_detection is None:
            return
        if self._speech is None:
            start = _ms_field(event.custom.get("start_ms"), self._input.received_ms)
            self._speech = (new_id("item"), start)
            self._send("input_audio_buffer.speech_started", audio_start_ms=round(start),
                       item_id=self._speech[0])
        self._end_cut()
        if (self._response is not None and self.config.interrupt_response
                and not self._speaker.playing):
            # As the API: speech cancels the response in progress. While the
            # speaker model plays, the supervisor's epoch bump does it (on_epoch).
            self._end(self._response, Status.CANCELLED, reason="turn_detected")

    def on_turn_ended(self, event: TurnEndedEvent) -> None:
        """The pipeline's turn detector says the user's turn ended."""
        if not self._mine(event.participant) or self.config.turn_detection is None:
            return
        if self._speech is None:
            return
        end = _ms_field(event.custom.get("detected_ms"), self._input.received_ms)
        item_id, _ = self._speech
        self._speech = None
        self._send("input_audio_buffer.speech_stopped", audio_end_ms=round(end),
                   item_id=item_id)
        self._add_audio_item(item_id, respond=self.config.create_response)

    def on_transcript(self, event: STTTranscriptEvent) -> None:
        """A final transcript from the pipeline's STT."""
        if not self._mine(event.participant):
            return
        text = event.text.strip()
        item = next((i for i in self._pending if i.audio and i.text is None), None)
        if item is None:
            if self.config.turn_detection is None:  # manual commits: it waits for one
                if text:
                    self._uncommitted.append(text)
                return
            if not text:
                return
            # The STT ended a turn the detector did not (or before it did).
            item_id = self._speech[0] if self._speech is not None else new_id("item")
            if self._speech is not None:
                self._speech = None
                self._send("input_audio_buffer.speech_stopped",
                           audio_end_ms=round(self._input.received_ms), item_id=item_id)
            item = self._add_audio_item(item_id, respond=self.config.create_response)
        if not item.respond and self.config.turn_detection is None:
            self._uncommitted.append(text)  # a manual commit collects what came before it
            text = " ".join(self._uncommitted)
        self._transcribed(item, text)

    def _add_audio_item(self, item_id: str, respond: bool) -> _UserItem:
        previous = self._last_item()
        doc = user_audio_item(item_id, None)
        self._remember(doc)
        item = _UserItem(item_id, audio=True, respond=respond,
                         duration_ms=self._input.buffered_ms)
        self._input.buffered_ms = 0.0
        self._pending.append(item)
        self._send("input_audio_buffer.committed", item_id=item_id, previous_item_id=previous)
        self._send("conversation.item.added", previous_item_id=previous, item=doc)
        return item

    def _transcribed(self, item: _UserItem, text: str) -> None:
        if item.text is not None or self._closed:
            return
        self._timers.cancel(f"transcript:{item.item_id}")
        self._uncommitted.clear()
        item.text = text.strip()
        doc = user_audio_item(item.item_id, item.text if self.config.transcribe else None)
        self._docs[item.item_id] = doc
        if self.config.transcribe:
            self._send("conversation.item.input_audio_transcription.completed",
                       item_id=item.item_id, content_index=0, transcript=item.text,
                       usage={"type": "duration", "seconds": round(item.duration_ms / 1000, 3)})
        self._send("conversation.item.done", previous_item_id=self._before(item.item_id),
                   item=doc)
        if not item.text:
            self._pending.remove(item)
        if item.respond and item.text:
            if self._response is not None:  # a new turn supersedes it, as the LLM does
                self._end(self._response, Status.CANCELLED, reason="turn_detected")
            self._wanted = self._wanted or _Wanted()
        self._maybe_respond()

    # -- responses -----------------------------------------------------------------------
    def _maybe_respond(self) -> None:
        """Hand the pending user turns to the LLM once a response is wanted and they are known."""
        if self._wanted is None or any(i.text is None for i in self._pending):
            return
        wanted = self._wanted
        self._wanted = None
        texts = [i.text for i in self._pending if i.text]
        self._pending.clear()
        if not texts:
            self._send_event(ClientError("nothing to respond to: the committed audio had no "
                                         "words the pipeline's STT could hear",
                                         code="no_user_input").event())
            return
        text_only = wanted.modalities == ["text"] if wanted.modalities else self.config.text_only
        response = Response(
            id=new_id("resp"), item_id=new_id("item"), conversation_id=self._conversation_id,
            epoch=self._ctx.epoch, text_only=text_only, rate=self.config.output_format.rate,
            output_format=self.config.output_format.as_json(), voice=self.config.voice,
            metadata=wanted.metadata)
        self._response = response
        self._responses[response.item_id] = response
        self._router.expect(response)
        self._publish(TRANSCRIPT, STTTranscriptEvent(text=" ".join(texts),
                                                     participant=self.participant,
                                                     plugin_name=PLUGIN_NAME))
        previous = self._last_item()
        doc = response.item()
        self._remember(doc)
        self._send("response.created", response=response.resource())
        self._send("response.output_item.added", response_id=response.id, output_index=0,
                   item=doc)
        self._send("conversation.item.added", previous_item_id=previous, item=doc)
        self._send("response.content_part.added", **self._where(response), part=response.part())
        self._timers.arm(f"llm:{response.id}", self._settings.llm_timeout_s,
                         lambda: self._llm_timed_out(response))

    def _llm_timed_out(self, response: Response) -> None:
        self._router.forget(response)
        self._end(response, Status.FAILED, error={
            "type": SERVER_ERROR, "code": "pipeline_timeout",
            "message": f"the pipeline's LLM did not answer within "
                       f"{self._settings.llm_timeout_s:g} s"})

    # -- pipeline: the agent's side -----------------------------------------------------
    def on_llm_text(self, text: str, fields: Mapping[str, Any], epoch: int) -> None:
        """A text chunk of the pipeline LLM's reply."""
        llm_id = fields.get("response_id")
        response = self._router.route(llm_id if isinstance(llm_id, str) else None, epoch)
        if response is None or response.conversation_id != self._conversation_id:
            return
        self._timers.cancel(f"llm:{response.id}")
        if fields.get("final"):
            self._on_llm_final(response, text, interrupted=bool(fields.get("interrupted")))
            return
        if response.done:
            return
        response.text.append(text)
        if response.text_only and text:
            self._send("response.output_text.delta", **self._where(response), delta=text)

    def _on_llm_final(self, response: Response, text: str, interrupted: bool) -> None:
        response.llm_settled = True
        if response.done:
            self._report_heard(response)
            return
        if interrupted:  # a newer user turn superseded it in the LLM
            self._end(response, Status.CANCELLED, reason="turn_detected")
            return
        response.final_text = text
        if (response.text_only or not text.strip()
                or (response.last_synthesised and response.spoken_all())):
            self._end(response, Status.COMPLETED)
            return
        self._timers.arm(f"idle:{response.id}", self._settings.response_idle_s,
                         lambda: self._end(response, Status.COMPLETED))

    def on_llm_error(self, event: LLMErrorEvent) -> None:
        """The LLM failed; the response it was working on fails unless text still comes."""
        response = self._response
        if response is not None and not response.text:
            response.error = {"type": SERVER_ERROR, "code": "llm_error",
                              "message": event.error_message or "the pipeline's LLM failed"}

    async def on_tts_audio(self, msg: Inbound) -> None:
        """A chunk of agent audio from the pipeline's TTS."""
        pcm = msg.value
        assert isinstance(pcm, PcmData)
        llm_id = msg.fields.get("response_id")
        response = self._router.route(llm_id if isinstance(llm_id, str) else None, msg.epoch)
        if (response is None or response.done or response.text_only
                or response.conversation_id != self._conversation_id):
            self._ctx.count_drop("not_in_a_response")
            return
        converted = self._output.convert((msg.topic, msg.source), pcm)
        if converted.empty:
            return
        sentence = msg.fields.get("text")
        self._send_audio(response, converted, sentence if isinstance(sentence, str) else None)
        await self._speaker.on_message(Inbound(msg.topic, converted, msg.epoch, msg.seq,
                                               msg.ts_ns, msg.source, {
                                                   "response_id": response.llm_id,
                                                   "text": sentence}))
        if response.final_text is not None:
            self._timers.arm(f"idle:{response.id}", self._settings.response_idle_s,
                             lambda: self._end(response, Status.COMPLETED))

    def _send_audio(self, response: Response, pcm: PcmData, sentence: str | None) -> None:
        delta = response.add_audio(pcm.num_samples, sentence)
        if delta is not None:
            self._send("response.output_audio_transcript.delta", **self._where(response),
                       delta=delta)
        self._send("response.output_audio.delta", **self._where(response),
                   delta=self._output.encode(pcm))
        self._audio_sent = True

    def on_synthesis_done(self, text: str | None) -> None:
        """The TTS finished synthesising a sentence (``TTSSynthesisCompleteEvent``)."""
        response = self._response
        if response is None or not response.ledger.sentences:
            return
        if text is not None and text == response.ledger.sentences[-1].text:
            response.last_synthesised = True
        if response.last_synthesised and response.spoken_all():
            self._end(response, Status.COMPLETED)

    def on_epoch(self, epoch: int) -> None:
        """Barge-in: stale agent audio stops at once and the response ends cancelled."""
        self._output.reset()
        response = self._response
        if response is not None and response.epoch < epoch:
            # Its output is stale from now on (dropped on arrival). The LLM's
            # interrupt settles the reply; the speaker model reports what was
            # heard (a client's truncate may correct it later).
            response.llm_settled = True
            response.heard_reported = True
            self._cut = response
            self._timers.arm("cut", CUT_GRACE_S, self._end_cut)

    def _end_cut(self) -> None:
        """End the response a barge-in cut (after the speech_started that caused it)."""
        response, self._cut = self._cut, None
        self._timers.cancel("cut")
        if response is not None:
            reason = "client_cancelled" if response.cancel_requested else "turn_detected"
            self._end(response, Status.CANCELLED, reason=reason)

    async def speaker_epoch(self, epoch: int) -> None:
        """Hand the new epoch to the speaker model (it drops what it holds)."""
        await self._speaker.on_epoch(epoch)

    def _on_playback_report(self, event: AudioPlaybackEvent) -> None:
        if event.interrupted and event.response_id:
            self._sim_heard[event.response_id] = event.heard_text

    def _end(self, response: Response, status: Status, reason: str | None = None,
             error: Mapping[str, Any] | None = None) -> None:
        """Send the end of ``response``: the done events, then ``response.done``."""
        if response.done:
            return
        if status is Status.COMPLETED and not response.text_only:
            for tail in self._output.flush():  # the filters' last milliseconds
                self._send_audio(response, tail, None)
        if status is Status.COMPLETED and response.error is not None and not response.output_text:
            status, error = Status.FAILED, response.error
        response.status, response.reason = status, reason
        response.error = dict(error) if error is not None else response.error
        for name in ("llm", "idle"):
            self._timers.cancel(f"{name}:{response.id}")
        if response is self._response:
            self._response = None
        where = self._where(response)
        if response.text_only:
            self._send("response.output_text.done", **where, text=response.output_text)
        else:
            self._send("response.output_audio.done", **where)
            self._send("response.output_audio_transcript.done", **where,
                       transcript=response.spoken)
        self._send("response.content_part.done", **where, part=response.part())
        item = response.item()
        self._docs[response.item_id] = item
        self._send("response.output_item.done", response_id=response.id, output_index=0,
                   item=item)
        self._send("conversation.item.done", previous_item_id=self._before(response.item_id),
                   item=item)
        self._send("response.done", response=response.resource())
        if status is Status.CANCELLED and response.heard is None:
            response.heard = self._sim_heard.get(response.llm_id or "", response.spoken)
            # While the speaker model plays, the barge-in it gets reports what was heard.
            response.heard_reported = response.heard_reported or self._speaker.playing
            self._report_heard(response)

    def _report_heard(self, response: Response) -> None:
        """Cut the LLM's history of ``response`` to what the client heard (once it is settled)."""
        if (response.heard_reported or not response.llm_settled or response.llm_id is None
                or response.heard is None):
            return
        response.heard_reported = True
        self._publish(PLAYBACK, AudioPlaybackEvent(
            playing=self._speaker.playing, epoch=response.epoch, response_id=response.llm_id,
            played_ms=response.audio_ms, heard_text=response.heard, interrupted=True,
            plugin_name=PLUGIN_NAME))

    # -- helpers ---------------------------------------------------------------------------
    def _mine(self, participant: Participant | None) -> bool:
        return participant is None or participant.id in ("", self.participant.id)

    @staticmethod
    def _where(response: Response) -> JSON:
        return {"response_id": response.id, "item_id": response.item_id, "output_index": 0,
                "content_index": 0}

    def _last_item(self) -> str | None:
        return self._items[-1] if self._items else None

    def _before(self, item_id: str) -> str | None:
        index = self._items.index(item_id) if item_id in self._items else 0
        return self._items[index - 1] if index > 0 else None

    def _remember(self, doc: JSON) -> None:
        self._items.append(doc["id"])
        self._docs[doc["id"]] = doc

    def _send(self, kind: str, **fields: Any) -> None:
        if not self._closed:
            self._send_event(server_event(kind, **fields))

    def _publish(self, stream: str, value: BaseEvent | PcmData) -> None:
        self._ctx.publish(stream, value)


def _ms_field(value: object, default: float) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) \
        else default


def _with_transcript(item: JSON, transcript: str) -> JSON:
    for part in item.get("content", []):
        if "transcript" in part:
            part["transcript"] = transcript
    return item
