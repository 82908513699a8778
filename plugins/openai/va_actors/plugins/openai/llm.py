"""``ChatCompletionsLLM``: any OpenAI-compatible ``/chat/completions`` server.

Works with OpenAI itself and with local servers that speak the same protocol
(Ollama, LM Studio, vLLM, llama.cpp's ``llama-server``): replies stream over
SSE, registered functions are offered as ``tools`` and run by the LLM base's
executor, and their results go back as ``role: tool`` messages.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import os
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from va_actors.core import llm
from va_actors.core.backoff import Backoff
from va_actors.core.edge.types import Participant
from va_actors.core.llm import LLMResponseDelta, LLMResponseFinal, NormalizedToolCallItem

from ._client import (
    DEFAULT_CONNECT_RETRIES,
    ChatCompletionsClient,
    redact_url,
)
from ._errors import ChatCompletionsAPIError
from ._stream import StreamedRound

__all__ = ["DEFAULT_BASE_URL", "ChatCompletionsLLM"]

logger = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.openai.com/v1"
API_KEY_ENV = "OPENAI_API_KEY"
WARM_UP_TEXT = "Hello."
"""The user turn of the warm-up request (never part of the conversation)."""

ReplyItem = LLMResponseDelta | LLMResponseFinal

_CONTEXT_FULL = ("context size", "context length", "context_length_exceeded",
                 "maximum context")
"""How servers say a request is longer than the model's context (llama.cpp: "exceeds
the available context size"; OpenAI: code ``context_length_exceeded``)."""


def _exceeds_context(error: ChatCompletionsAPIError) -> bool:
    return error.status == 400 and any(s in str(error).lower() for s in _CONTEXT_FULL)


def _history_span(messages: list[dict[str, Any]]) -> tuple[int, int]:
    """Where the history lies in ``messages``: after the leading system messages,
    before the last user message (the question, and any tool rounds after it)."""
    head = 0
    while head < len(messages) and messages[head].get("role") == "system":
        head += 1
    last_user = max((i for i, m in enumerate(messages) if m.get("role") == "user"),
                    default=len(messages))
    return head, max(head, last_user)


def _as_backoff(value: Backoff | Mapping[str, Any] | None) -> Backoff:
    """A Backoff from a Backoff, a table of its fields (TOML), or None (no retries)."""
    if value is None:
        return Backoff(max_attempts=1)
    if isinstance(value, Backoff):
        return value
    if isinstance(value, Mapping):
        return Backoff(**value)
    raise TypeError(f"connect_retries must be a Backoff, a mapping or None, "
                    f"got {type(value).__name__}")


def _import_tool(reference: str) -> Callable[..., Any]:
    """The function named by ``"package.module:function"``."""
    module_name, colon, attr = reference.partition(":")
    if not colon or not module_name or not attr:
        raise ValueError(f"tool reference {reference!r} must look like 'package.module:function'")
    target: Any = importlib.import_module(module_name)
    for part in attr.split("."):
        target = getattr(target, part)
    if not callable(target):
        raise TypeError(f"tool reference {reference!r} is not callable")
    return target  # type: ignore[no-any-return]


@dataclass
class _ReplyState:
    """What one reply (every tool round of it) has produced so far."""

    started: float
    parts: list[str] = field(default_factory=list)
    first_token_at: float | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    total_tokens: int | None = None
    model: str | None = None
    original: Any = None

    def delta(self, text: str, item_id: str | None, round_index: int) -> LLMResponseDelta:
        first = self.first_token_at is None
        if first:
            self.first_token_at = time.perf_counter()
        self.parts.append(text)
        return LLMResponseDelta(delta=text, content_index=0, item_id=item_id,
                                output_index=round_index, is_first_chunk=first,
                                time_to_first_token_ms=self._ttft_ms() if first else None)

    def add_usage(self, usage: Mapping[str, Any] | None) -> None:
        if not usage:
            return
        self.input_tokens = _add(self.input_tokens,
                                 usage.get("prompt_tokens", usage.get("input_tokens")))
        self.output_tokens = _add(self.output_tokens,
                                  usage.get("completion_tokens", usage.get("output_tokens")))
        self.total_tokens = _add(self.total_tokens, usage.get("total_tokens"))

    def _ttft_ms(self) -> float | None:
        if self.first_token_at is None:
            return None
        return (self.first_token_at - self.started) * 1000

    def final(self, default_model: str) -> LLMResponseFinal:
        return LLMResponseFinal(
            text="".join(self.parts), latency_ms=(time.perf_counter() - self.started) * 1000,
            time_to_first_token_ms=self._ttft_ms(), input_tokens=self.input_tokens,
            output_tokens=self.output_tokens, total_tokens=self.total_tokens,
            model=self.model or default_model, original=self.original)


def _add(total: int | None, value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return total
    return value if total is None else total + value


class ChatCompletionsLLM(llm.LLM):
    """An LLM served by an OpenAI-compatible chat-completions endpoint.

    Args:
        model: the model name the server knows (``gpt-4o-mini``, ``llama3.2``...).
        base_url: the API root, ending in ``/v1`` (``http://localhost:11434/v1``
            for Ollama, ``http://localhost:8080/v1`` for llama-server).
        api_key: bearer token; default ``$OPENAI_API_KEY``; local servers
            usually need none (any value works). Never logged.
        temperature: sampling temperature; the server's default when None.
        max_tokens: cap on generated tokens per request; none when None.
        timeout_s: limit for connecting and for each wait for data.
        connect_retries: backoff for failures before the first token
            (refused, timeout, 429, 5xx); a mapping of Backoff fields (from a
            TOML table) or None for a single attempt.
        extra_body: extra request fields, merged last (``top_p``,
            ``response_format``, server-specific options...).
        instructions: system instructions (``@file.md`` references expanded).
        include_usage: ask for token usage (``stream_options.include_usage``);
            turn off for servers that reject ``stream_options``.
        max_tool_rounds: tool-call rounds one reply may make (default 3).
        tools: functions to offer the model: callables, or
            ``"package.module:function"`` references (for launch files).
        warm_up: in ``start()``, send one 1-token request with the system
            instructions and tools, so that a local server (llama.cpp keeps
            the prompt's KV cache, ``cache_prompt``) has them processed
            before the first question. Best effort: a failure is logged.
        history_messages: send at most this many of the latest history
            messages (None: all); past it, the oldest are left out down to
            half of it, so the prompt's start (a server's cached prefix)
            changes only every ``history_messages / 2`` messages. Whatever
            it is, a server that answers that the request exceeds the model's
            context gets the older half of the history left out, at once
            and from then on (a warning says so): a long conversation does
            not silence the agent.
        keep_warm: in ``prepare_next_turn()`` (the voice agent's LLM actor
            calls it once a reply plays, and after a barge-in cut it), send
            the conversation so far with a 1-token request, so that the next
            question finds it processed. llama.cpp reuses the longest cached
            prefix by itself; this adds the reply's closing tokens (~11 ms of
            SmolLM2's first token on 2 cores: bench/RESULTS.md). Never in
            the way: a new reply cancels it, and it is skipped while a reply
            streams.
    """

    provider_name = "openai"

    def __init__(
        self,
        model: str,
        base_url: str = DEFAULT_BASE_URL,
        api_key: str | None = None,
        *,
        temperature: float | None = None,
        max_tokens: int | None = None,
        timeout_s: float = 30,
        connect_retries: Backoff | Mapping[str, Any] | None = DEFAULT_CONNECT_RETRIES,
        extra_body: Mapping[str, Any] | None = None,
        instructions: str | None = None,
        include_usage: bool = True,
        max_tool_rounds: int | None = None,
        tools: Sequence[str | Callable[..., Any]] | None = None,
        warm_up: bool = False,
        keep_warm: bool = False,
        history_messages: int | None = None,
    ) -> None:
        if not model:
            raise ValueError("model must name the model to use")
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be positive, got {timeout_s}")
        if history_messages is not None and history_messages < 0:
            raise ValueError(f"history_messages must be 0 or more, got {history_messages}")
        super().__init__(instructions=instructions, max_tool_rounds=max_tool_rounds)
        self.model = model
        self.base_url = base_url.rstrip("/")
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.extra_body = dict(extra_body or {})
        self.include_usage = include_usage
        self.warm_up = bool(warm_up)
        self.keep_warm = bool(keep_warm)
        self._history_cap = history_messages
        """History messages sent at most (None: all); halved when the context is full."""
        self._history_skip = 0
        """Oldest history messages left out (see :meth:`_windowed`)."""
        self._warming: asyncio.Task[None] | None = None
        self._client = ChatCompletionsClient(
            base_url=self.base_url, api_key=api_key or os.environ.get(API_KEY_ENV) or None,
            timeout_s=timeout_s, retries=_as_backoff(connect_retries),
            name=self.provider_name)
        for tool in tools or ():
            self.register_function(_import_tool(tool) if isinstance(tool, str) else tool)

    def __repr__(self) -> str:
        # The key is deliberately absent: reprs end up in logs and tracebacks.
        return (f"{type(self).__name__}(model={self.model!r}, "
                f"base_url={redact_url(self.base_url)!r})")

    async def start(self) -> None:
        """With ``warm_up``: have the server process the system prompt now."""
        await super().start()
        if self.warm_up:
            await self._warm_up()

    async def prepare_next_turn(self) -> None:
        """With ``keep_warm``: have the server read the conversation so far, in the
        background (one at a time; not while a reply streams)."""
        if not self.keep_warm or self._current_reply() is not None:
            return
        if self._warming is not None and not self._warming.done():
            return
        self._warming = asyncio.create_task(self._warm_up(include_history=True),
                                            name="keep-warm")

    def _stop_warming(self) -> None:
        """A reply starts: the server's one slot is for it (the warm request is dropped)."""
        if self._warming is not None and not self._warming.done():
            self._warming.cancel()
        self._warming = None

    async def _warm_up(self, include_history: bool = False) -> None:
        messages = self._build_messages(WARM_UP_TEXT, include_history=include_history)
        payload = {**self._payload(self._windowed(messages), self._get_tools_for_provider()),
                   "max_tokens": 1}
        started = time.perf_counter()
        try:
            stream = await self._client.open_stream(payload)
            complete = False
            try:
                while await stream.next_chunk() is not None:
                    pass
                complete = True
            finally:
                stream.close(complete=complete)
        except Exception as exc:  # best effort: the first reply is just slower
            logger.warning("%s: warm-up request failed: %s", self.provider_name, exc)
            return
        took_ms = (time.perf_counter() - started) * 1000
        if include_history:
            logger.debug("%s: conversation sent ahead of the next turn in %.0f ms",
                         self.provider_name, took_ms)
        else:
            logger.info("%s: warmed up (system prompt sent) in %.0f ms", self.provider_name,
                        took_ms)

    async def close(self) -> None:
        """Stop the reply in flight and close the HTTP session."""
        self._stop_warming()
        await super().close()
        await self._client.close()

    # -- the reply ----------------------------------------------------------------
    async def simple_response(
        self,
        text: str,
        processors: Sequence[Any] | None = None,
        participant: Participant | None = None,
    ) -> AsyncIterator[ReplyItem]:
        """Stream a reply to ``text``: deltas, then one final (after any tool rounds)."""
        started = time.perf_counter()
        self._stop_warming()
        messages = self._build_messages(text, processors, participant)
        async for item in self._stream_reply(messages, started):
            yield item

    async def _stream_reply(self, messages: list[dict[str, Any]],
                     started: float) -> AsyncIterator[ReplyItem]:
        """Stream completions for ``messages``, running tool rounds, then the final."""
        state = _ReplyState(started)
        tools = self._get_tools_for_provider()
        for round_index in range(self.max_tool_rounds + 1):
            streamed = StreamedRound()
            async for delta in self._stream_round(messages, tools, streamed, state,
                                                  round_index):
                yield delta
            completion = streamed.as_completion(self.model)
            state.add_usage(streamed.usage)
            state.model = streamed.model or state.model
            state.original = completion
            calls = self._extract_tool_calls_from_response(completion)
            if not calls:
                break
            if round_index == self.max_tool_rounds:
                logger.warning("%s: stopped after %d tool rounds; the model still asks "
                               "for tools", self.provider_name, self.max_tool_rounds)
                break
            messages = [*messages, *await self._tool_round(calls, streamed.text)]
        yield state.final(self.model)

    async def _stream_round(self, messages: list[dict[str, Any]],
                            tools: list[dict[str, Any]], streamed: StreamedRound,
                            state: _ReplyState, round_index: int,
                            ) -> AsyncIterator[LLMResponseDelta]:
        """One request: yield its text deltas while accumulating it in ``streamed``."""
        stream = await self._open_within_context(messages, tools)
        complete = False
        try:
            while (chunk := await stream.next_chunk()) is not None:
                text = streamed.add(chunk)
                if text:
                    yield state.delta(text, streamed.response_id, round_index)
            complete = True
        finally:
            # Interrupted or failed: drop the connection so the server stops generating.
            stream.close(complete=complete)

    async def _open_within_context(self, messages: list[dict[str, Any]],
                                   tools: list[dict[str, Any]]) -> Any:
        """Open the request's stream; if the server finds it longer than the model's
        context, leave out the older half of the history and ask again."""
        while True:
            try:
                return await self._client.open_stream(self._payload(self._windowed(messages),
                                                                    tools))
            except ChatCompletionsAPIError as exc:
                if not _exceeds_context(exc) or not self._shrink_history(messages, exc):
                    raise

    def _windowed(self, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """``messages`` with at most ``_history_cap`` history messages, starting at a
        user message (a reply without its question would confuse the model).

        Past the cap the window jumps ahead to leave half of it, rather than
        sliding by a message per turn: the prompt's start then stays the same
        for the next turns, and a server's prefix cache keeps matching it.
        Where the window starts is remembered for the next request.
        """
        cap = self._history_cap
        head, tail = _history_span(messages)
        if tail == head:
            return messages  # no history (the start-up warm-up): nothing to window
        skip = min(self._history_skip, tail - head)
        if cap is not None and tail - head - skip > cap:
            skip = tail - head - cap // 2
        while head + skip < tail and messages[head + skip].get("role") != "user":
            skip += 1
        self._history_skip = skip
        return [*messages[:head], *messages[head + skip:]]

    def _shrink_history(self, messages: list[dict[str, Any]],
                        error: ChatCompletionsAPIError) -> bool:
        """Halve the history sent; False when there is none left to leave out."""
        head, tail = _history_span(self._windowed(messages))
        sent = tail - head
        if sent == 0:
            return False
        self._history_cap = sent // 2
        self._history_skip += sent - self._history_cap  # the older half, not more
        logger.warning("%s: the conversation no longer fits the model's context (%s); "
                       "sending only the latest %d of its messages from now on",
                       self.provider_name, error.detail, self._history_cap)
        return True

    async def _tool_round(self, calls: list[NormalizedToolCallItem],
                          said: str) -> list[dict[str, Any]]:
        """Run ``calls``; the assistant tool-call message and the tool results."""
        outcomes = await self._execute_tools(calls)
        follow_up = self._create_tool_result_message([tc for tc, _, _ in outcomes],
                                                     [result for _, result, _ in outcomes])
        if said and follow_up and follow_up[0].get("role") == "assistant":
            follow_up[0]["content"] = said  # keep what the model said alongside its calls
        return follow_up

    def _payload(self, messages: list[dict[str, Any]],
                 tools: list[dict[str, Any]]) -> dict[str, Any]:
        payload: dict[str, Any] = {"model": self.model, "messages": messages, "stream": True}
        if self.include_usage:
            payload["stream_options"] = {"include_usage": True}
        if tools:  # some servers reject an empty list
            payload["tools"] = tools
        if self.temperature is not None:
            payload["temperature"] = self.temperature
        if self.max_tokens is not None:
            payload["max_tokens"] = self.max_tokens
        payload.update(self.extra_body)
        return payload

    # -- OpenAI-format tool hooks (also used by the base's _run_tool_rounds) ------
    def _extract_tool_calls_from_response(self, response: Any) -> list[NormalizedToolCallItem]:
        return self._extract_openai_tool_calls(response)

    def _create_tool_result_message(self, tool_calls: Sequence[Mapping[str, Any]],
                                    results: Sequence[Any]) -> list[dict[str, Any]]:
        return self._create_openai_tool_result_messages(tool_calls, results)
