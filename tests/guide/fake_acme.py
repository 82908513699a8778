"""A local stand-in for the fictional "Acme" AI provider of the plugin guide.

It speaks the protocols a real provider of each kind speaks, over real
sockets on 127.0.0.1, so the ported plugins run their own client code:

* ``GET  /v1/listen``            WebSocket STT: JSON config, binary 16 kHz s16 frames in,
                                 JSON partial/final transcripts and turn ends out.
* ``POST /v1/speak``             TTS: chunked HTTP body of raw s16 PCM at 24 kHz.
* ``POST /v1/chat/completions``  LLM and VLM: OpenAI-style JSON in, SSE stream out,
                                 with streamed tool calls.
* ``GET  /v1/realtime``          WebSocket speech-to-speech: base64 16 kHz audio in,
                                 base64 24 kHz audio deltas out, per response.
* ``POST /v1/detect``            JPEG in, JSON detections out (video processors).

Every request is checked the way a provider would (auth, formats) and
recorded on :class:`AcmeState` for the tests to assert on.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from aiohttp import WSMsgType, web
from PIL import Image

API_KEY = "acme-test-key"
STT_RATE = 16000
TTS_RATE = 24000
REALTIME_IN_RATE = 16000
REALTIME_OUT_RATE = 24000


@dataclass
class AcmeState:
    """What the provider saw and how it should behave."""

    # STT
    stt_configs: list[dict[str, Any]] = field(default_factory=list)
    stt_audio_bytes: int = 0
    stt_words: tuple[str, ...] = ("hello", "from", "acme")
    # TTS
    tts_requests: list[dict[str, Any]] = field(default_factory=list)
    tts_ms_per_char: float = 40.0
    tts_chunk_delay_s: float = 0.0
    tts_bytes_sent: int = 0
    tts_aborted: bool = False
    # LLM / VLM
    chat_requests: list[dict[str, Any]] = field(default_factory=list)
    images: list[tuple[int, int]] = field(default_factory=list)
    # Realtime
    realtime_sessions: list[dict[str, Any]] = field(default_factory=list)
    realtime_audio_bytes: int = 0
    realtime_response_chunks: int = 8
    realtime_chunk_delay_s: float = 0.01
    realtime_cancels: int = 0
    # Processors
    detect_requests: list[tuple[int, int]] = field(default_factory=list)


STATE = web.AppKey("state", AcmeState)


def _authorized(request: web.Request) -> bool:
    return request.headers.get("Authorization") == f"Bearer {API_KEY}"


def _tone(rate: int, seconds: float, freq: float = 440.0) -> bytes:
    t = np.arange(int(rate * seconds)) / rate
    return (0.3 * 32767 * np.sin(2 * math.pi * freq * t)).astype("<i2").tobytes()


# ---------------------------------------------------------------------- STT


async def _listen(request: web.Request) -> web.StreamResponse:
    state: AcmeState = request.app[STATE]
    if not _authorized(request):
        raise web.HTTPUnauthorized(text="bad api key")
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    config = await ws.receive_json()
    state.stt_configs.append(config)
    if config.get("encoding") != "pcm_s16le" or config.get("sample_rate") != STT_RATE:
        await ws.send_json({"type": "error", "message": f"unsupported audio: {config}"})
        await ws.close()
        return ws
    await ws.send_json({"type": "ready", "session": "stt-1"})
    received = 0
    said = 0
    bytes_per_word = STT_RATE * 2 // 10  # one word per 100 ms of audio
    async for msg in ws:
        if msg.type == WSMsgType.BINARY:
            if len(msg.data) % 2:
                await ws.send_json({"type": "error", "message": "odd byte count"})
                continue
            received += len(msg.data)
            state.stt_audio_bytes += len(msg.data)
            while said < len(state.stt_words) and received >= (said + 1) * bytes_per_word:
                said += 1
                await ws.send_json({"type": "partial",
                                    "text": " ".join(state.stt_words[:said])})
        elif msg.type == WSMsgType.TEXT and json.loads(msg.data).get("type") == "finalize":
            await ws.send_json({"type": "final", "text": " ".join(state.stt_words[:said]),
                                "confidence": 0.93, "language": "en",
                                "audio_ms": received / 2 / STT_RATE * 1000})
            await ws.send_json({"type": "turn_end"})
            received = said = 0
    return ws


# ---------------------------------------------------------------------- TTS


async def _speak(request: web.Request) -> web.StreamResponse:
    state: AcmeState = request.app[STATE]
    if not _authorized(request):
        raise web.HTTPUnauthorized(text="bad api key")
    body = await request.json()
    state.tts_requests.append(body)
    if body.get("sample_rate") != TTS_RATE:
        raise web.HTTPBadRequest(text="Acme speaks at 24000 Hz only")
    audio = _tone(TTS_RATE, len(body["text"]) * state.tts_ms_per_char / 1000)
    response = web.StreamResponse(headers={"Content-Type": f"audio/L16; rate={TTS_RATE}"})
    response.enable_chunked_encoding()
    await response.prepare(request)
    step = 1001  # odd on purpose: samples straddle chunk boundaries
    try:
        for start in range(0, len(audio), step):
            await response.write(audio[start:start + step])
            state.tts_bytes_sent += len(audio[start:start + step])
            await asyncio.sleep(state.tts_chunk_delay_s)
        await response.write_eof()
    except (ConnectionResetError, asyncio.CancelledError):
        state.tts_aborted = True
        raise
    return response


# ---------------------------------------------------------------------- chat


def _sse(payload: dict[str, Any]) -> bytes:
    return f"data: {json.dumps(payload)}\n\n".encode()


def _chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {"id": "chatcmpl-acme", "object": "chat.completion.chunk", "model": "acme-1",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


def _check_images(state: AcmeState, messages: list[dict[str, Any]]) -> int:
    count = 0
    for message in messages:
        content = message.get("content")
        if not isinstance(content, list):
            continue
        for part in content:
            if part.get("type") != "image_url":
                continue
            url = part["image_url"]["url"]
            prefix = "data:image/jpeg;base64,"
            if not url.startswith(prefix):
                raise web.HTTPBadRequest(text="images must be base64 JPEG data URLs")
            raw = base64.b64decode(url[len(prefix):], validate=True)
            image = Image.open(io.BytesIO(raw))
            if image.format != "JPEG":
                raise web.HTTPBadRequest(text=f"not a JPEG: {image.format}")
            state.images.append(image.size)
            count += 1
    return count


def _reply_plan(body: dict[str, Any], images: int) -> list[dict[str, Any]]:
    """The deltas of the model's answer: text, or a streamed tool call."""
    messages = body["messages"]
    last = messages[-1]
    if last["role"] == "tool":
        result = json.loads(last["content"])
        text = f"It is {result['sky']} and {result['celsius']} degrees in {result['city']}."
        return [{"content": word + " "} for word in text.split(" ")[:-1]] + [
            {"content": text.split(" ")[-1]}]
    user_text = last["content"] if isinstance(last["content"], str) else " ".join(
        p.get("text", "") for p in last["content"] if p.get("type") == "text")
    tools = [t["function"]["name"] for t in body.get("tools") or []]
    if "weather" in user_text.lower() and "get_weather" in tools:
        args = json.dumps({"city": "Boulder", "unit": "celsius"})
        return [
            {"tool_calls": [{"index": 0, "id": "call_7", "type": "function",
                             "function": {"name": "get_weather", "arguments": ""}}]},
            {"tool_calls": [{"index": 0, "function": {"arguments": args[:10]}}]},
            {"tool_calls": [{"index": 0, "function": {"arguments": args[10:]}}]},
        ]
    if images:
        return [{"content": f"I see {images} frames."}]
    return [{"content": "Hello "}, {"content": "from "}, {"content": "Acme."}]


async def _chat(request: web.Request) -> web.StreamResponse:
    state: AcmeState = request.app[STATE]
    if not _authorized(request):
        raise web.HTTPUnauthorized(text="bad api key")
    body = await request.json()
    state.chat_requests.append(body)
    images = _check_images(state, body["messages"])
    plan = _reply_plan(body, images)
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    for delta in plan:
        await response.write(_sse(_chunk(delta)))
    finish = "tool_calls" if "tool_calls" in plan[-1] else "stop"
    await response.write(_sse(_chunk({}, finish)))
    await response.write(b"data: [DONE]\n\n")
    await response.write_eof()
    return response


# ---------------------------------------------------------------------- realtime


class _RealtimeSession:
    def __init__(self, state: AcmeState, ws: web.WebSocketResponse) -> None:
        self.state = state
        self.ws = ws
        self.pending = 0
        self.responses = 0
        self.streaming: asyncio.Task[None] | None = None
        self.cancelled: set[str] = set()

    async def on_audio(self, b64: str) -> None:
        raw = base64.b64decode(b64)
        self.state.realtime_audio_bytes += len(raw)
        self.pending += len(raw)
        idle = self.streaming is None or self.streaming.done()
        if idle and self.pending >= REALTIME_IN_RATE * 2 // 10:  # 100 ms of speech
            self.pending = 0
            self.start_response()

    def start_response(self) -> None:
        self.responses += 1
        self.streaming = asyncio.create_task(self.respond(f"resp_{self.responses}"))

    async def respond(self, response_id: str) -> None:
        await self.ws.send_json({"type": "response.created", "response_id": response_id})
        chunk = _tone(REALTIME_OUT_RATE, 0.02, 330.0)
        for _ in range(self.state.realtime_response_chunks):
            if response_id in self.cancelled or self.ws.closed:
                break
            await self.ws.send_json({"type": "response.audio.delta", "response_id": response_id,
                                     "delta": base64.b64encode(chunk).decode()})
            await asyncio.sleep(self.state.realtime_chunk_delay_s)
        if not self.ws.closed:
            await self.ws.send_json({"type": "response.audio.done", "response_id": response_id})


async def _realtime(request: web.Request) -> web.StreamResponse:
    state: AcmeState = request.app[STATE]
    if not _authorized(request):
        raise web.HTTPUnauthorized(text="bad api key")
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    session = _RealtimeSession(state, ws)
    try:
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                continue
            event = json.loads(msg.data)
            kind = event.get("type")
            if kind == "session.update":
                state.realtime_sessions.append(event["session"])
                await ws.send_json({"type": "session.created", "session": event["session"]})
            elif kind == "input_audio_buffer.append":
                await session.on_audio(event["audio"])
            elif kind == "conversation.item.create":
                session.start_response()
            elif kind == "response.cancel":
                state.realtime_cancels += 1
                session.cancelled.add(event.get("response_id", ""))
    finally:
        if session.streaming is not None:
            session.streaming.cancel()
            await asyncio.gather(session.streaming, return_exceptions=True)
    return ws


# ---------------------------------------------------------------------- detection


async def _detect(request: web.Request) -> web.Response:
    state: AcmeState = request.app[STATE]
    if not _authorized(request):
        raise web.HTTPUnauthorized(text="bad api key")
    if request.content_type != "image/jpeg":
        raise web.HTTPUnsupportedMediaType(text="send image/jpeg")
    image = Image.open(io.BytesIO(await request.read()))
    if image.format != "JPEG":
        raise web.HTTPBadRequest(text="not a JPEG")
    width, height = image.size
    state.detect_requests.append((width, height))
    box = [width // 4, height // 4, width // 2, height // 2]
    return web.json_response({"objects": [{"label": "widget", "confidence": 0.87,
                                           "box": box}]})


def make_app(state: AcmeState) -> web.Application:
    """The fake provider's application, recording into ``state``."""
    app = web.Application()
    app[STATE] = state
    app.router.add_get("/v1/listen", _listen)
    app.router.add_post("/v1/speak", _speak)
    app.router.add_post("/v1/chat/completions", _chat)
    app.router.add_get("/v1/realtime", _realtime)
    app.router.add_post("/v1/detect", _detect)
    return app
