"""Running the tool calls a model asks for (the registry says which functions exist).

:class:`ToolCalling` is the function-calling half of :class:`~va_actors.core.llm.LLM`:
registering functions, the provider-format hooks a plugin overrides
(``_convert_tools_to_provider_format``, ``_extract_tool_calls_from_response``,
``_create_tool_result_message``), and running calls: concurrently with a
timeout (``_execute_tools``), each (name, arguments) once per reply, for at
most ``max_tool_rounds`` rounds (``_run_tool_rounds``), every call reported
with ToolStartEvent / ToolEndEvent.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Literal, NamedTuple, NotRequired, TypedDict, overload

from va_actors.core.events import EventManager
from va_actors.core.json_values import json_default, to_json_value
from va_actors.core.llm.events import ToolEndEvent, ToolStartEvent
from va_actors.core.llm.function_registry import (
    F,
    FunctionRegistry,
    InvalidArgumentsError,
    ToolSchema,
    UnknownFunctionError,
)
from va_actors.core.provider_objects import field_of

__all__ = [
    "NormalizedToolCallItem",
    "ToolCallResult",
    "ToolCalling",
    "ToolResultError",
    "ToolTimeoutError",
    "tool_output_text",
]

logger = logging.getLogger(__name__)


class NormalizedToolCallItem(TypedDict):
    """A provider-neutral tool call: ``arguments_json`` is a dict (or raw JSON text)."""

    name: str
    type: NotRequired[Literal["tool_call"]]
    arguments_json: NotRequired[dict[str, Any] | str]
    id: NotRequired[str | None]
    thought_signature: NotRequired[str]


def tool_output_text(value: Any, max_chars: int = 60_000) -> str:
    """A tool result as text for the model, cut to ``max_chars`` with a marker."""
    if isinstance(value, str):
        text = value
    elif isinstance(value, BaseException):
        text = f"Error: {type(value).__name__}: {value}"
    else:
        try:
            text = json.dumps(value, default=json_default, ensure_ascii=False)
        except (TypeError, ValueError):
            text = str(value)
    if len(text) <= max_chars:
        return text
    return f"{text[:max_chars]}… [truncated: {len(text) - max_chars} more characters]"


class ToolCallResult(NamedTuple):
    """``(tool_call, result, error)``: ``result`` is JSON data, ``{"error": ...}`` on failure.

    ``str()`` gives the result as the model reads it, so code written as in
    the plugin guide (``str(result)`` for each of ``_execute_tools``'s
    results) sends the tool's output, not the tuple.
    """

    tool_call: Mapping[str, Any]
    result: Any
    error: Exception | None

    def __str__(self) -> str:
        return tool_output_text(self.result)


class ToolTimeoutError(TimeoutError):
    """A tool call did not finish within its timeout."""


class ToolResultError(TypeError):
    """A tool returned a value that cannot be serialised to JSON."""


def _arguments_text(arguments: Any) -> str:
    if isinstance(arguments, str):
        return arguments
    return json.dumps(arguments if arguments is not None else {}, default=json_default,
                      ensure_ascii=False)


ToolKey = tuple[str, str]
"""Dedup key of a call: (name, canonical JSON of its arguments)."""

ToolCache = dict[ToolKey, tuple[Any, Exception | None]]


class ToolCalling:
    """Function calling for LLM plugins (mixed into :class:`~va_actors.core.llm.LLM`).

    Needs ``function_registry``, ``events``, ``provider_name`` and
    ``max_tool_rounds`` on the instance (the LLM sets them).
    """

    function_registry: FunctionRegistry
    events: EventManager
    provider_name: str
    max_tool_rounds: int

    def _tool_cache(self) -> ToolCache:
        """Results of the calls already run in the reply in flight (none outside a reply)."""
        return {}

    @overload
    def register_function(self, name: F, description: None = None,
                          parameters_schema: None = None) -> F: ...

    @overload
    def register_function(self, name: str | None = None, description: str | None = None,
                          parameters_schema: Mapping[str, Any] | None = None,
                          ) -> Callable[[F], F]: ...

    def register_function(self, name: str | F | None = None, description: str | None = None,
                          parameters_schema: Mapping[str, Any] | None = None,
                          ) -> F | Callable[[F], F]:
        """Decorator registering a sync or async function the model may call."""
        if callable(name):
            return self.function_registry.register(name)
        return self.function_registry.register(name, description, parameters_schema)

    def get_available_functions(self) -> list[ToolSchema]:
        """Schemas of every registered function."""
        return self.function_registry.get_tool_schemas()

    async def call_function(self, name: str, arguments: Mapping[str, Any] | None = None) -> Any:
        """Run a registered function (validated; sync ones in a worker thread)."""
        return await self.function_registry.call_function(name, arguments)

    def _get_tools_for_provider(self) -> list[dict[str, Any]]:
        """The registered functions in the provider's format."""
        return self._convert_tools_to_provider_format(self.get_available_functions())

    def _convert_tools_to_provider_format(self, tools: Sequence[ToolSchema],
                                          ) -> list[dict[str, Any]]:
        """Tool schemas in OpenAI chat-completions ``tools`` format (override for others)."""
        return [{
            "type": "function",
            "function": {
                "name": tool["name"],
                "description": tool.get("description", ""),
                "parameters": tool.get("parameters_schema")
                or {"type": "object", "properties": {}},
            },
        } for tool in tools]

    def _extract_tool_calls_from_response(self, response: Any) -> list[NormalizedToolCallItem]:
        """Tool calls in a provider response; none by default.

        OpenAI-compatible plugins can return ``self._extract_openai_tool_calls(response)``.
        """
        del response
        return []

    def _extract_tool_calls_from_stream_chunk(self, chunk: Any) -> list[NormalizedToolCallItem]:
        """Tool calls completed by one streamed chunk; none by default."""
        del chunk
        return []

    def _create_tool_result_message(self, tool_calls: Sequence[Mapping[str, Any]],
                                    results: Sequence[Any]) -> list[dict[str, Any]]:
        """Provider messages carrying tool results; none by default.

        OpenAI-compatible plugins can return
        ``self._create_openai_tool_result_messages(tool_calls, results)``.
        """
        del tool_calls, results
        return []

    def _extract_openai_tool_calls(self, response: Any) -> list[NormalizedToolCallItem]:
        """Tool calls of an OpenAI chat completion (object or dict), or of its message."""
        message = response
        choices = field_of(response, "choices")
        if choices:
            message = field_of(choices[0], "message") or field_of(choices[0], "delta")
        calls: list[NormalizedToolCallItem] = []
        for call in field_of(message, "tool_calls") or []:
            function = field_of(call, "function")
            name = field_of(function, "name")
            if not name:
                continue
            raw = field_of(function, "arguments")
            arguments: dict[str, Any] | str = {} if raw in (None, "") else raw
            if isinstance(raw, str) and raw.strip():
                try:
                    parsed = json.loads(raw)
                    arguments = parsed if isinstance(parsed, dict) else raw
                except ValueError:
                    arguments = raw  # reported to the model when the call runs
            calls.append(NormalizedToolCallItem(type="tool_call", name=str(name),
                                                arguments_json=arguments,
                                                id=field_of(call, "id")))
        return calls

    def _create_openai_tool_result_messages(self, tool_calls: Sequence[Mapping[str, Any]],
                                            results: Sequence[Any]) -> list[dict[str, Any]]:
        """The assistant ``tool_calls`` message and one ``tool`` message per result."""
        ids = [str(tc.get("id") or f"call_{i}") for i, tc in enumerate(tool_calls)]
        assistant = {
            "role": "assistant",
            "content": None,
            "tool_calls": [{
                "id": call_id,
                "type": "function",
                "function": {"name": tc.get("name", ""),
                             "arguments": _arguments_text(tc.get("arguments_json",
                                                                 tc.get("arguments")))},
            } for call_id, tc in zip(ids, tool_calls, strict=True)],
        }
        tool_messages = [{"role": "tool", "tool_call_id": call_id,
                          "content": self._sanitize_tool_output(result)}
                         for call_id, result in zip(ids, results, strict=True)]
        return [assistant, *tool_messages]

    def _sanitize_tool_output(self, value: Any, max_chars: int = 60_000) -> str:
        """A tool result as text for the model, cut to ``max_chars`` with a marker."""
        return tool_output_text(value, max_chars)

    @staticmethod
    def _tool_arguments(tc: Mapping[str, Any]) -> dict[str, Any]:
        raw = tc.get("arguments_json", tc.get("arguments"))
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            return {}
        if isinstance(raw, str):
            try:
                raw = json.loads(raw)
            except ValueError as exc:
                raise InvalidArgumentsError(
                    f"arguments for tool {tc.get('name')!r} are not valid JSON: {exc}") from None
        if not isinstance(raw, Mapping):
            raise InvalidArgumentsError(
                f"arguments for tool {tc.get('name')!r} must be a JSON object, "
                f"got {type(raw).__name__}")
        return dict(raw)

    def _tool_call_key(self, tc: Mapping[str, Any]) -> ToolKey | None:
        """Dedup key: (name, canonical JSON of the arguments); None if unparsable."""
        try:
            args = self._tool_arguments(tc)
            canonical = json.dumps(args, sort_keys=True, separators=(",", ":"),
                                   default=json_default, ensure_ascii=False)
        except (TypeError, ValueError):
            return None
        return str(tc.get("name") or ""), canonical

    async def _run_one_tool(self, tc: Mapping[str, Any],
                            timeout_s: float | None) -> ToolCallResult:
        """Run one tool call; never raises (except on cancellation).

        Sends ToolStartEvent and ToolEndEvent. Returns ``(tc, result, None)``
        with JSON data, or ``(tc, {"error": message}, exception)``.
        """
        name = str(tc.get("name") or "")
        call_id = tc.get("id")
        call_id = str(call_id) if call_id is not None else None
        started = time.perf_counter()
        try:
            args = self._tool_arguments(tc)
        except InvalidArgumentsError as exc:
            self._send_tool_start(name, {}, call_id)
            return self._tool_failed(tc, name, call_id, started, exc)
        self._send_tool_start(name, args, call_id)
        try:
            raw = await self._invoke_tool(name, args, timeout_s)
            result = self._tool_result_value(name, raw)
        except asyncio.CancelledError:
            self.events.send(ToolEndEvent(
                plugin_name=self.provider_name, tool_name=name, success=False,
                error="cancelled", tool_call_id=call_id,
                execution_time_ms=(time.perf_counter() - started) * 1000))
            raise
        except Exception as exc:
            return self._tool_failed(tc, name, call_id, started, exc)
        self.events.send(ToolEndEvent(
            plugin_name=self.provider_name, tool_name=name, success=True, result=result,
            tool_call_id=call_id, execution_time_ms=(time.perf_counter() - started) * 1000))
        return ToolCallResult(tc, result, None)

    async def _invoke_tool(self, name: str, args: dict[str, Any], timeout_s: float | None) -> Any:
        scope = asyncio.timeout(timeout_s)
        try:
            async with scope:
                return await self.call_function(name, args)
        except TimeoutError:
            if scope.expired():
                raise ToolTimeoutError(
                    f"tool {name!r} timed out after {timeout_s:g} s") from None
            raise

    @staticmethod
    def _tool_result_value(name: str, raw: Any) -> Any:
        try:
            return to_json_value(raw)
        except TypeError as exc:
            raise ToolResultError(f"tool {name!r} returned a {type(raw).__name__}, which "
                                  f"cannot be serialised to JSON ({exc})") from None

    def _send_tool_start(self, name: str, args: dict[str, Any], call_id: str | None) -> None:
        try:
            arguments = to_json_value(args)
        except TypeError:
            arguments = {}
        self.events.send(ToolStartEvent(plugin_name=self.provider_name, tool_name=name,
                                        arguments=arguments, tool_call_id=call_id))

    def _tool_failed(self, tc: Mapping[str, Any], name: str, call_id: str | None,
                     started: float, exc: Exception) -> ToolCallResult:
        own = isinstance(exc, ToolTimeoutError | ToolResultError | InvalidArgumentsError
                         | UnknownFunctionError)
        message = str(exc) if own else f"tool {name!r} failed: {type(exc).__name__}: {exc}"
        logger.warning("%s: %s", self.provider_name, message)
        self.events.send(ToolEndEvent(
            plugin_name=self.provider_name, tool_name=name, success=False, error=message,
            tool_call_id=call_id, execution_time_ms=(time.perf_counter() - started) * 1000))
        return ToolCallResult(tc, {"error": message}, exc)

    async def _execute_tools(self, calls: Sequence[Mapping[str, Any]], *,
                             max_concurrency: int = 8,
                             timeout_s: float | None = 30) -> list[ToolCallResult]:
        """Run tool calls concurrently (at most ``max_concurrency`` at once), in order.

        Never raises for a failing tool. A call with the same name and
        arguments as one already run during this reply (this batch or an
        earlier tool round) is not run again: it gets the earlier result.
        """
        if max_concurrency < 1:
            raise ValueError(f"max_concurrency must be at least 1, got {max_concurrency}")
        cache = self._tool_cache()
        semaphore = asyncio.Semaphore(max_concurrency)

        async def guarded(tc: Mapping[str, Any]) -> ToolCallResult:
            async with semaphore:
                return await self._run_one_tool(tc, timeout_s)

        plan: list[tuple[Mapping[str, Any], ToolKey | None, asyncio.Task[ToolCallResult] | None]]
        plan = []
        running: dict[ToolKey, asyncio.Task[ToolCallResult]] = {}
        for tc in calls:
            key = self._tool_call_key(tc)
            if key is not None and key in cache:
                plan.append((tc, key, None))
            elif key is not None and key in running:
                plan.append((tc, key, running[key]))
            else:
                task = asyncio.ensure_future(guarded(tc))
                if key is not None:
                    running[key] = task
                plan.append((tc, key, task))
        await asyncio.gather(*{t for _, _, t in plan if t is not None})
        return [self._collect(tc, key, task, cache) for tc, key, task in plan]

    @staticmethod
    def _collect(tc: Mapping[str, Any], key: ToolKey | None,
                 task: asyncio.Task[ToolCallResult] | None,
                 cache: ToolCache) -> ToolCallResult:
        if task is None:
            assert key is not None
            logger.debug("tool %s: same call already ran in this reply; reusing its result",
                         key[0])
            result, error = cache[key]
            return ToolCallResult(tc, result, error)
        _, result, error = task.result()
        if key is not None:
            cache[key] = (result, error)
        return ToolCallResult(tc, result, error)

    async def _dedup_and_execute(
        self, calls: Sequence[Mapping[str, Any]], *, max_concurrency: int = 8,
        timeout_s: float | None = 30, seen: set[ToolKey] | None = None,
    ) -> tuple[list[ToolCallResult], set[ToolKey]]:
        """Vision Agents' helper: run only calls not in ``seen``; returns (results, seen)."""
        seen = set() if seen is None else seen
        fresh: list[Mapping[str, Any]] = []
        for tc in calls:
            key = self._tool_call_key(tc)
            if key is not None and key in seen:
                continue
            if key is not None:
                seen.add(key)
            fresh.append(tc)
        if not fresh:
            return [], seen
        return await self._execute_tools(fresh, max_concurrency=max_concurrency,
                                         timeout_s=timeout_s), seen

    async def _run_tool_rounds(self, response: Any,
                               follow_up: Callable[[list[dict[str, Any]]], Awaitable[Any]], *,
                               max_rounds: int | None = None, max_concurrency: int = 8,
                               timeout_s: float | None = 30) -> Any:
        """Drive tool calling until the model stops asking or the rounds run out.

        While ``_extract_tool_calls_from_response(response)`` finds calls and
        fewer than ``max_rounds`` (default ``max_tool_rounds``) rounds ran:
        execute them, build messages with ``_create_tool_result_message`` and
        get the next response from ``await follow_up(messages)``. Returns the
        last response.
        """
        limit = self.max_tool_rounds if max_rounds is None else max_rounds
        for _ in range(limit):
            calls = self._extract_tool_calls_from_response(response)
            if not calls:
                return response
            outcomes = await self._execute_tools(calls, max_concurrency=max_concurrency,
                                                 timeout_s=timeout_s)
            messages = self._create_tool_result_message([o[0] for o in outcomes],
                                                        [o[1] for o in outcomes])
            response = await follow_up(messages)
        if self._extract_tool_calls_from_response(response):
            logger.warning("%s: stopped after %d tool rounds; the model still asks for tools",
                           self.provider_name, limit)
        return response
