"""Reading and assembling a streamed chat completion.

:class:`ChunkReader` turns an HTTP response body into validated
``chat.completion.chunk`` objects; :class:`StreamedRound` accumulates them
into the text, tool calls and usage of one model turn.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from ._errors import ChatCompletionsAPIError, MalformedStreamError
from ._sse import SSEEvent, SSEParser

__all__ = ["ChunkReader", "StreamedRound", "chunk_has_output"]

_DONE = "[DONE]"
_PREVIEW_CHARS = 80


def _preview(text: str) -> str:
    return repr(text if len(text) <= _PREVIEW_CHARS else text[:_PREVIEW_CHARS] + "...")


def _first_choice(chunk: dict[str, Any]) -> dict[str, Any] | None:
    choices = chunk.get("choices") or []
    for choice in choices:
        if isinstance(choice, dict) and choice.get("index", 0) == 0:
            return choice
    return None


def _delta(chunk: dict[str, Any]) -> dict[str, Any]:
    choice = _first_choice(chunk)
    if choice is None:
        return {}
    delta = choice.get("delta")
    if delta is None:
        return {}
    if not isinstance(delta, dict):
        raise MalformedStreamError(f"stream chunk has a {type(delta).__name__} as 'delta', "
                                   "expected an object")
    return delta


def chunk_has_output(chunk: dict[str, Any]) -> bool:
    """True when ``chunk`` carries reply text or part of a tool call."""
    delta = _delta(chunk)
    return bool(delta.get("content")) or bool(delta.get("tool_calls"))


class ChunkReader:
    """Validated chunks from a streaming chat-completions response.

    Args:
        response: the open response (status already checked).
        redact: removes secrets from text that goes into error messages.
    """

    def __init__(self, response: aiohttp.ClientResponse, redact: Callable[[str], str]) -> None:
        self._response = response
        self._redact = redact
        self._parser = SSEParser()
        self._events: deque[SSEEvent] = deque()
        self._finished = False
        self.saw_done = False
        # A server that ignores "stream": true answers with one JSON document.
        self._json_body = response.content_type == "application/json"

    async def next_chunk(self) -> dict[str, Any] | None:
        """The next chunk, or None at ``[DONE]`` / the end of the body."""
        if self._json_body:
            return await self._read_json_body()
        while not self._events:
            if self._finished:
                return None
            raw = await self._response.content.readany()
            if raw:
                self._events.extend(self._parser.feed(raw))
            else:
                self._finished = True
                self._events.extend(self._parser.close())
        event = self._events.popleft()
        if event.data.strip() == _DONE:
            self._finished = True
            self._events.clear()
            self.saw_done = True
            return None
        return self._decode(event)

    def _decode(self, event: SSEEvent) -> dict[str, Any]:
        try:
            chunk = json.loads(event.data)
        except ValueError:
            raise MalformedStreamError(
                f"stream data is not JSON: {self._redact(_preview(event.data))}") from None
        if not isinstance(chunk, dict):
            raise MalformedStreamError(
                f"stream data is a JSON {type(chunk).__name__}, expected an object")
        if "error" in chunk or event.event == "error":
            raise _stream_error(chunk, self._redact)
        choices = chunk.get("choices")
        if not isinstance(choices, list) and "usage" not in chunk:
            raise MalformedStreamError(
                f"stream chunk has no 'choices' list: {self._redact(_preview(event.data))}")
        return chunk

    async def _read_json_body(self) -> dict[str, Any] | None:
        if self._finished:
            return None
        self._finished = self.saw_done = True
        try:
            body = await self._response.json()
        except ValueError:
            raise MalformedStreamError("the response body is not valid JSON") from None
        if isinstance(body, dict) and "error" in body:
            raise _stream_error(body, self._redact)
        if not isinstance(body, dict) or not isinstance(body.get("choices"), list):
            raise MalformedStreamError("the JSON response has no 'choices' list")
        return _completion_as_chunk(body)


def _stream_error(payload: dict[str, Any], redact: Callable[[str], str]) -> ChatCompletionsAPIError:
    """The provider reported an error in the middle of the stream."""
    error = payload.get("error", payload)
    message = error.get("message") if isinstance(error, dict) else error
    code = error.get("code") if isinstance(error, dict) else None
    status = code if isinstance(code, int) and 400 <= code < 600 else None
    return ChatCompletionsAPIError(
        f"the server reported an error in the stream: {redact(str(message))}", status=status)


def _completion_as_chunk(body: dict[str, Any]) -> dict[str, Any]:
    """A non-streamed completion reshaped as one streamed chunk."""
    choice = _first_choice(body) or {}
    message = dict(choice.get("message") or {})
    calls = message.get("tool_calls") or []
    message["tool_calls"] = [{**call, "index": i} for i, call in enumerate(calls)
                             if isinstance(call, dict)]
    return {"id": body.get("id"), "model": body.get("model"), "usage": body.get("usage"),
            "choices": [{"index": 0, "delta": message,
                         "finish_reason": choice.get("finish_reason")}]}


@dataclass
class _ToolCallParts:
    """One tool call being assembled from its streamed fragments."""

    id: str | None = None
    name: str = ""
    arguments: str = ""

    def add(self, part: dict[str, Any]) -> None:
        if part.get("id") and not self.id:
            self.id = str(part["id"])
        function = part.get("function") or {}
        if not isinstance(function, dict):
            raise MalformedStreamError("a tool call delta has a non-object 'function'")
        name = function.get("name")
        # Most servers send the name once; some repeat it whole in every delta.
        if name and name != self.name:
            self.name += str(name)
        arguments = function.get("arguments")
        if isinstance(arguments, str):
            self.arguments += arguments
        elif arguments is not None:  # a few servers send the arguments as an object
            self.arguments += json.dumps(arguments)


@dataclass
class StreamedRound:
    """The text, tool calls and usage of one streamed model turn."""

    text_parts: list[str] = field(default_factory=list)
    tool_calls: dict[int, _ToolCallParts] = field(default_factory=dict)
    usage: dict[str, Any] | None = None
    model: str | None = None
    response_id: str | None = None
    finish_reason: str | None = None

    @property
    def text(self) -> str:
        """The turn's text so far."""
        return "".join(self.text_parts)

    def add(self, chunk: dict[str, Any]) -> str:
        """Absorb one chunk; returns its new reply text ("" if none)."""
        self.model = chunk.get("model") or self.model
        self.response_id = chunk.get("id") or self.response_id
        if isinstance(chunk.get("usage"), dict):
            self.usage = chunk["usage"]
        choice = _first_choice(chunk)
        if choice is not None and choice.get("finish_reason"):
            self.finish_reason = str(choice["finish_reason"])
        delta = _delta(chunk)
        self._add_tool_calls(delta.get("tool_calls"))
        content = delta.get("content")
        if content is None:
            return ""
        if not isinstance(content, str):
            raise MalformedStreamError(
                f"stream chunk has a {type(content).__name__} as 'content', expected a string")
        if content:
            self.text_parts.append(content)
        return content

    def _add_tool_calls(self, parts: Any) -> None:
        if not parts:
            return
        if not isinstance(parts, list):
            raise MalformedStreamError("stream chunk has a non-list 'tool_calls'")
        for position, part in enumerate(parts):
            if not isinstance(part, dict):
                raise MalformedStreamError("a tool call delta is not an object")
            # Fragments of one call share an index; a server that omits it
            # sends each call whole, so its position is a safe key.
            index = part.get("index", position)
            if isinstance(index, bool) or not isinstance(index, int):
                raise MalformedStreamError(f"a tool call delta has index {index!r}")
            self.tool_calls.setdefault(index, _ToolCallParts()).add(part)

    def as_completion(self, default_model: str) -> dict[str, Any]:
        """The turn as a non-streamed chat completion (what the tool hooks read)."""
        message: dict[str, Any] = {"role": "assistant", "content": self.text or None}
        calls = [self.tool_calls[i] for i in sorted(self.tool_calls)]
        if calls:
            message["tool_calls"] = [
                {"id": call.id, "type": "function",
                 "function": {"name": call.name, "arguments": call.arguments}}
                for call in calls]
        return {"id": self.response_id, "object": "chat.completion",
                "model": self.model or default_model, "usage": self.usage,
                "choices": [{"index": 0, "message": message,
                             "finish_reason": self.finish_reason}]}
