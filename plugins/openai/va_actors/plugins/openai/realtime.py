"""``Realtime``: OpenAI's GA Realtime API (speech to speech) over one WebSocket.

The client side of ``wss://api.openai.com/v1/realtime?model=...`` (or any
server speaking the same protocol, through ``base_url``): user audio goes up
as ``input_audio_buffer.append`` (pcm16, 24 kHz, resampled once per stream),
the model's speech comes back as ``response.output_audio.delta`` and leaves
as epoch-stamped :class:`RealtimeAudioOutputEvent` s, with both sides'
transcripts, turn events from the server's VAD, and registered functions
called and answered.

Beyond what Vision Agents' and pipecat's clients do:

- barge-in sends ``response.cancel`` and ``conversation.item.truncate`` at the
  ms the speaker actually played (from its playback reports), so the model
  remembers what the user heard, not what it generated;
- a dropped socket is reopened with the shared :class:`Backoff` and the
  conversation so far (text, function calls and outputs) is given back to
  the new session; audio spoken meanwhile is kept (bounded) and sent after;
- an authentication failure is one permanent error, never a retry loop.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import collections
import contextlib
import dataclasses
import logging
import os
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from va_actors.core import llm
from va_actors.core.audio import AudioFormat, PcmData, Resampler
from va_actors.core.backoff import Backoff, RetriesExhausted
from va_actors.core.edge.events import AudioPlaybackEvent
from va_actors.core.edge.types import Participant
from va_actors.core.llm import (
    LLMResponseFinalEvent,
    NormalizedToolCallItem,
    RealtimeAgentSpeechTranscriptionEvent,
    RealtimeUserSpeechTranscriptionEvent,
    ToolSchema,
)
from va_actors.core.llm.conversation import Message
from va_actors.core.turn_detection import TurnEndedEvent, TurnStartedEvent

from ._realtime_errors import (
    RealtimeAPIError,
    RealtimeAuthError,
    RealtimeClientError,
    RealtimeConnectionError,
    RealtimeProtocolError,
)
from ._realtime_heard import HeardTracker
from ._realtime_items import ConversationItems, Item
from ._realtime_session import (
    SAMPLE_RATE,
    SessionConfig,
    transcription_setting,
    turn_detection_setting,
)
from ._realtime_socket import Closed, RealtimeSocket, Redactor, realtime_url
from .llm import API_KEY_ENV, _as_backoff, _import_tool

__all__ = ["DEFAULT_REALTIME_URL", "DEFAULT_RECONNECT", "Realtime"]

logger = logging.getLogger(__name__)

DEFAULT_REALTIME_URL = "wss://api.openai.com/v1/realtime"
DEFAULT_RECONNECT = Backoff(initial=0.5, factor=2.0, cap=8.0, max_attempts=6)
"""Six attempts over about 15 s (0.5, 1, 2, 4, 8 s apart, with jitter)."""

_BYTES_PER_MS = SAMPLE_RATE * 2 / 1000  # pcm16 mono
_MIN_COMMIT_MS = 100.0  # the server refuses to commit less
_BENIGN_ERRORS = frozenset({"response_cancel_not_active"})
_KNOWN_IGNORED = frozenset({
    "conversation.created", "conversation.item.created", "conversation.item.truncated",
    "conversation.item.retrieved", "conversation.item.input_audio_transcription.segment",
    "input_audio_buffer.cleared", "input_audio_buffer.timeout_triggered",
    "input_audio_buffer.dtmf_event_received",
    "output_audio_buffer.started", "output_audio_buffer.stopped", "output_audio_buffer.cleared",
    "rate_limits.updated", "response.content_part.added", "response.content_part.done",
    "response.output_item.done", "response.function_call_arguments.delta",
    "mcp_list_tools.in_progress", "mcp_list_tools.completed", "mcp_list_tools.failed",
})
_OPENAI_HOST = "api.openai.com"


def _new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:24]}"


def _heard_words(text: str, fraction: float) -> str:
    """The first ``fraction`` of the words of ``text`` (rounded down, as the speaker does)."""
    words = text.split()
    return " ".join(words[: int(len(words) * max(0.0, min(1.0, fraction)))])


def _str(value: object) -> str | None:
    return value if isinstance(value, str) else None


class _Transient(Exception):
    """Internal: wraps a failure the reconnect policy may retry."""

    def __init__(self, error: RealtimeClientError) -> None:
        super().__init__(str(error))
        self.error = error


@dataclass
class _Response:
    """What the client knows of one server response."""

    id: str
    epoch: int
    cancelled: bool = False
    """Barge-in: the rest of its audio and transcript is not passed on."""
    items: list[str] = field(default_factory=list)
    calls: list[NormalizedToolCallItem] = field(default_factory=list)
    audio: bool = False
    texts: dict[str, str] = field(default_factory=dict)


class Realtime(llm.Realtime):
    """OpenAI Realtime (GA) speech-to-speech over a WebSocket.

    Args:
        model: ``gpt-realtime`` or another Realtime model (sent as ``?model=``).
        base_url: the WebSocket endpoint; any server speaking the GA protocol.
        api_key: bearer token; default ``$OPENAI_API_KEY``. Never logged.
        voice: ``audio.output.voice`` (``marin``, ``cedar``, ``alloy``...).
        instructions: system instructions (``@file.md`` references expanded).
        turn_detection: ``"server_vad"``, ``"semantic_vad"``, a table with
            the mode's options, or None / ``"none"``: then the pipeline's turn
            detector ends turns (:meth:`flush` commits and asks for a response).
        input_transcription: model that transcribes the user (user
            transcripts), or None / ``"none"``.
        output_modalities: ``["audio"]`` (speech with its transcript) or ``["text"]``.
        session: more ``session.update`` fields, merged last.
        tools: functions the model may call (callables or ``"module:function"``).
        tool_timeout_s: limit for one tool call.
        max_tool_rounds: tool responses in a row before the model must answer
            without tools.
        connect_timeout_s: limit for the handshake and for ``session.created`` /
            ``session.updated``.
        reconnect: backoff for opening the socket and reopening a dropped one
            (a Backoff or a table of its fields; None: one attempt).
        offline_audio_s: user audio kept while reconnecting, sent once back.
        truncate_wait_ms: after a barge-in, how long to wait for the speaker's
            report of where it stopped before truncating at the estimate.
        http_session: an aiohttp session to use (not closed by :meth:`close`).
        fps: video frames per second (unused: this client takes no video).
    """

    provider_name = "openai"

    def __init__(
        self,
        model: str = "gpt-realtime",
        base_url: str = DEFAULT_REALTIME_URL,
        api_key: str | None = None,
        *,
        voice: str | None = "marin",
        instructions: str | None = None,
        turn_detection: str | Mapping[str, Any] | None = "server_vad",
        input_transcription: str | Mapping[str, Any] | None = "gpt-4o-mini-transcribe",
        output_modalities: Sequence[str] = ("audio",),
        session: Mapping[str, Any] | None = None,
        tools: Sequence[str | Callable[..., Any]] | None = None,
        tool_timeout_s: float = 30.0,
        max_tool_rounds: int | None = None,
        connect_timeout_s: float = 10.0,
        reconnect: Backoff | Mapping[str, Any] | None = DEFAULT_RECONNECT,
        offline_audio_s: float = 5.0,
        truncate_wait_ms: float = 300.0,
        http_session: aiohttp.ClientSession | None = None,
        fps: float = 1,
    ) -> None:
        if not model:
            raise ValueError("model must name the Realtime model (e.g. 'gpt-realtime')")
        for name, value in (("connect_timeout_s", connect_timeout_s),
                            ("tool_timeout_s", tool_timeout_s)):
            if value <= 0:
                raise ValueError(f"{name} must be positive, got {value}")
        if offline_audio_s < 0 or truncate_wait_ms < 0:
            raise ValueError("offline_audio_s and truncate_wait_ms must be >= 0")
        super().__init__(fps=fps, instructions=instructions, max_tool_rounds=max_tool_rounds)
        self.model = model
        self.base_url = base_url
        key = api_key or os.environ.get(API_KEY_ENV) or None
        if key is None and urlsplit(base_url).hostname == _OPENAI_HOST:
            raise ValueError(f"an API key is needed for {_OPENAI_HOST}: set {API_KEY_ENV} "
                             "or pass api_key")
        self._api_key = key
        self._url = realtime_url(base_url, model)
        self._redact = Redactor(key, self._url)
        self.config = SessionConfig(
            voice=voice, turn_detection=turn_detection_setting(turn_detection),
            transcription=transcription_setting(input_transcription),
            output_modalities=tuple(output_modalities), extra=dict(session or {}))
        self.tool_timeout_s = tool_timeout_s
        self.connect_timeout_s = connect_timeout_s
        self.reconnect_policy = dataclasses.replace(_as_backoff(reconnect),
                                                    retry_on=(_Transient,))
        self.truncate_wait_s = truncate_wait_ms / 1000
        self._offline_max_ms = offline_audio_s * 1000
        self._own_http = http_session is None
        self._http = http_session
        for tool in tools or ():
            self.register_function(_import_tool(tool) if isinstance(tool, str) else tool)

        self._socket: RealtimeSocket | None = None
        self._ready = asyncio.Event()
        """Set while a session is up (the socket is open and restored)."""
        self._reader: asyncio.Task[None] | None = None
        self._reconnecting: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closed = False
        self._failure: RealtimeClientError | None = None
        self._handlers = self._handler_table()
        self._resamplers: dict[str, Resampler] = {}
        self._offline: collections.deque[tuple[str, float]] = collections.deque()
        self._offline_ms = 0.0
        self._uncommitted_ms = 0.0
        self._items = ConversationItems()
        self._heard = HeardTracker()
        self._responses: collections.OrderedDict[str, _Response] = collections.OrderedDict()
        self._active: str | None = None
        self._truncating: set[str] = set()
        self._running_calls: set[str] = set()
        self._respond_after_restore = False
        self._restore_on_connect = False
        self._queued_create: dict[str, Any] | None = None
        self._user_speaking = False
        self._tool_rounds = 0
        self.provider_session_id: str | None = None
        self.session_state: dict[str, Any] = {}
        """The effective session the server last reported (``session.updated``)."""
        self.unknown_events: collections.Counter[str] = collections.Counter()
        self.malformed_events = 0
        self.dropped_input_ms = 0.0
        self.connects = 0
        self.truncations: list[tuple[str, int]] = []
        """``(item_id, audio_end_ms)`` of every truncation sent, in order."""

    def __repr__(self) -> str:
        # No key: reprs end up in logs and tracebacks.
        return (f"{type(self).__name__}(model={self.model!r}, "
                f"base_url={self._redact.display_url!r})")

    @property
    def conversation_items(self) -> ConversationItems:
        """The mirror of the server's conversation (what a new socket is given back)."""
        return self._items

    def restore_conversation(self, messages: Iterable[Message], *, respond: bool = False,
                             ) -> None:
        """Seed the next session with ``messages`` (as on a reconnect), then answer if owed."""
        restored = list(messages)
        super().restore_conversation(restored)
        for message in restored:
            if message.role in ("user", "assistant", "system") and message.content.strip():
                self._items.add(Item(id=message.id, type="message", role=message.role,
                                     text=message.content, truncated=message.interrupted))
        self._restore_on_connect = bool(restored)
        self._respond_after_restore = respond and bool(restored)
        socket = self._socket
        if socket is not None and restored:  # connected already (a warm spare): now
            task = asyncio.get_running_loop().create_task(self._restore(socket))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    # -- connection -------------------------------------------------------------------
    async def connect(self) -> None:
        """Open the session: handshake, ``session.created``, ``session.update``.

        Transient failures are retried with ``reconnect``. Raises
        :class:`RealtimeAuthError` at once for a refused key (after one error
        event), or the last :class:`RealtimeClientError` when retries run out.
        """
        if self._closed:
            raise RuntimeError(f"{self!r} is closed")
        if self._failure is not None:
            raise self._failure
        if self._socket is not None:
            return
        if self._reconnecting is not None and not self._reconnecting.done():
            await asyncio.shield(self._reconnecting)
            if self._failure is not None:
                raise self._failure
            return
        try:
            await self._open_with_retries(restore=self._restore_on_connect)
        except RealtimeClientError as exc:
            # A refused key is final; a server that stays unreachable may come back.
            self._report_failure(exc, context="connect", final=not exc.transient)
            raise

    async def _open_with_retries(self, *, restore: bool) -> None:
        def on_retry(attempt: int, error: BaseException, delay: float) -> None:
            logger.warning("%s: connecting failed (attempt %d: %s); retrying in %.2f s",
                           self.provider_name, attempt, error, delay)

        async def attempt() -> None:
            try:
                await self._open(restore=restore)
            except RealtimeClientError as exc:
                if exc.transient and not self._closed:
                    raise _Transient(exc) from None
                raise

        try:
            await self.reconnect_policy.retry(attempt, on_retry=on_retry)
        except RetriesExhausted as exc:
            last = exc.last
            if not isinstance(last, _Transient):  # pragma: no cover - retry_on guarantees it
                raise
            last.error.attempts = exc.attempts
            raise last.error from None

    def _http_session(self) -> aiohttp.ClientSession:
        if self._http is None or self._http.closed:
            if not self._own_http:
                raise RuntimeError("the http_session given to Realtime is closed")
            self._http = aiohttp.ClientSession()
        return self._http

    async def _open(self, *, restore: bool) -> None:
        self.connects += 1
        socket = await RealtimeSocket.open(self._http_session(), self._url, self._api_key,
                                           timeout_s=self.connect_timeout_s,
                                           redact=self._redact)
        reader: asyncio.Task[None] | None = None
        try:
            await self._handshake(socket)
            reader = asyncio.create_task(self._read(socket),
                                         name=f"{self.provider_name}-realtime-read")
            if restore:
                await self._restore(socket)
            # New audio waits in the offline queue until this is done: order is kept.
            await self._send_offline_audio(socket)
            if self._closed:
                raise RealtimeConnectionError("closed while connecting")
        except BaseException:
            if reader is not None:
                reader.cancel()
            await socket.close()
            raise
        self._socket, self._reader = socket, reader
        self._ready.set()
        self._emit_connected_event(
            session_config={**self.config.summary(), "model": self.model,
                            "session_id": self.provider_session_id, "restored": restore},
            capabilities=["audio", "text", "tools"])
        if reader.done():  # the socket died while it was being set up
            self._lost(socket, Closed(None, "closed during set-up"))

    async def _handshake(self, socket: RealtimeSocket) -> None:
        """``session.created``, then our ``session.update`` and the server's ``session.updated``."""
        try:
            async with asyncio.timeout(self.connect_timeout_s):
                created = await self._expect(socket, "session.created", None)
                session = created.get("session")
                if isinstance(session, Mapping):
                    self.provider_session_id = _str(session.get("id"))
                update_id = _new_id("event")
                await socket.send({"type": "session.update", "event_id": update_id,
                                   "session": self.config_session()})
                updated = await self._expect(socket, "session.updated", update_id)
        except TimeoutError:
            raise RealtimeConnectionError(
                f"{self._redact.display_url} did not complete the session set-up "
                f"(session.created, session.updated) within {self.connect_timeout_s:g} s"
            ) from None
        state = updated.get("session")
        self.session_state = dict(state) if isinstance(state, Mapping) else {}

    def config_session(self) -> dict[str, Any]:
        """The ``session`` object this client sends in ``session.update``."""
        config = dataclasses.replace(self.config, instructions=self.instructions)
        return config.session(self._get_tools_for_provider())

    async def _expect(self, socket: RealtimeSocket, wanted: str,
                      update_id: str | None) -> dict[str, Any]:
        """Read until a ``wanted`` event; an ``error`` here fails the set-up."""
        while True:
            got = await socket.receive()
            if isinstance(got, Closed):
                raise RealtimeConnectionError(
                    f"{self._redact.display_url} closed the socket during the session set-up "
                    f"(code {got.code}{': ' + got.reason if got.reason else ''})")
            if isinstance(got, RealtimeProtocolError):
                self._on_malformed(got)
                continue
            if got.type == wanted:
                return got.event
            if got.type == "error":
                error = self._api_error(got.event)
                if isinstance(error, RealtimeAPIError) and update_id is not None \
                        and error.event_id == update_id:
                    raise RealtimeAPIError(f"the server rejected session.update: {error.detail}",
                                           error_type=error.error_type, code=error.code,
                                           param=error.param, event_id=error.event_id,
                                           permanent=True)
                if not error.transient:
                    raise error
            await self._dispatch(got.event)

    async def _read(self, socket: RealtimeSocket) -> None:
        """The receive loop of one socket; a drop starts a reconnect."""
        ended = Closed(None, "")
        while True:
            got = await socket.receive()
            if isinstance(got, Closed):
                ended = got
                break
            if isinstance(got, RealtimeProtocolError):
                self._on_malformed(got)
                continue
            try:
                await self._dispatch(got.event)
            except Exception as exc:  # a handler bug must not end the session
                logger.exception("%s: handling %s failed", self.provider_name, got.type)
                self._emit_error_event(exc, context=f"handling {got.type}", is_recoverable=True)
        self._lost(socket, ended)

    def _lost(self, socket: RealtimeSocket, ended: Closed) -> None:
        if self._closed or self._socket is not socket:
            return
        self._socket = None
        self._ready.clear()
        self._active = None
        self._user_speaking = False
        reason = f"socket closed (code {ended.code}{': ' + ended.reason if ended.reason else ''})"
        logger.warning("%s: %s; reconnecting", self.provider_name, reason)
        self._emit_disconnected_event(reason, clean=False)
        if self._failure is not None:
            return  # a permanent error ended it: no reconnect
        self._reconnecting = asyncio.create_task(self._reconnect(),
                                                 name=f"{self.provider_name}-reconnect")

    async def _reconnect(self) -> None:
        try:
            await self._open_with_retries(restore=True)
        except RealtimeClientError as exc:
            self._report_failure(exc, context="reconnect", final=True)

    def _report_failure(self, error: RealtimeClientError, *, context: str,
                        final: bool) -> None:
        """One non-recoverable error event; ``final``: no more connection attempts."""
        if self._failure is not None:
            return
        if final:
            self._failure = error
        logger.error("%s: %s failed%s: %s", self.provider_name, context,
                     " for good" if final else "", error)
        self._emit_error_event(error, context=context, is_recoverable=False)

    async def _restore(self, socket: RealtimeSocket) -> None:
        """Give a new session the conversation so far, then any response still owed."""
        events = self._items.restore_events(frozenset(self._running_calls))
        for event in events:
            await socket.send(event)
        self._heard.forget()
        self._responses.clear()
        self._truncating.clear()
        logger.info("%s: reconnected; restored %d conversation item(s)", self.provider_name,
                    len(events))
        if self._respond_after_restore:
            self._respond_after_restore = False
            await socket.send({"type": "response.create"})

    async def close(self) -> None:
        """Close the session: flag, tasks, socket, HTTP session (the guide's order)."""
        if self._closed:
            return
        self._closed = True
        tasks = [t for t in (self._reader, self._reconnecting, *self._tasks) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        was_connected = self.connected
        socket, self._socket = self._socket, None
        self._ready.clear()
        try:
            if socket is not None:
                await socket.close()
        finally:
            if self._own_http and self._http is not None:
                await self._http.close()
            self._http = None
        # The Realtime base declares close() abstract; LLM's stops the reply in flight.
        await llm.LLM.close(self)
        if was_connected:
            self._emit_disconnected_event("closed", clean=True)

    # -- sending ------------------------------------------------------------------------
    async def _send(self, event: Mapping[str, Any]) -> bool:
        """Send ``event`` if connected; False (logged) when there is no socket or it failed."""
        socket = self._socket
        if socket is None:
            logger.debug("%s: not connected; %s not sent", self.provider_name, event.get("type"))
            return False
        try:
            await socket.send(event)
        except RealtimeConnectionError as exc:
            logger.debug("%s: %s", self.provider_name, exc)
            return False
        return True

    async def _wait_ready(self) -> bool:
        """Wait for the session while it is being reopened (at most ``connect_timeout_s``)."""
        if self._ready.is_set():
            return True
        if self._closed or self._failure is not None or self._reconnecting is None \
                or self._reconnecting.done():
            return False
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.connect_timeout_s):
                await self._ready.wait()
        return self._ready.is_set()

    async def simple_audio_response(self, pcm: PcmData,
                                    participant: Participant | None = None) -> None:
        """Send user audio: resampled to 24 kHz mono pcm16 (one resampler per participant)."""
        if self._closed:
            return
        if participant is not None:
            self._current_participant = participant
        key = participant.id if participant is not None else ""
        resampler = self._resamplers.get(key)
        if resampler is None:
            resampler = self._resamplers[key] = Resampler(SAMPLE_RATE, 1, AudioFormat.S16)
        audio = resampler.process(pcm)
        if audio.empty:
            return
        data = audio.to_bytes()
        duration_ms = len(data) / _BYTES_PER_MS
        encoded = base64.b64encode(data).decode("ascii")
        if self._socket is not None and await self._send(
                {"type": "input_audio_buffer.append", "audio": encoded}):
            self._uncommitted_ms += duration_ms
            return
        self._keep_offline(encoded, duration_ms)

    def _keep_offline(self, encoded: str, duration_ms: float) -> None:
        if self._failure is not None or self._offline_max_ms <= 0:
            self.dropped_input_ms += duration_ms
            return
        self._offline.append((encoded, duration_ms))
        self._offline_ms += duration_ms
        while self._offline_ms > self._offline_max_ms and self._offline:
            _, dropped = self._offline.popleft()
            self._offline_ms -= dropped
            self.dropped_input_ms += dropped

    async def _send_offline_audio(self, socket: RealtimeSocket) -> None:
        while self._offline:
            encoded, duration_ms = self._offline.popleft()
            self._offline_ms -= duration_ms
            await socket.send({"type": "input_audio_buffer.append", "audio": encoded})
            self._uncommitted_ms += duration_ms
        self._offline_ms = 0.0

    async def simple_response(self, text: str, processors: Any = None,
                              participant: Participant | None = None) -> None:
        """Say ``text`` to the model as the user and ask for a (spoken) response."""
        del processors
        await self._wait_ready()  # asked while reconnecting: it goes to the new session
        item_id = _new_id("item")
        self._items.add(Item(id=item_id, type="message", role="user", text=text))
        self._conversation.add_message(
            "user", text, message_id=item_id,
            user_id=participant.user_id if participant is not None else None)
        self._tool_rounds = 0
        await self._send({"type": "conversation.item.create", "item": {
            "id": item_id, "type": "message", "role": "user",
            "content": [{"type": "input_text", "text": text}]}})
        await self.create_response()

    async def create_response(self, **response: Any) -> None:
        """``response.create`` (``response`` fields override the session for this one).

        While a response is still being generated the request waits for its
        ``response.done`` (the server refuses a second active response).
        """
        event: dict[str, Any] = {"type": "response.create"}
        if response:
            event["response"] = response
        if self._active is not None:
            self._queued_create = event
            return
        await self._send(event)

    async def commit_audio(self) -> bool:
        """``input_audio_buffer.commit``; False (nothing sent) with under 100 ms uncommitted."""
        if self._uncommitted_ms < _MIN_COMMIT_MS:
            return False
        self._uncommitted_ms = 0.0
        return await self._send({"type": "input_audio_buffer.commit"})

    async def clear_audio(self) -> None:
        """``input_audio_buffer.clear``: drop audio not yet committed."""
        self._uncommitted_ms = 0.0
        await self._send({"type": "input_audio_buffer.clear"})

    async def flush(self, participant: Participant | None = None) -> None:
        """The pipeline's turn detector ended the user's turn.

        Without server turn detection this commits the input and asks for a
        response; with it the server decides, and this does nothing.
        """
        del participant
        if self.config.turn_detection is None and await self.commit_audio():
            self._tool_rounds = 0
            await self.create_response()

    async def update_session(self) -> None:
        """Send ``session.update`` again (after changing instructions or functions)."""
        await self._send({"type": "session.update", "session": self.config_session()})

    # -- barge-in -------------------------------------------------------------------
    async def interrupt(self, epoch: int | None = None) -> None:
        """The session epoch moved (barge-in): cancel and truncate what belongs to older ones."""
        del epoch  # the base has already advanced self.epoch
        await self._barge_in(older_only=True)

    def on_playback(self, event: AudioPlaybackEvent) -> None:
        """A speaker's playback report: how much of a response the user heard."""
        self._heard.report(event.response_id, event.played_ms, event.playing,
                           event.interrupted)

    async def _barge_in(self, *, older_only: bool, cancel_active: bool = True) -> None:
        """Stop the response being generated and truncate the one being heard.

        ``older_only``: only responses that began before the current epoch.
        """
        self._tool_rounds = 0
        active = self._responses.get(self._active) if self._active else None
        if cancel_active and active is not None and not active.cancelled \
                and (not older_only or active.epoch < self.epoch):
            active.cancelled = True
            await self._send({"type": "response.cancel", "response_id": active.id})
        target = self._heard.latest_unheard()
        if target is None or target in self._truncating:
            return
        response = self._responses.get(target)
        if older_only and response is not None and response.epoch >= self.epoch:
            return
        if response is not None:
            response.cancelled = True
        self._truncating.add(target)
        self._spawn(self._truncate_to_heard(target), "truncate")

    async def _truncate_to_heard(self, response_id: str) -> None:
        if self._heard.reports_seen and self.truncate_wait_s > 0:
            # The speaker stops at the epoch bump and reports where: the exact figure.
            await self._heard.wait_settled(response_id, self.truncate_wait_s)
        for cut in self._heard.cuts(response_id):
            item = self._items.get(cut.item_id)
            heard = _heard_words(item.text if item is not None else "", cut.fraction)
            self._items.truncate(cut.item_id, heard)
            self._conversation.truncate_message(cut.item_id, heard)
            self.truncations.append((cut.item_id, cut.audio_end_ms))
            logger.info("%s: barge-in: %s truncated at %d ms (heard %r)", self.provider_name,
                        cut.item_id, cut.audio_end_ms, heard)
            await self._send({"type": "conversation.item.truncate", "item_id": cut.item_id,
                              "content_index": 0, "audio_end_ms": cut.audio_end_ms})
            self.events.send(RealtimeAgentSpeechTranscriptionEvent(
                session_id=self.session_id, plugin_name=self.provider_name, text=heard,
                mode="final", response_id=response_id, interrupted=True))

    def _spawn(self, coro: Awaitable[Any], name: str) -> None:
        task = asyncio.ensure_future(coro)
        task.set_name(f"{self.provider_name}-{name}")
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            assert exc is not None
            logger.error("%s: %s failed: %s", self.provider_name, task.get_name(), exc)
            self._emit_error_event(exc, context=task.get_name(), is_recoverable=True)

    # -- server events ----------------------------------------------------------------
    def _handler_table(self) -> dict[str, Callable[[dict[str, Any]], Awaitable[None]]]:
        return {
            "session.created": self._on_session,
            "session.updated": self._on_session,
            "input_audio_buffer.speech_started": self._on_speech_started,
            "input_audio_buffer.speech_stopped": self._on_speech_stopped,
            "input_audio_buffer.committed": self._on_committed,
            "conversation.item.added": self._on_item,
            "conversation.item.done": self._on_item,
            "conversation.item.deleted": self._on_item_deleted,
            "conversation.item.input_audio_transcription.delta": self._on_user_delta,
            "conversation.item.input_audio_transcription.completed": self._on_user_transcript,
            "conversation.item.input_audio_transcription.failed": self._on_user_failed,
            "response.created": self._on_response_created,
            "response.output_item.added": self._on_output_item,
            "response.output_audio.delta": self._on_audio_delta,
            "response.output_audio.done": self._on_audio_done,
            "response.output_audio_transcript.delta": self._on_agent_delta,
            "response.output_text.delta": self._on_agent_delta,
            "response.output_audio_transcript.done": self._on_agent_done,
            "response.output_text.done": self._on_agent_done,
            "response.function_call_arguments.done": self._on_call,
            "response.done": self._on_response_done,
            "error": self._on_error,
        }

    async def _dispatch(self, event: dict[str, Any]) -> None:
        kind = str(event["type"])
        handler = self._handlers.get(kind)
        if handler is not None:
            await handler(event)
        elif kind not in _KNOWN_IGNORED:
            self.unknown_events[kind] += 1
            if self.unknown_events[kind] == 1:
                logger.info("%s: ignoring server event type %r (not part of what this "
                            "client handles; logged once)", self.provider_name, kind)

    def _on_malformed(self, error: RealtimeProtocolError) -> None:
        self.malformed_events += 1
        logger.warning("%s: %s", self.provider_name, error)
        self._emit_error_event(error, context="server message", is_recoverable=True)

    def _api_error(self, event: Mapping[str, Any]) -> RealtimeAPIError | RealtimeAuthError:
        body = event.get("error")
        error = body if isinstance(body, Mapping) else {}
        code, kind = _str(error.get("code")), _str(error.get("type"))
        message = self._redact(_str(error.get("message")) or "no message")
        label = ", ".join(x for x in (kind, code) if x)
        detail = f"server error{f' ({label})' if label else ''}: {message}"
        if code == "invalid_api_key":
            return RealtimeAuthError(f"{detail} (check api_key / {API_KEY_ENV})")
        return RealtimeAPIError(detail, error_type=kind, code=code,
                                param=_str(error.get("param")),
                                event_id=_str(error.get("event_id")))

    async def _on_error(self, event: dict[str, Any]) -> None:
        error = self._api_error(event)
        if isinstance(error, RealtimeAPIError) and error.code in _BENIGN_ERRORS:
            logger.debug("%s: %s", self.provider_name, error)
            return
        if not error.transient:
            self._report_failure(error, context="server error event", final=True)
            socket, self._socket = self._socket, None
            self._ready.clear()
            if socket is not None:
                await socket.close()
            self._emit_disconnected_event(str(error), clean=False)
            return
        logger.warning("%s: %s", self.provider_name, error)
        self._emit_error_event(error, context="server error event", is_recoverable=True)

    async def _on_session(self, event: dict[str, Any]) -> None:
        session = event.get("session")
        if event.get("type") == "session.updated" and isinstance(session, Mapping):
            self.session_state = dict(session)

    async def _on_speech_started(self, event: dict[str, Any]) -> None:
        self._user_speaking = True
        self.events.send(TurnStartedEvent(
            plugin_name=self.provider_name, session_id=self.session_id,
            participant=self._current_participant,
            custom={"audio_start_ms": event.get("audio_start_ms"),
                    "item_id": event.get("item_id")}))
        setting = self.config.turn_detection or {}
        await self._barge_in(older_only=False,
                             cancel_active=setting.get("interrupt_response", True) is not False)

    async def _on_speech_stopped(self, event: dict[str, Any]) -> None:
        self._user_speaking = False
        self.events.send(TurnEndedEvent(
            plugin_name=self.provider_name, session_id=self.session_id,
            participant=self._current_participant,
            trailing_silence_ms=self.config.silence_ms,
            custom={"audio_end_ms": event.get("audio_end_ms"),
                    "item_id": event.get("item_id")}))

    async def _on_committed(self, event: dict[str, Any]) -> None:
        self._uncommitted_ms = 0.0
        self._tool_rounds = 0
        item_id = _str(event.get("item_id"))
        if item_id is not None:
            self._items.add(Item(id=item_id, type="message", role="user", audio=True))
            self._user_placeholder(item_id)

    def _user_placeholder(self, item_id: str) -> None:
        # In conversation order now; the transcript fills it in later.
        if self._conversation.get(item_id) is None:
            who = self._current_participant
            self._conversation.add_message("user", "", message_id=item_id, completed=False,
                                           user_id=who.user_id if who is not None else None)

    async def _on_item(self, event: dict[str, Any]) -> None:
        data = event.get("item")
        if not isinstance(data, Mapping):
            return
        item = self._items.upsert(data)
        if item is None or item.type != "message":
            return
        if item.role == "user" and item.text:
            self._conversation.upsert_message("user", item.text, item.id, completed=True,
                                              replace=True)
        elif item.role == "user" and item.audio:
            self._user_placeholder(item.id)
        elif item.role == "assistant" and self._conversation.get(item.id) is None:
            self._conversation.add_message("assistant", item.text, message_id=item.id,
                                           completed=False)

    async def _on_item_deleted(self, event: dict[str, Any]) -> None:
        item_id = _str(event.get("item_id"))
        if item_id is not None:
            self._items.remove(item_id)
            self._conversation.remove_message(item_id)

    async def _on_user_delta(self, event: dict[str, Any]) -> None:
        delta = _str(event.get("delta"))
        if delta:
            self.events.send(RealtimeUserSpeechTranscriptionEvent(
                session_id=self.session_id, plugin_name=self.provider_name, text=delta,
                mode="delta", participant=self._current_participant))

    async def _on_user_transcript(self, event: dict[str, Any]) -> None:
        item_id = _str(event.get("item_id")) or _new_id("item")
        text = (_str(event.get("transcript")) or "").strip()
        self._items.set_text(item_id, text, role="user")
        who = self._current_participant
        self._conversation.upsert_message("user", text, item_id, completed=True, replace=True,
                                          user_id=who.user_id if who is not None else None)
        if text:
            self.events.send(RealtimeUserSpeechTranscriptionEvent(
                session_id=self.session_id, plugin_name=self.provider_name, text=text,
                mode="final", participant=who))

    async def _on_user_failed(self, event: dict[str, Any]) -> None:
        error = self._api_error(event)
        self._emit_error_event(RealtimeAPIError(
            f"transcribing user item {event.get('item_id')} failed: {error.detail}",
            code=getattr(error, "code", None)), context="input transcription",
            is_recoverable=True)

    def _response(self, response_id: str) -> _Response:
        response = self._responses.get(response_id)
        if response is None:
            response = self._responses[response_id] = _Response(
                response_id, self._start_response(response_id))
            while len(self._responses) > 64:
                self._responses.popitem(last=False)
        return response

    async def _on_response_created(self, event: dict[str, Any]) -> None:
        body = event.get("response")
        response_id = _str(body.get("id")) if isinstance(body, Mapping) else None
        if response_id is not None:
            self._response(response_id)
            self._active = response_id

    async def _on_output_item(self, event: dict[str, Any]) -> None:
        data, response_id = event.get("item"), _str(event.get("response_id"))
        if not isinstance(data, Mapping) or response_id is None:
            return
        item = self._items.upsert(data)
        if item is None:
            return
        self._response(response_id).items.append(item.id)
        if item.type == "message" and item.role == "assistant" \
                and self._conversation.get(item.id) is None:
            self._conversation.add_message("assistant", "", message_id=item.id, completed=False)

    async def _on_audio_delta(self, event: dict[str, Any]) -> None:
        response_id, item_id = _str(event.get("response_id")), _str(event.get("item_id"))
        delta = _str(event.get("delta"))
        if response_id is None or item_id is None or delta is None:
            self._on_malformed(RealtimeProtocolError(
                "response.output_audio.delta without response_id, item_id or delta"))
            return
        try:
            data = base64.b64decode(delta, validate=True)
        except (binascii.Error, ValueError):
            self._on_malformed(RealtimeProtocolError(
                f"response.output_audio.delta of {response_id} is not base64"))
            return
        if not data:
            return
        pcm = PcmData.from_bytes(data, SAMPLE_RATE, AudioFormat.S16, channels=1)
        response = self._response(response_id)
        response.audio = True
        self._heard.audio(response_id, item_id, pcm.duration_ms)
        if response.cancelled:
            self.dropped_audio_chunks += 1
            return
        self._emit_audio_output_event(pcm, response_id)

    async def _on_audio_done(self, event: dict[str, Any]) -> None:
        response_id, item_id = _str(event.get("response_id")), _str(event.get("item_id"))
        if response_id is not None and item_id is not None:
            self._heard.audio_done(response_id, item_id)

    def _stale(self, response: _Response) -> bool:
        return response.cancelled or response.epoch < self.epoch

    async def _on_agent_delta(self, event: dict[str, Any]) -> None:
        response_id, item_id = _str(event.get("response_id")), _str(event.get("item_id"))
        delta = _str(event.get("delta"))
        if response_id is None or item_id is None or not delta:
            return
        response = self._response(response_id)
        response.texts[item_id] = response.texts.get(item_id, "") + delta
        item = self._items.append_text(item_id, delta)
        if item.truncated:
            return
        self._conversation.upsert_message("assistant", delta, item_id, completed=False)
        if not self._stale(response):
            self.events.send(RealtimeAgentSpeechTranscriptionEvent(
                session_id=self.session_id, plugin_name=self.provider_name, text=delta,
                mode="delta", response_id=response_id))

    async def _on_agent_done(self, event: dict[str, Any]) -> None:
        response_id, item_id = _str(event.get("response_id")), _str(event.get("item_id"))
        text = _str(event.get("transcript"))
        if text is None:
            text = _str(event.get("text"))
        if response_id is None or item_id is None or text is None:
            return
        response = self._response(response_id)
        response.texts[item_id] = text
        item = self._items.set_text(item_id, text, role="assistant")
        if item.truncated or self._stale(response):
            return  # the truncation reports what was heard instead
        self._conversation.upsert_message("assistant", text, item_id, completed=True,
                                          replace=True)
        self.events.send(RealtimeAgentSpeechTranscriptionEvent(
            session_id=self.session_id, plugin_name=self.provider_name, text=text,
            mode="final", response_id=response_id))

    async def _on_call(self, event: dict[str, Any]) -> None:
        response_id, call_id = _str(event.get("response_id")), _str(event.get("call_id"))
        name, item_id = _str(event.get("name")), _str(event.get("item_id"))
        if response_id is None or call_id is None or name is None:
            self._on_malformed(RealtimeProtocolError(
                "response.function_call_arguments.done without response_id, call_id or name"))
            return
        arguments = _str(event.get("arguments")) or ""
        self._response(response_id).calls.append(NormalizedToolCallItem(
            type="tool_call", name=name, arguments_json=arguments, id=call_id))
        if item_id is not None:
            self._items.upsert({"id": item_id, "type": "function_call", "call_id": call_id,
                                "name": name, "arguments": arguments})

    async def _on_response_done(self, event: dict[str, Any]) -> None:
        body = event.get("response")
        data = body if isinstance(body, Mapping) else {}
        response_id = _str(data.get("id"))
        if response_id is None:
            return
        if self._active == response_id:
            self._active = None
        response = self._response(response_id)
        status = _str(data.get("status")) or "completed"
        interrupted = status != "completed" or response.cancelled
        self._heard.response_done(response_id)
        if response.audio:
            self._emit_audio_output_done_event(response_id, interrupted=interrupted)
        usage = data.get("usage")
        usage = usage if isinstance(usage, Mapping) else {}
        self.events.send(LLMResponseFinalEvent(
            plugin_name=self.provider_name, session_id=self.session_id,
            text=" ".join(t for t in response.texts.values() if t),
            item_id=response.items[0] if response.items else None, model=self.model,
            input_tokens=_int(usage.get("input_tokens")),
            output_tokens=_int(usage.get("output_tokens")),
            total_tokens=_int(usage.get("total_tokens")), interrupted=interrupted,
            epoch=response.epoch))
        if status == "failed":
            self._emit_error_event(RealtimeAPIError(
                f"response {response_id} failed: {_status_details(data)}"),
                context="response", is_recoverable=True)
        elif status == "incomplete":
            logger.info("%s: response %s incomplete: %s", self.provider_name, response_id,
                        _status_details(data))
        queued, self._queued_create = self._queued_create, None
        if response.calls and status == "completed":
            # Its own response.create (after the outputs) also answers a queued request.
            self._spawn(self._run_tools(response), "tools")
        elif queued is not None:
            await self._send(queued)
        if response.calls and status != "completed":
            logger.info("%s: response %s ended %s; its %d tool call(s) are not run",
                        self.provider_name, response_id, status, len(response.calls))

    # -- tools ----------------------------------------------------------------------
    def _convert_tools_to_provider_format(self, tools: Sequence[ToolSchema]
                                          ) -> list[dict[str, Any]]:
        """Registered functions as Realtime tools (flat: ``type``, ``name``, ``parameters``)."""
        return [{"type": "function", "name": tool["name"],
                 "description": tool.get("description", ""),
                 "parameters": tool.get("parameters_schema")
                 or {"type": "object", "properties": {}}} for tool in tools]

    async def _run_tools(self, response: _Response) -> None:
        """Run a response's calls; send each output, then one ``response.create``."""
        ids = {str(call.get("id")) for call in response.calls}
        self._running_calls |= ids
        try:
            outcomes = await self._execute_tools(response.calls, timeout_s=self.tool_timeout_s)
            # Reconnecting: the restored session has the calls; the outputs go to it.
            await self._wait_ready()
        finally:
            self._running_calls -= ids
        for call, result, _error in outcomes:
            item_id = _new_id("item")
            output = self._sanitize_tool_output(result)
            call_id = str(call.get("id"))
            self._items.add(Item(id=item_id, type="function_call_output", call_id=call_id,
                                 output=output))
            await self._send({"type": "conversation.item.create", "item": {
                "id": item_id, "type": "function_call_output", "call_id": call_id,
                "output": output}})
        if response.epoch < self.epoch or self._user_speaking or self._active is not None:
            # The user spoke meanwhile: the outputs are in the conversation, and the
            # new turn's response will use them.
            logger.info("%s: tool results sent; no response asked (the user is speaking)",
                        self.provider_name)
            return
        self._tool_rounds += 1
        settings = {} if self._tool_rounds <= self.max_tool_rounds else {"tool_choice": "none"}
        event: dict[str, Any] = {"type": "response.create"}
        if settings:
            event["response"] = settings
        if not await self._send(event):
            self._respond_after_restore = True


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _status_details(response: Mapping[str, Any]) -> str:
    details = response.get("status_details")
    if not isinstance(details, Mapping):
        return "no details"
    error = details.get("error")
    parts = [str(details.get(k)) for k in ("type", "reason") if details.get(k)]
    if isinstance(error, Mapping):
        parts += [str(error.get(k)) for k in ("type", "code", "message") if error.get(k)]
    return ", ".join(parts) or "no details"
