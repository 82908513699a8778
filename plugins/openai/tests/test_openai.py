"""ChatCompletionsLLM / ChatCompletionsVLM against a local fake chat-completions server.

The fake speaks the streaming protocol the way OpenAI-compatible servers do:
``chat.completion.chunk`` objects over SSE (role chunk first, content
deltas, tool-call deltas split across chunks by ``index``, a finish chunk,
a usage-only chunk with empty ``choices``, ``[DONE]``), with keep-alive
comments, a multi-line ``data`` event and bytes written in odd-sized pieces
so lines straddle socket reads. Errors use OpenAI's ``{"error": {...}}`` body.
"""

from __future__ import annotations

import asyncio
import base64
import importlib.metadata
import io
import json
import logging
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from PIL import Image

from va_actors.core.backoff import Backoff
from va_actors.core.events import BaseEvent
from va_actors.core.llm import (
    LLM,
    LLMErrorEvent,
    LLMResponseDelta,
    LLMResponseFinal,
    ToolEndEvent,
    ToolStartEvent,
    VideoLLM,
    VLMInferenceCompletedEvent,
    VLMInferenceStartEvent,
)
from va_actors.core.utils.video_forwarder import VideoForwarder
from va_actors.core.video import SyntheticVideoTrack
from va_actors.plugins.openai import (
    ChatCompletionsAPIError,
    ChatCompletionsLLM,
    ChatCompletionsVLM,
    SSEEvent,
    SSEParser,
)
from va_actors.testing import until

API_KEY = "sk-test-0123456789-very-secret"
MODEL = "fake-chat-1"
FAST_RETRIES = Backoff(initial=0.01, factor=2.0, cap=0.05, max_attempts=3, jitter=0.0)
pytestmark = pytest.mark.timeout(10)


# -- the fake server -----------------------------------------------------------------


@dataclass
class FakeState:
    """How the fake behaves, and what it saw."""

    requests: list[dict[str, Any]] = field(default_factory=list)
    attempts: int = 0
    fail_statuses: list[int] = field(default_factory=list)
    words: list[str] = field(default_factory=lambda: ["Hello ", "from ", "the ", "fake."])
    delta_delay_s: float = 0.0
    malformed: str | None = None  # raw data line sent after the first delta
    line_end: str = "\n"
    stall_s: float = 0.0  # silence before the first event
    drop_after_first_delta: bool = False  # the connection dies mid-reply
    images: list[tuple[int, int]] = field(default_factory=list)
    disconnected: asyncio.Event = field(default_factory=asyncio.Event)
    context_messages: int | None = None  # a request with more messages exceeds the context


STATE = web.AppKey("state", FakeState)


def _chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 1,
            "model": MODEL, "system_fingerprint": "fp_fake", "usage": None,
            "choices": [{"index": 0, "delta": delta, "logprobs": None,
                         "finish_reason": finish}]}


def _error(status: int, message: str, kind: str, code: str | None = None) -> web.Response:
    body = {"error": {"message": message, "type": kind, "param": None, "code": code}}
    return web.json_response(body, status=status, headers={"Retry-After": "0"})


def _weather_calls() -> list[dict[str, Any]]:
    args = json.dumps({"city": "Boulder"})
    first = {"role": "assistant", "content": None, "tool_calls": [
        {"index": 0, "id": "call_w1", "type": "function",
         "function": {"name": "get_weather", "arguments": ""}}]}
    return [first] + [{"tool_calls": [{"index": 0, "function": {"arguments": args[i:i + 5]}}]}
                      for i in range(0, len(args), 5)]


def _plan(state: FakeState, body: dict[str, Any], images: int) -> tuple[list[dict[str, Any]], str]:
    """The deltas of the model's turn and its finish reason."""
    last = body["messages"][-1]
    if last["role"] == "tool":
        result = json.loads(last["content"])
        text = f"It is {result['sky']} in {result['city']}."
        *head, last_word = text.split(" ")
        return [{"content": w + " "} for w in head] + [{"content": last_word}], "stop"
    content = last["content"]
    user_text = content if isinstance(content, str) else " ".join(
        part.get("text", "") for part in content if part["type"] == "text")
    tools = [t["function"]["name"] for t in body.get("tools") or []]
    if "weather" in user_text and "get_weather" in tools:
        return _weather_calls(), "tool_calls"
    if images:
        return [{"content": f"I see {images} frames."}], "stop"
    return [{"content": w} for w in state.words], "stop"


def _count_images(state: FakeState, messages: list[dict[str, Any]]) -> int:
    count = 0
    for message in messages:
        if not isinstance(message.get("content"), list):
            continue
        for part in message["content"]:
            if part["type"] != "image_url":
                continue
            url = part["image_url"]["url"]
            prefix = "data:image/jpeg;base64,"
            assert url.startswith(prefix), url[:40]
            image = Image.open(io.BytesIO(base64.b64decode(url[len(prefix):], validate=True)))
            assert image.format == "JPEG"
            state.images.append(image.size)
            count += 1
    return count


def _events(state: FakeState, body: dict[str, Any], images: int) -> list[bytes]:
    """The SSE body, event by event."""
    end = state.line_end
    deltas, finish = _plan(state, body, images)
    chunks = [_chunk({"role": "assistant", "content": ""})]
    chunks += [_chunk(d) for d in deltas] + [_chunk({}, finish)]
    out: list[bytes] = [f": keep-alive{end}{end}".encode()]
    for i, chunk in enumerate(chunks):
        text = json.dumps(chunk)
        if i == 1:  # one event spread over two data lines (joined with "\n": still JSON)
            head, tail = text.split(', "object"', 1)
            out.append(f'data: {head},{end}data: "object"{tail}{end}{end}'.encode())
        else:
            out.append(f"data: {text}{end}{end}".encode())
        if i == 1 and state.malformed is not None:
            out.append(f"data: {state.malformed}{end}{end}".encode())
    if body.get("stream_options", {}).get("include_usage"):
        prompt = sum(len(json.dumps(m)) for m in body["messages"]) // 4
        usage = {"prompt_tokens": prompt, "completion_tokens": len(deltas),
                 "total_tokens": prompt + len(deltas)}
        out.append(f"data: {json.dumps({**_chunk({}), 'choices': [], 'usage': usage})}"
                   f"{end}{end}".encode())
    out.append(f"data: [DONE]{end}{end}".encode())
    return out


async def _chat(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    state.attempts += 1
    auth = request.headers.get("Authorization", "")
    if auth != f"Bearer {API_KEY}":
        given = auth.removeprefix("Bearer ")
        # Like OpenAI, the message quotes the key: the client must redact it.
        return _error(401, f"Incorrect API key provided: {given}.", "invalid_request_error",
                      "invalid_api_key")
    if state.fail_statuses:
        status = state.fail_statuses.pop(0)
        return _error(status, f"The server is overloaded (key {API_KEY})", "server_error")
    body = await request.json()
    if body.get("stream") is not True or not isinstance(body.get("messages"), list):
        return _error(400, "stream must be true", "invalid_request_error")
    if body["model"] != MODEL:
        return _error(404, f"The model `{body['model']}` does not exist",
                      "invalid_request_error", "model_not_found")
    if state.context_messages is not None and len(body["messages"]) > state.context_messages:
        # llama.cpp's words (its 400 carries type "exceed_context_size_error").
        state.requests.append({**body, "refused": True})
        return _error(400, f"request ({len(body['messages']) * 100} tokens) exceeds the "
                      "available context size (800 tokens), try increasing it",
                      "exceed_context_size_error")
    state.requests.append(body)
    images = _count_images(state, body["messages"])
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                           "Cache-Control": "no-cache"})
    await response.prepare(request)
    try:
        await asyncio.sleep(state.stall_s)
        for i, event in enumerate(_events(state, body, images)):
            if state.drop_after_first_delta and i == 3:
                assert request.transport is not None
                request.transport.close()
                return response
            for start in range(0, len(event), 7):  # odd pieces: lines straddle reads
                await response.write(event[start:start + 7])
            if state.delta_delay_s:
                await asyncio.sleep(state.delta_delay_s)
        await response.write_eof()
    except (ConnectionResetError, asyncio.CancelledError):
        state.disconnected.set()
        raise
    return response


@dataclass
class Fake:
    base_url: str
    state: FakeState


@pytest.fixture
async def fake() -> AsyncIterator[Fake]:
    app = web.Application()
    state = FakeState()
    app[STATE] = state
    app.router.add_post("/v1/chat/completions", _chat)
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server()
    try:
        yield Fake(str(server.make_url("/v1")), state)
    finally:
        await server.close()


def make_llm(fake: Fake, **kwargs: Any) -> ChatCompletionsLLM:
    options: dict[str, Any] = {"api_key": API_KEY, "connect_retries": FAST_RETRIES}
    return ChatCompletionsLLM(MODEL, fake.base_url, **{**options, **kwargs})


def collect(llm: LLM, *classes: type[BaseEvent]) -> list[Any]:
    got: list[Any] = []

    async def on_event(event: BaseEvent) -> None:
        got.append(event)

    llm.events.subscribe(event_types=classes)(on_event)
    return got


async def reply(llm: LLM, text: str) -> tuple[list[LLMResponseDelta], LLMResponseFinal]:
    items = [item async for item in llm.respond(text)]
    await llm.events.wait()
    *deltas, final = items
    assert isinstance(final, LLMResponseFinal)
    assert all(isinstance(d, LLMResponseDelta) for d in deltas)
    return deltas, final  # type: ignore[return-value]


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


# -- SSE parsing -----------------------------------------------------------------------


def _feed_bytewise(parser: SSEParser, raw: bytes) -> list[SSEEvent]:
    events: list[SSEEvent] = []
    for i in range(len(raw)):
        events += parser.feed(raw[i:i + 1])
    return events + parser.close()


@pytest.mark.parametrize("end", ["\n", "\r\n", "\r"])
def test_sse_parser_handles_line_ends_comments_and_split_bytes(end: str) -> None:
    raw = (f"\ufeff: keep-alive{end}{end}data: {{\"a\": 1}}{end}{end}"
           f"event: error{end}data: first{end}data:second{end}id: 7{end}retry: 10{end}{end}"
           f"data: caf\u00e9{end}{end}data: [DONE]{end}").encode()
    events = _feed_bytewise(SSEParser(), raw)
    assert events == [SSEEvent('{"a": 1}'), SSEEvent("first\nsecond", "error"),
                      SSEEvent("caf\u00e9"), SSEEvent("[DONE]")]


def test_sse_parser_keeps_partial_lines_until_complete() -> None:
    parser = SSEParser()
    assert parser.feed(b"data: {\"x\"") == []
    assert parser.feed(b": 2}\r") == []  # the "\r" may be half of "\r\n"
    assert parser.feed(b"\n\r\n") == [SSEEvent('{"x": 2}')]
    assert parser.close() == []


# -- text replies ----------------------------------------------------------------------


@pytest.mark.parametrize("line_end", ["\n", "\r\n"])
async def test_streamed_text_arrives_as_deltas_and_one_final(fake: Fake, line_end: str) -> None:
    fake.state.line_end = line_end
    llm = make_llm(fake, instructions="Be brief.", temperature=0.2, max_tokens=64,
                   extra_body={"top_p": 0.9})
    errors = collect(llm, LLMErrorEvent)
    try:
        deltas, final = await reply(llm, "Say hello")
    finally:
        await llm.close()
    assert [d.delta for d in deltas] == ["Hello ", "from ", "the ", "fake."]
    assert deltas[0].is_first_chunk and deltas[0].time_to_first_token_ms is not None
    assert final.text == "Hello from the fake." and final.error is None and not errors
    assert final.model == MODEL and final.latency_ms is not None
    assert final.input_tokens and final.output_tokens == 4
    assert final.total_tokens == final.input_tokens + 4
    (sent,) = fake.state.requests
    assert sent["messages"] == [{"role": "system", "content": "Be brief."},
                                {"role": "user", "content": "Say hello"}]
    assert sent["stream"] is True and sent["stream_options"] == {"include_usage": True}
    assert (sent["temperature"], sent["max_tokens"], sent["top_p"]) == (0.2, 64, 0.9)
    assert "tools" not in sent
    # the reply is history for the next turn
    assert [m.content for m in llm.conversation.messages] == ["Say hello", "Hello from the fake."]


async def test_simple_response_streams_without_respond(fake: Fake) -> None:
    llm = make_llm(fake, include_usage=False)
    try:
        items = [item async for item in llm.simple_response("hi")]
    finally:
        await llm.close()
    assert isinstance(items[-1], LLMResponseFinal) and items[-1].text == "Hello from the fake."
    assert items[-1].input_tokens is None
    assert "stream_options" not in fake.state.requests[0]


# -- tools ---------------------------------------------------------------------------


async def test_tool_call_round_trip(fake: Fake) -> None:
    llm = make_llm(fake)
    calls: list[str] = []

    @llm.register_function(description="Current weather for a city")
    async def get_weather(city: str) -> dict[str, str]:
        calls.append(city)
        return {"city": city, "sky": "sunny"}

    starts = collect(llm, ToolStartEvent)
    ends = collect(llm, ToolEndEvent)
    try:
        deltas, final = await reply(llm, "What is the weather in Boulder?")
    finally:
        await llm.close()
    assert calls == ["Boulder"]
    assert final.text == "It is sunny in Boulder." and final.error is None
    assert "".join(d.delta for d in deltas) == final.text
    first, second = fake.state.requests
    (tool,) = first["tools"]
    assert tool["type"] == "function" and tool["function"]["name"] == "get_weather"
    assert tool["function"]["parameters"]["required"] == ["city"]
    assistant, result = second["messages"][-2:]
    assert assistant["role"] == "assistant"
    assert assistant["tool_calls"] == [{"id": "call_w1", "type": "function", "function": {
        "name": "get_weather", "arguments": json.dumps({"city": "Boulder"})}}]
    assert result["role"] == "tool" and result["tool_call_id"] == "call_w1"
    assert json.loads(result["content"]) == {"city": "Boulder", "sky": "sunny"}
    assert starts[0].arguments == {"city": "Boulder"} and ends[0].success
    # usage covers both requests
    assert final.output_tokens == len(_weather_calls()) + len(deltas)


async def get_weather(city: str) -> dict[str, str]:
    """Weather, registered by reference (how a launch file declares tools)."""
    return {"city": city, "sky": "cloudy"}


async def test_tools_and_retries_can_come_from_launch_file_params(fake: Fake) -> None:
    fake.state.fail_statuses = [502]
    llm = make_llm(fake, connect_retries={"initial": 0.01, "max_attempts": 2},
                   tools=[f"{__name__}:get_weather"])
    try:
        _, final = await reply(llm, "What is the weather in Boulder?")
    finally:
        await llm.close()
    assert final.text == "It is cloudy in Boulder." and final.error is None
    assert fake.state.attempts == 3  # 502, retried once, then the follow-up


async def test_tool_rounds_stop_at_max_tool_rounds(fake: Fake) -> None:
    llm = make_llm(fake, max_tool_rounds=0)

    @llm.register_function()
    async def get_weather(city: str) -> str:
        raise AssertionError("no tool round is allowed")

    try:
        _, final = await reply(llm, "weather in Boulder?")
    finally:
        await llm.close()
    assert final.error is None and len(fake.state.requests) == 1


# -- errors ----------------------------------------------------------------------------


async def test_503_then_success_is_retried(fake: Fake, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    fake.state.fail_statuses = [503, 429]
    llm = make_llm(fake)
    errors = collect(llm, LLMErrorEvent)
    try:
        _, final = await reply(llm, "hi")
    finally:
        await llm.close()
    assert final.text == "Hello from the fake." and final.error is None and not errors
    assert fake.state.attempts == 3
    assert "503" in caplog.text and API_KEY not in caplog.text


async def test_retries_run_out_gives_a_recoverable_error(fake: Fake) -> None:
    fake.state.fail_statuses = [503] * 5
    llm = make_llm(fake)
    errors = collect(llm, LLMErrorEvent)
    try:
        _, final = await reply(llm, "hi")
    finally:
        await llm.close()
    (event,) = errors
    assert event.is_recoverable and event.error_code == "503"
    assert "HTTP 503" in str(event.error) and "3 attempts" in str(event.error)
    assert fake.state.attempts == 3 and final.error and final.text == ""
    assert API_KEY not in str(event.error)


@pytest.mark.parametrize(("key", "model", "status", "text"), [
    ("sk-wrong-key-42", MODEL, 401, "Incorrect API key provided"),
    (API_KEY, "no-such-model", 404, "does not exist"),
])
async def test_permanent_errors_are_not_retried(fake: Fake, caplog: pytest.LogCaptureFixture,
                                                key: str, model: str, status: int,
                                                text: str) -> None:
    caplog.set_level(logging.DEBUG)
    llm = ChatCompletionsLLM(model, fake.base_url, key, connect_retries=FAST_RETRIES)
    errors = collect(llm, LLMErrorEvent)
    try:
        _, final = await reply(llm, "hi")
    finally:
        await llm.close()
    (event,) = errors
    assert not event.is_recoverable and event.error_code == str(status)
    assert isinstance(event.error, ChatCompletionsAPIError) and event.error.status == status
    message = str(event.error)
    assert f"HTTP {status}" in message and text in message
    assert fake.state.attempts == 1
    for where in (message, final.error or "", caplog.text, repr(llm)):
        assert key not in where


@pytest.mark.parametrize("bad", ['{"id": "x", "choices": [{"delta": {"content": "b', '{"id": "x"}'])
async def test_malformed_stream_ends_the_reply_with_what_was_produced(fake: Fake,
                                                                      bad: str) -> None:
    fake.state.malformed = bad
    llm = make_llm(fake)
    errors = collect(llm, LLMErrorEvent)
    try:
        deltas, final = await reply(llm, "hi")
    finally:
        await llm.close()
    assert [d.delta for d in deltas] == ["Hello "]
    assert final.text == "Hello " and final.error is not None
    (event,) = errors
    assert not event.is_recoverable
    assert "not JSON" in str(event.error) or "no 'choices'" in str(event.error)
    assert fake.state.attempts == 1  # output had been produced: no retry


async def test_connection_refused_reports_quickly() -> None:
    llm = ChatCompletionsLLM(MODEL, f"http://127.0.0.1:{closed_port()}/v1", API_KEY,
                             connect_retries=Backoff(initial=0.01, max_attempts=2))
    errors = collect(llm, LLMErrorEvent)
    started = time.perf_counter()
    try:
        _, final = await reply(llm, "hi")
    finally:
        await llm.close()
    assert time.perf_counter() - started < 1.0
    (event,) = errors
    assert event.is_recoverable
    assert "cannot connect" in str(event.error) and "2 attempts" in str(event.error)
    assert final.error and final.text == ""


async def test_a_dropped_connection_after_tokens_is_not_retried(fake: Fake) -> None:
    fake.state.drop_after_first_delta = True
    llm = make_llm(fake)
    errors = collect(llm, LLMErrorEvent)
    try:
        deltas, final = await reply(llm, "hi")
    finally:
        await llm.close()
    assert [d.delta for d in deltas] == ["Hello "] and final.text == "Hello "
    (event,) = errors
    assert event.is_recoverable and fake.state.attempts == 1


async def test_a_server_silent_before_the_first_token_times_out_and_is_retried(
        fake: Fake) -> None:
    fake.state.stall_s = 0.3
    llm = make_llm(fake, timeout_s=0.1, connect_retries=Backoff(initial=0.01, max_attempts=2))
    errors = collect(llm, LLMErrorEvent)
    try:
        _, final = await reply(llm, "hi")
    finally:
        await llm.close()
    (event,) = errors
    assert event.is_recoverable and "within 0.1 s" in str(event.error)
    assert fake.state.attempts == 2 and final.text == ""


# -- barge-in ------------------------------------------------------------------------


async def test_interrupt_stops_within_one_delta_and_closes_the_connection(fake: Fake) -> None:
    fake.state.words = [f"w{i} " for i in range(40)]
    fake.state.delta_delay_s = 0.05
    llm = make_llm(fake)
    deltas: list[str] = []
    final: LLMResponseFinal | None = None
    after_interrupt = 0
    interrupted_at = 0.0
    try:
        async for item in llm.respond("talk for a while"):
            if isinstance(item, LLMResponseFinal):
                final = item
            else:
                deltas.append(item.delta)
                if interrupted_at:
                    after_interrupt += 1
                elif len(deltas) == 2:
                    interrupted_at = time.perf_counter()
                    await llm.interrupt()
        stopped_in = time.perf_counter() - interrupted_at
        await asyncio.wait_for(fake.state.disconnected.wait(), 1.0)
    finally:
        await llm.close()
    assert final is not None and final.interrupted
    assert after_interrupt <= 1 and stopped_in < fake.state.delta_delay_s
    assert final.text == "".join(deltas)


# -- security -------------------------------------------------------------------------


def test_api_key_comes_from_the_environment_and_is_not_in_repr(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", API_KEY)
    llm = ChatCompletionsLLM(MODEL, "http://user:pw@localhost:8080/v1/")
    assert llm._client._headers()["Authorization"] == f"Bearer {API_KEY}"
    assert API_KEY not in repr(llm) and "pw" not in repr(llm)
    monkeypatch.delenv("OPENAI_API_KEY")
    assert "Authorization" not in ChatCompletionsLLM(MODEL)._client._headers()


def test_entry_points_load_the_classes() -> None:
    eps = {ep.name: ep for ep in importlib.metadata.entry_points(group="va_actors.plugins")}
    assert eps["openai.llm"].load() is ChatCompletionsLLM
    assert eps["openai.vlm"].load() is ChatCompletionsVLM
    assert issubclass(ChatCompletionsVLM, VideoLLM)


# -- VLM -----------------------------------------------------------------------------


async def test_vlm_sends_buffered_frames_as_base64_jpeg(fake: Fake) -> None:
    track = SyntheticVideoTrack(320, 240, fps=30)
    forwarder = VideoForwarder(track, fps=30, name="camera")
    other: list[Any] = []
    forwarder.add_frame_handler(other.append, fps=30, name="another consumer")
    vlm = ChatCompletionsVLM(MODEL, fake.base_url, API_KEY, fps=5, frame_buffer_seconds=2,
                             max_frame_side=128, jpeg_quality=60)
    started = collect(vlm, VLMInferenceStartEvent)
    completed = collect(vlm, VLMInferenceCompletedEvent)
    try:
        await vlm.watch_video_track(track, shared_forwarder=forwarder)
        await asyncio.sleep(0.65)
        buffered = len(vlm._frame_buffer)
        stats = forwarder.stats()
        _, final = await reply(vlm, "What do you see?")
        await vlm.stop_watching_video_track()
        assert forwarder.is_running  # shared: the other consumer keeps its frames
        assert "openai_vlm" not in forwarder.stats()
    finally:
        await vlm.close()
        await forwarder.stop()
        track.stop()
    assert stats["openai_vlm"].fps == 5 and len(other) > 3 * buffered
    assert 2 <= buffered <= 5, buffered
    assert final.text == f"I see {buffered} frames."
    assert fake.state.images == [(128, 96)] * buffered
    user = fake.state.requests[0]["messages"][-1]
    assert user["content"][0] == {"type": "text", "text": "What do you see?"}
    assert [p["type"] for p in user["content"][1:]] == ["image_url"] * buffered
    assert started[0].frames_count == buffered == completed[0].frames_count
    assert completed[0].text == final.text


async def test_vlm_without_frames_behaves_like_the_llm(fake: Fake) -> None:
    track = SyntheticVideoTrack(64, 48, fps=30)
    vlm = ChatCompletionsVLM(MODEL, fake.base_url, API_KEY, fps=10)
    try:
        await vlm.watch_video_track(track)  # its own forwarder
        forwarder = vlm._video_forwarder
        assert forwarder is not None and forwarder.is_running
        await vlm.stop_watching_video_track()
        assert not forwarder.is_running and not vlm._frame_buffer
        _, final = await reply(vlm, "hi")
    finally:
        await vlm.close()
        track.stop()
    assert final.text == "Hello from the fake."
    assert fake.state.requests[0]["messages"][-1] == {"role": "user", "content": "hi"}


async def test_warm_up_sends_the_system_prompt_once_and_keeps_no_history(fake: Fake) -> None:
    async def get_weather(city: str) -> str:
        return "sunny"

    llm = make_llm(fake, instructions="Answer briefly.", warm_up=True)
    llm.register_function(get_weather)
    try:
        await llm.start()
        assert len(fake.state.requests) == 1
        warm = fake.state.requests[0]
        assert warm["max_tokens"] == 1 and warm["stream"] is True
        assert warm["messages"][0] == {"role": "system", "content": "Answer briefly."}
        assert [t["function"]["name"] for t in warm["tools"]] == ["get_weather"]
        # The first real request starts with the same prefix and no warm-up turn.
        await reply(llm, "What is the weather?")
        first = fake.state.requests[1]["messages"]
        assert first == [{"role": "system", "content": "Answer briefly."},
                         {"role": "user", "content": "What is the weather?"}]
    finally:
        await llm.close()


async def test_keep_warm_sends_the_conversation_so_far_and_yields_to_the_next_reply(
        fake: Fake) -> None:
    llm = make_llm(fake, instructions="Answer briefly.", keep_warm=True)
    try:
        await reply(llm, "What is the weather?")
        await llm.prepare_next_turn()
        await until(lambda: len(fake.state.requests) == 2, 5, "the warm request")
        warm = fake.state.requests[1]
        assert warm["max_tokens"] == 1
        # The next question's prompt starts with all of it: the server has it cached.
        assert warm["messages"][:3] == [
            {"role": "system", "content": "Answer briefly."},
            {"role": "user", "content": "What is the weather?"},
            {"role": "assistant", "content": "Hello from the fake."}]
        fake.state.stall_s = 5.0  # the next warm request hangs in the server ...
        await llm.prepare_next_turn()
        await until(lambda: len(fake.state.requests) == 3, 5, "the second warm request")
        fake.state.stall_s = 0.0
        _, final = await asyncio.wait_for(reply(llm, "And tomorrow?"), 3)  # ... not in the way
        assert final.text == "Hello from the fake."
        await asyncio.wait_for(fake.state.disconnected.wait(), 3)  # it was dropped
    finally:
        await llm.close()


async def test_without_keep_warm_nothing_is_sent_between_turns(fake: Fake) -> None:
    llm = make_llm(fake)
    try:
        await reply(llm, "hi")
        await llm.prepare_next_turn()
        await asyncio.sleep(0.1)
        assert len(fake.state.requests) == 1
    finally:
        await llm.close()


async def test_a_conversation_longer_than_the_context_still_gets_answers(
        fake: Fake, caplog: pytest.LogCaptureFixture) -> None:
    """The agent does not fall silent at turn N: the oldest history is left out."""
    llm = make_llm(fake, instructions="Answer briefly.")
    try:
        for i in range(4):  # 1 system + 6 history + 1 question = 8 messages: fits
            await reply(llm, f"question {i}")
        fake.state.context_messages = 8
        with caplog.at_level(logging.WARNING):
            _, final = await reply(llm, "question 4")  # 10 messages: refused, then halved
        assert final.text == "Hello from the fake."
        assert "no longer fits the model's context" in caplog.text
        refused, sent = fake.state.requests[-2:]
        assert refused.get("refused") and not sent.get("refused")
        assert [m["content"] for m in sent["messages"]] == [  # the older half left out
            "Answer briefly.", "question 2", "Hello from the fake.", "question 3",
            "Hello from the fake.", "question 4"]
        _, final = await reply(llm, "question 5")  # the smaller window holds from now on
        assert final.text == "Hello from the fake." and not fake.state.requests[-1].get("refused")
        assert [m["role"] for m in fake.state.requests[-1]["messages"]][:2] == ["system", "user"]
    finally:
        await llm.close()


async def test_history_messages_sends_only_the_latest_turns(fake: Fake) -> None:
    llm = make_llm(fake, history_messages=4)
    try:
        for i in range(6):
            await reply(llm, f"question {i}")
        sent = [[m["content"] for m in r["messages"] if m["role"] == "user"]
                for r in fake.state.requests]
        # Past 4 history messages it jumps ahead to 2, and its start then holds for a
        # turn (the server's cached prefix still matches), instead of sliding each turn.
        assert sent == [["question 0"], ["question 0", "question 1"],
                        ["question 0", "question 1", "question 2"],
                        ["question 2", "question 3"], ["question 2", "question 3", "question 4"],
                        ["question 4", "question 5"]]
    finally:
        await llm.close()


def test_a_negative_history_window_is_refused() -> None:
    with pytest.raises(ValueError, match="history_messages"):
        ChatCompletionsLLM(MODEL, "http://127.0.0.1:1/v1", API_KEY, history_messages=-1)


async def test_a_failed_warm_up_is_logged_and_start_still_returns(
        caplog: pytest.LogCaptureFixture) -> None:
    llm = ChatCompletionsLLM(MODEL, f"http://127.0.0.1:{closed_port()}/v1", API_KEY,
                             connect_retries=None, warm_up=True)
    try:
        with caplog.at_level(logging.WARNING):
            await llm.start()
    finally:
        await llm.close()
    assert "warm-up request failed" in caplog.text
