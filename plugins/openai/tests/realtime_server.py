"""A scripted OpenAI Realtime (GA) server for the tests: aiohttp, WebSocket, 127.0.0.1:0.

It stands in for ``wss://api.openai.com/v1/realtime``, which cannot be reached
from here, and speaks the GA protocol as the API reference describes it:

- the handshake needs ``Authorization: Bearer <key>`` (401 otherwise, or, with
  ``auth_failure="error_event"``, an ``invalid_api_key`` error event and a
  close, which is what the API does for a malformed key) and ``?model=``; an
  ``OpenAI-Beta`` header gets the 4000 ``beta_api_shape_disabled`` close;
- ``session.created`` first; ``session.update`` is checked (``type`` must be
  ``realtime``, formats must be ``audio/pcm`` at 24 kHz) and merged, and
  answered with ``session.updated`` holding the whole effective session;
- ``input_audio_buffer.append`` (base64 pcm16) feeds an energy VAD shaped like
  server VAD: ``speech_started`` (with ``audio_start_ms`` including the
  prefix padding), ``speech_stopped`` after ``silence_duration_ms``, the
  commit (``input_audio_buffer.committed``, the user item added and done),
  the user transcript, and a response when ``create_response`` is on;
  ``commit`` / ``clear`` by hand too (an empty commit is an error);
- ``conversation.item.create`` (a ``function_call_output`` needs its call in
  the conversation), ``response.create``, ``response.cancel`` (error when
  nothing is active), ``conversation.item.truncate`` (assistant audio items
  only, not beyond the audio): answered as the API answers them;
- responses stream as the API streams them: ``response.created``,
  ``response.output_item.added``, ``conversation.item.added``,
  ``response.content_part.added``, transcript and audio deltas interleaved
  (audio faster than real time), the ``.done`` events, ``response.done``
  with usage and status (``cancelled`` with ``turn_detected`` or
  ``client_cancelled``). A tool-call reply streams its arguments in deltas.

Tests script it: the replies to give (:class:`Spoken`, :class:`ToolCall`),
the user transcripts, a drop mid-response, extra raw frames; and read what
each connection received (:class:`Connection`).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import copy
import itertools
import json
import wave
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from aiohttp import WSMsgType, web

from va_actors.core.audio import AudioFormat, PcmData, Resampler

RATE = 24000
BYTES_PER_MS = RATE * 2 // 1000
ROOT = Path(__file__).resolve().parents[3]
VOICE = ROOT / "launch" / "assets" / "voice"
_ids = itertools.count(1)


def new_id(prefix: str) -> str:
    return f"{prefix}_{next(_ids):06d}"


def load_voice(*names: str) -> bytes:
    """pcm16 at 24 kHz of the named WAVs of launch/assets/voice, one after another."""
    out = bytearray()
    for name in names:
        with wave.open(str(VOICE / name)) as w:
            rate, frames = w.getframerate(), w.readframes(w.getnframes())
        resampler = Resampler(RATE, 1, AudioFormat.S16)
        pcm = PcmData.from_bytes(frames, rate, AudioFormat.S16, channels=1)
        out += resampler.process(pcm).to_bytes() + resampler.flush().to_bytes()
    return bytes(out)


@dataclass
class Spoken:
    """A spoken reply: ``audio`` (pcm16 24 kHz) with its ``transcript``.

    Audio goes out in ``chunk_ms`` deltas every ``interval_s`` (faster than real
    time by default, as the API does), the transcript split over the first deltas.
    """

    transcript: str = "The summer is usually warm and sunny."
    audio: bytes = b""
    chunk_ms: int = 100
    interval_s: float = 0.02


@dataclass
class ToolCall:
    """A reply that calls a function, its JSON arguments streamed in ``pieces`` deltas."""

    name: str
    arguments: dict[str, Any]
    pieces: int = 3


Reply = Spoken | ToolCall


@dataclass
class Item:
    """An item of the server's conversation."""

    data: dict[str, Any]
    audio_ms: float = 0.0


@dataclass
class Connection:
    """One accepted socket: what it was sent and what it holds."""

    ws: web.WebSocketResponse
    request: web.Request
    session: dict[str, Any]
    received: list[dict[str, Any]] = field(default_factory=list)
    sent: list[dict[str, Any]] = field(default_factory=list)
    audio: bytearray = field(default_factory=bytearray)
    items: list[Item] = field(default_factory=list)
    response_task: asyncio.Task[None] | None = None
    response_id: str | None = None
    closed: asyncio.Event = field(default_factory=asyncio.Event)
    buffer: bytearray = field(default_factory=bytearray)
    """The input audio buffer: appended audio not yet committed."""
    # VAD state
    vad_rest: bytearray = field(default_factory=bytearray)
    vad_ms: float = 0.0
    speaking: bool = False
    silent_ms: float = 0.0
    vad_item: str | None = None

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        """The client events of type ``kind`` this connection received, in order."""
        return [e for e in self.received if e.get("type") == kind]

    def types(self) -> list[str]:
        """Types of the received client events, audio appends left out."""
        return [str(e.get("type")) for e in self.received
                if e.get("type") != "input_audio_buffer.append"]

    def errors(self) -> list[dict[str, Any]]:
        """The ``error`` events this connection sent."""
        return [e["error"] for e in self.sent if e.get("type") == "error"]

    def item(self, item_id: str) -> Item | None:
        return next((i for i in self.items if i.data.get("id") == item_id), None)

    async def send(self, event: dict[str, Any]) -> None:
        event.setdefault("event_id", new_id("event"))
        self.sent.append(event)
        if not self.ws.closed:
            await self.ws.send_str(json.dumps(event))

    async def send_raw(self, text: str) -> None:
        await self.ws.send_str(text)

    def drop(self) -> None:
        """Cut the TCP connection without a close frame (a network failure)."""
        transport = self.request.transport
        if transport is not None:
            transport.abort()


def default_session(model: str) -> dict[str, Any]:
    return {
        "type": "realtime", "object": "realtime.session", "id": new_id("sess"),
        "model": model, "output_modalities": ["audio"], "instructions": "Default instructions.",
        "tools": [], "tool_choice": "auto", "max_output_tokens": "inf",
        "audio": {
            "input": {"format": {"type": "audio/pcm", "rate": RATE}, "transcription": None,
                      "noise_reduction": None,
                      "turn_detection": {"type": "server_vad", "threshold": 0.5,
                                         "prefix_padding_ms": 300, "silence_duration_ms": 500,
                                         "create_response": True, "interrupt_response": True,
                                         "idle_timeout_ms": None}},
            "output": {"format": {"type": "audio/pcm", "rate": RATE}, "voice": "alloy",
                       "speed": 1.0}},
    }


def _merge(base: dict[str, Any], update: dict[str, Any]) -> None:
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = copy.deepcopy(value)


class RealtimeServer:
    """The scripted server; ``url`` is its ``ws://127.0.0.1:<port>/v1/realtime``.

    Attributes:
        replies: replies to give, in order (then ``default_reply`` forever).
        transcripts: user transcripts for committed audio, in order.
        auth_failure: ``"handshake"`` (401) or ``"error_event"`` for a wrong key.
        drop_after_deltas: cut the first connection after this many audio deltas.
        refuse_handshakes: answer this many upcoming handshakes with ``refuse_status``.
        on_connect: called with each new connection after ``session.created``.
        vad_threshold: RMS (int16) above which a 20 ms frame is speech.
    """

    def __init__(self, api_key: str = "sk-test-realtime-0123456789-secret") -> None:
        self.api_key = api_key
        self.replies: list[Reply] = []
        self.default_reply: Reply = Spoken("Here is a short joke for you.",
                                           load_voice("joke.wav"))
        self.transcripts: list[str] = []
        self.auth_failure = "handshake"
        self.drop_after_deltas: int | None = None
        self.refuse_handshakes = 0
        self.refuse_status = 503
        self.greet = True
        """Send ``session.created`` on connect (False: a server that never answers)."""
        self.on_connect: Callable[[Connection], Awaitable[None]] | None = None
        self.vad_threshold = 300.0
        self.handshakes = 0
        self.connections: list[Connection] = []
        self.headers: list[dict[str, str]] = []
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def start(self) -> RealtimeServer:
        app = web.Application()
        app.router.add_get("/v1/realtime", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None and server.sockets  # type: ignore[attr-defined]
        port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        self.url = f"ws://127.0.0.1:{port}/v1/realtime"
        return self

    async def stop(self) -> None:
        for conn in self.connections:
            if conn.response_task is not None:
                conn.response_task.cancel()
            with contextlib.suppress(Exception):
                await conn.ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    async def wait_connections(self, n: int, timeout: float = 5.0) -> Connection:
        """The ``n``-th connection (1-based) once it has had ``session.update``."""
        async with asyncio.timeout(timeout):
            while len(self.connections) < n or not self.connections[  # noqa: ASYNC110
                    n - 1].of_type("session.update"):
                await asyncio.sleep(0.005)
        return self.connections[n - 1]

    async def wait_for(self, conn: Connection, kind: str, count: int = 1,
                       timeout: float = 5.0) -> list[dict[str, Any]]:
        """Wait until ``conn`` received ``count`` client events of ``kind``."""
        async with asyncio.timeout(timeout):
            while len(conn.of_type(kind)) < count:  # noqa: ASYNC110 - polls the handler's record
                await asyncio.sleep(0.005)
        return conn.of_type(kind)

    # -- the socket -----------------------------------------------------------------
    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.handshakes += 1
        self.headers.append(dict(request.headers))
        if self.refuse_handshakes > 0:
            self.refuse_handshakes -= 1
            return web.json_response({"error": {"message": "The server is overloaded.",
                                                "type": "server_error"}},
                                     status=self.refuse_status)
        model = request.query.get("model")
        if not model:
            return web.json_response({"error": {"message": "Missing model", "type":
                                                "invalid_request_error"}}, status=400)
        authorized = request.headers.get("Authorization") == f"Bearer {self.api_key}"
        if not authorized and self.auth_failure == "handshake":
            return web.json_response({"error": {
                "message": "Incorrect API key provided.", "type": "invalid_request_error",
                "code": "invalid_api_key"}}, status=401)
        ws = web.WebSocketResponse(max_msg_size=16 * 1024 * 1024)
        await ws.prepare(request)
        conn = Connection(ws, request, default_session(model))
        if not authorized:
            await conn.send({"type": "error", "error": {
                "type": "invalid_request_error", "code": "invalid_api_key",
                "message": "Incorrect API key provided.", "param": None, "event_id": None}})
            await ws.close()
            return ws
        if "OpenAI-Beta" in request.headers:
            await ws.close(code=4000, message=b"beta_api_shape_disabled")
            return ws
        self.connections.append(conn)
        if self.greet:
            await conn.send({"type": "session.created",
                             "session": copy.deepcopy(conn.session)})
        if self.on_connect is not None:
            await self.on_connect(conn)
        try:
            async for msg in ws:
                if msg.type is WSMsgType.TEXT:
                    await self._on_client_event(conn, msg.data)
        finally:
            if conn.response_task is not None:
                conn.response_task.cancel()
            conn.closed.set()
        return ws

    async def _error(self, conn: Connection, message: str, code: str,
                     event: dict[str, Any] | None = None, param: str | None = None) -> None:
        await conn.send({"type": "error", "error": {
            "type": "invalid_request_error", "code": code, "message": message, "param": param,
            "event_id": (event or {}).get("event_id")}})

    async def _on_client_event(self, conn: Connection, text: str) -> None:
        try:
            event = json.loads(text)
        except ValueError:
            await self._error(conn, "Invalid JSON", "invalid_json")
            return
        conn.received.append(event)
        kind = event.get("type")
        handler = {
            "session.update": self._session_update,
            "input_audio_buffer.append": self._append,
            "input_audio_buffer.commit": self._commit_request,
            "input_audio_buffer.clear": self._clear,
            "conversation.item.create": self._item_create,
            "response.create": self._response_create,
            "response.cancel": self._response_cancel,
            "conversation.item.truncate": self._truncate,
        }.get(str(kind))
        if handler is None:
            await self._error(conn, f"Unknown event type {kind!r}", "unknown_event_type", event)
            return
        await handler(conn, event)

    async def _session_update(self, conn: Connection, event: dict[str, Any]) -> None:
        session = event.get("session") or {}
        if session.get("type") != "realtime":
            await self._error(conn, "session.type must be 'realtime'", "invalid_value", event,
                              "session.type")
            return
        audio = session.get("audio") or {}
        for side in ("input", "output"):
            fmt = (audio.get(side) or {}).get("format")
            if fmt is not None and fmt != {"type": "audio/pcm", "rate": RATE}:
                await self._error(conn, f"unsupported {side} format {fmt}", "invalid_value",
                                  event, f"session.audio.{side}.format")
                return
        _merge(conn.session, session)
        await conn.send({"type": "session.updated", "session": copy.deepcopy(conn.session)})

    # -- input audio and the VAD ---------------------------------------------------------
    def _turn_detection(self, conn: Connection) -> dict[str, Any] | None:
        setting = conn.session["audio"]["input"].get("turn_detection")
        return setting if isinstance(setting, dict) else None

    async def _append(self, conn: Connection, event: dict[str, Any]) -> None:
        try:
            data = base64.b64decode(str(event.get("audio", "")), validate=True)
        except (binascii.Error, ValueError):
            await self._error(conn, "audio is not base64", "invalid_value", event, "audio")
            return
        if len(data) % 2:
            await self._error(conn, "pcm16 audio must have an even byte count",
                              "invalid_value", event, "audio")
            return
        conn.audio += data
        conn.buffer += data
        vad = self._turn_detection(conn)
        if vad is not None:
            await self._vad(conn, data, vad)

    async def _vad(self, conn: Connection, data: bytes, vad: dict[str, Any]) -> None:
        frame = 20 * BYTES_PER_MS
        conn.vad_rest += data
        while len(conn.vad_rest) >= frame:
            block = np.frombuffer(bytes(conn.vad_rest[:frame]), dtype="<i2")
            del conn.vad_rest[:frame]
            conn.vad_ms += 20
            loud = float(np.sqrt(np.mean(block.astype(np.float64) ** 2))) > self.vad_threshold
            if loud and not conn.speaking:
                conn.speaking, conn.silent_ms = True, 0.0
                padding = float(vad.get("prefix_padding_ms", 300))
                conn.vad_item = new_id("item")
                await conn.send({"type": "input_audio_buffer.speech_started",
                                 "audio_start_ms": int(max(0.0, conn.vad_ms - 20 - padding)),
                                 "item_id": conn.vad_item})
                if vad.get("interrupt_response", True) and conn.response_task is not None:
                    await self._cancel(conn, "turn_detected")
            elif conn.speaking and not loud:
                conn.silent_ms += 20
                if conn.silent_ms >= float(vad.get("silence_duration_ms", 500)):
                    conn.speaking = False
                    item_id = conn.vad_item or new_id("item")
                    await conn.send({"type": "input_audio_buffer.speech_stopped",
                                     "audio_end_ms": int(conn.vad_ms), "item_id": item_id})
                    await self._commit(conn, item_id)
                    if vad.get("create_response", True):
                        await self._start_response(conn, {})
            elif loud:
                conn.silent_ms = 0.0

    async def _commit_request(self, conn: Connection, event: dict[str, Any]) -> None:
        if len(conn.buffer) < 100 * BYTES_PER_MS:
            await self._error(conn, "buffer too small: at least 100ms of audio is needed",
                              "input_audio_buffer_commit_empty", event)
            return
        await self._commit(conn, new_id("item"))

    async def _commit(self, conn: Connection, item_id: str) -> None:
        previous = conn.items[-1].data["id"] if conn.items else None
        conn.buffer.clear()
        await conn.send({"type": "input_audio_buffer.committed", "item_id": item_id,
                         "previous_item_id": previous})
        data = {"id": item_id, "object": "realtime.item", "type": "message", "role": "user",
                "status": "completed", "content": [{"type": "input_audio", "transcript": None}]}
        conn.items.append(Item(data))
        await conn.send({"type": "conversation.item.added", "item": copy.deepcopy(data),
                         "previous_item_id": previous})
        await conn.send({"type": "conversation.item.done", "item": copy.deepcopy(data),
                         "previous_item_id": previous})
        if conn.session["audio"]["input"].get("transcription") and self.transcripts:
            text = self.transcripts.pop(0)
            data["content"][0]["transcript"] = text
            await conn.send({
                "type": "conversation.item.input_audio_transcription.completed",
                "item_id": item_id, "content_index": 0, "transcript": text,
                "usage": {"type": "duration", "seconds": 1.0}})

    async def _clear(self, conn: Connection, event: dict[str, Any]) -> None:
        conn.buffer.clear()
        conn.speaking = False
        await conn.send({"type": "input_audio_buffer.cleared"})

    # -- conversation items ----------------------------------------------------------------
    async def _item_create(self, conn: Connection, event: dict[str, Any]) -> None:
        data = copy.deepcopy(event.get("item") or {})
        kind = data.get("type")
        if kind not in ("message", "function_call", "function_call_output"):
            await self._error(conn, f"unknown item type {kind!r}", "invalid_value", event,
                              "item.type")
            return
        if kind == "function_call_output" and not any(
                i.data.get("type") == "function_call"
                and i.data.get("call_id") == data.get("call_id") for i in conn.items):
            await self._error(conn, f"no function_call with call_id {data.get('call_id')!r}",
                              "invalid_value", event, "item.call_id")
            return
        if kind == "message":
            allowed = {"user": {"input_text", "input_audio", "input_image"},
                       "assistant": {"output_text", "output_audio"},
                       "system": {"input_text"}}.get(str(data.get("role")), set())
            if any(part.get("type") not in allowed for part in data.get("content") or []):
                await self._error(conn, "content type not allowed for this role",
                                  "invalid_value", event, "item.content")
                return
        data.setdefault("id", new_id("item"))
        data.update(object="realtime.item", status="completed")
        previous = conn.items[-1].data["id"] if conn.items else None
        conn.items.append(Item(data))
        await conn.send({"type": "conversation.item.added", "item": copy.deepcopy(data),
                         "previous_item_id": previous})
        await conn.send({"type": "conversation.item.done", "item": copy.deepcopy(data),
                         "previous_item_id": previous})

    async def _truncate(self, conn: Connection, event: dict[str, Any]) -> None:
        item = conn.item(str(event.get("item_id")))
        end = event.get("audio_end_ms")
        if item is None or item.data.get("role") != "assistant" or not item.audio_ms:
            await self._error(conn, "only assistant audio items can be truncated",
                              "invalid_value", event, "item_id")
            return
        if not isinstance(end, int) or end < 0 or end > item.audio_ms:
            await self._error(conn, f"audio_end_ms {end} is beyond the audio "
                              f"({item.audio_ms:.0f} ms)", "invalid_value", event, "audio_end_ms")
            return
        item.audio_ms = float(end)
        for part in item.data.get("content") or []:
            part["transcript"] = ""  # the unheard transcript is removed
        await conn.send({"type": "conversation.item.truncated", "item_id": item.data["id"],
                         "content_index": 0, "audio_end_ms": end})

    # -- responses ----------------------------------------------------------------------
    async def _response_create(self, conn: Connection, event: dict[str, Any]) -> None:
        if conn.response_task is not None:
            await self._error(conn, "Conversation already has an active response",
                              "conversation_already_has_active_response", event)
            return
        await self._start_response(conn, event.get("response") or {})

    async def _start_response(self, conn: Connection, options: dict[str, Any]) -> None:
        if conn.response_task is not None:
            return
        reply = self.replies.pop(0) if self.replies else self.default_reply
        if isinstance(reply, ToolCall) and options.get("tool_choice") == "none":
            reply = Spoken("I have the answer now.")
        response_id = new_id("resp")
        conn.response_id = response_id
        conn.response_task = asyncio.create_task(self._stream(conn, response_id, reply))

    async def _response_cancel(self, conn: Connection, event: dict[str, Any]) -> None:
        if conn.response_task is None:
            await self._error(conn, "Cancellation failed: no active response found",
                              "response_cancel_not_active", event)
            return
        await self._cancel(conn, "client_cancelled")

    async def _cancel(self, conn: Connection, reason: str) -> None:
        task, conn.response_task = conn.response_task, None
        if task is None:
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        response_id = str(conn.response_id)
        for item in conn.items:
            data = item.data
            if data.get("_response") != response_id or data.get("status") != "in_progress":
                continue
            data["status"] = "incomplete"
            public = {k: v for k, v in data.items() if k != "_response"}
            ids = {"response_id": response_id, "item_id": data["id"], "output_index": 0}
            if data.get("type") == "message":
                transcript = data["content"][0]["transcript"] if data.get("content") else ""
                await conn.send({"type": "response.output_audio.done", **ids,
                                 "content_index": 0})
                await conn.send({"type": "response.output_audio_transcript.done", **ids,
                                 "content_index": 0, "transcript": transcript})
            await conn.send({"type": "response.output_item.done", "response_id": response_id,
                             "output_index": 0, "item": copy.deepcopy(public)})
            await conn.send({"type": "conversation.item.done", "item": copy.deepcopy(public)})
        await self._finish(conn, response_id, "cancelled", reason)

    def _response_body(self, response_id: str, status: str, output: list[dict[str, Any]],
                       reason: str | None = None) -> dict[str, Any]:
        details = {"type": status, "reason": reason} if reason else None
        return {"id": response_id, "object": "realtime.response", "status": status,
                "status_details": details, "output": output, "conversation_id": "conv_1",
                "output_modalities": ["audio"],
                "usage": {"total_tokens": 30, "input_tokens": 20, "output_tokens": 10}}

    async def _finish(self, conn: Connection, response_id: str, status: str,
                      reason: str | None = None) -> None:
        output = [i.data for i in conn.items if i.data.get("_response") == response_id]
        await conn.send({"type": "response.done", "response": self._response_body(
            response_id, status, [{k: v for k, v in o.items() if k != "_response"}
                                  for o in output], reason)})

    async def _stream(self, conn: Connection, response_id: str, reply: Reply) -> None:
        await conn.send({"type": "response.created",
                         "response": self._response_body(response_id, "in_progress", [])})
        try:
            if isinstance(reply, ToolCall):
                await self._stream_call(conn, response_id, reply)
            else:
                await self._stream_speech(conn, response_id, reply)
        except asyncio.CancelledError:
            raise
        conn.response_task = None
        await self._finish(conn, response_id, "completed")

    async def _add_output(self, conn: Connection, response_id: str,
                          data: dict[str, Any]) -> Item:
        previous = conn.items[-1].data["id"] if conn.items else None
        item = Item({**data, "_response": response_id})
        conn.items.append(item)
        public = {k: v for k, v in data.items() if k != "_response"}
        await conn.send({"type": "response.output_item.added", "response_id": response_id,
                         "output_index": 0, "item": copy.deepcopy(public)})
        await conn.send({"type": "conversation.item.added", "item": copy.deepcopy(public),
                         "previous_item_id": previous})
        return item

    async def _stream_speech(self, conn: Connection, response_id: str, reply: Spoken) -> None:
        item_id = new_id("item")
        item = await self._add_output(conn, response_id, {
            "id": item_id, "object": "realtime.item", "type": "message", "role": "assistant",
            "status": "in_progress", "content": []})
        item.data["content"] = [{"type": "output_audio", "transcript": ""}]
        ids = {"response_id": response_id, "item_id": item_id, "output_index": 0,
               "content_index": 0}
        await conn.send({"type": "response.content_part.added", **ids,
                         "part": {"type": "audio", "transcript": ""}})
        chunk = reply.chunk_ms * BYTES_PER_MS
        pieces = [reply.audio[i:i + chunk] for i in range(0, len(reply.audio), chunk)]
        words = reply.transcript.split(" ")
        per = max(1, -(-len(words) // max(1, len(pieces))))
        sent_words = 0
        for index, piece in enumerate(pieces or [b""]):
            if sent_words < len(words):
                text = " ".join(words[sent_words:sent_words + per])
                text = text if sent_words == 0 else " " + text
                sent_words += per
                item.data["content"][0]["transcript"] += text
                await conn.send({"type": "response.output_audio_transcript.delta", **ids,
                                 "delta": text})
            if piece:
                await conn.send({"type": "response.output_audio.delta", **ids,
                                 "delta": base64.b64encode(piece).decode()})
                item.audio_ms += len(piece) / BYTES_PER_MS
                if self.drop_after_deltas is not None and index + 1 >= self.drop_after_deltas \
                        and len(self.connections) == 1:
                    self.drop_after_deltas = None
                    conn.drop()
                    await asyncio.sleep(3600)
            await asyncio.sleep(reply.interval_s)
        if sent_words < len(words):
            await conn.send({"type": "response.output_audio_transcript.delta", **ids,
                             "delta": " " + " ".join(words[sent_words:])})
        await conn.send({"type": "response.output_audio.done", **ids})
        await conn.send({"type": "response.output_audio_transcript.done", **ids,
                         "transcript": reply.transcript})
        item.data.update(status="completed", content=[
            {"type": "output_audio", "transcript": reply.transcript}])
        await conn.send({"type": "response.content_part.done", **ids,
                         "part": {"type": "audio", "transcript": reply.transcript}})
        public = {k: v for k, v in item.data.items() if k != "_response"}
        await conn.send({"type": "response.output_item.done", "response_id": response_id,
                         "output_index": 0, "item": copy.deepcopy(public)})
        await conn.send({"type": "conversation.item.done", "item": copy.deepcopy(public)})

    async def _stream_call(self, conn: Connection, response_id: str, reply: ToolCall) -> None:
        item_id, call_id = new_id("item"), new_id("call")
        item = await self._add_output(conn, response_id, {
            "id": item_id, "object": "realtime.item", "type": "function_call",
            "status": "in_progress", "call_id": call_id, "name": reply.name, "arguments": ""})
        arguments = json.dumps(reply.arguments)
        size = -(-len(arguments) // reply.pieces)
        for i in range(0, len(arguments), size):
            await conn.send({"type": "response.function_call_arguments.delta",
                             "response_id": response_id, "item_id": item_id, "output_index": 0,
                             "call_id": call_id, "delta": arguments[i:i + size]})
            await asyncio.sleep(0.005)
        await conn.send({"type": "response.function_call_arguments.done",
                         "response_id": response_id, "item_id": item_id, "output_index": 0,
                         "call_id": call_id, "name": reply.name, "arguments": arguments})
        item.data.update(status="completed", arguments=arguments)
        public = {k: v for k, v in item.data.items() if k != "_response"}
        await conn.send({"type": "response.output_item.done", "response_id": response_id,
                         "output_index": 0, "item": copy.deepcopy(public)})
        await conn.send({"type": "conversation.item.done", "item": copy.deepcopy(public)})
