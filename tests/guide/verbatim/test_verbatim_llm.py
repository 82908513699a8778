"""The guide's LLM block and its function-calling overrides, as written.

The LLM block calls ``self._create_response_event(response)`` with the
provider's response only, runs tools with ``self._execute_tools``; the
function-calling block converts tools, extracts calls and formats results.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import guide_llm
import pytest
from guide_actors import GuideLLM, get_weather
from guide_helpers import collect
from guide_providers import ChatProvider, ChatResponse

from va_actors.core.llm import LLMResponseFinal, ToolEndEvent, ToolStartEvent


class PlainLLM(guide_llm.MyLLM):
    """The LLM block alone (no function-calling overrides)."""

    def __init__(self) -> None:
        super().__init__()
        self.provider = ChatProvider()


async def reply(llm: Any, text: str) -> LLMResponseFinal:
    items = [item async for item in llm.respond(text)]
    final = items[-1]
    assert isinstance(final, LLMResponseFinal)
    return final


async def test_llm_block_reply_text_comes_from_the_provider_response() -> None:
    llm = PlainLLM()
    final = await reply(llm, "hello")
    assert final.text == "You said: hello" and final.error is None
    assert isinstance(final.original, ChatResponse)  # the provider's own object
    event = llm._create_response_event(final.original)
    assert (event.text, event.original) == ("You said: hello", final.original)
    messages = llm.provider.requests[0]["messages"]
    assert messages[-1] == {"role": "user", "content": "hello"}
    assert [m.content for m in llm.conversation.messages] == ["hello", "You said: hello"]


async def test_llm_block_with_the_function_calling_block_runs_the_tool() -> None:
    llm = GuideLLM()
    started = collect(llm.events, ToolStartEvent)
    ended = collect(llm.events, ToolEndEvent)
    final = await reply(llm, "What is the weather in Boulder?")
    assert final.text == "Let me check the weather in Boulder."
    # _convert_tools_to_provider_format, as the block wrote it
    (tool,) = llm.provider.requests[0]["tools"]
    assert tool["name"] == "get_weather" and tool["description"] == "Current weather for a city."
    assert tool["parameters"]["properties"]["city"]["type"] == "string"
    assert tool["parameters"]["required"] == ["city"]
    await asyncio.sleep(0)
    assert [e.arguments for e in started] == [{"city": "Boulder"}]
    assert [(e.success, e.result) for e in ended] == [
        (True, {"city": "Boulder", "sky": "sunny", "celsius": 21})]


async def test_function_calling_block_extracts_calls_and_formats_results() -> None:
    llm = GuideLLM()
    response = await llm.provider.chat([{"role": "user", "content": "weather in Oslo?"}],
                                       tools=[{"name": "get_weather"}])
    calls = llm._extract_tool_calls_from_response(response)
    assert calls == [{"type": "tool_call", "name": "get_weather",
                      "arguments_json": '{"city": "Oslo"}', "id": "call_1"}]
    results = await llm._execute_tools(calls)
    # The guide formats str(result) for each result of _execute_tools: the tool's output.
    messages = llm._create_tool_result_message(calls, results)
    assert messages == [{"role": "tool", "tool_call_id": "call_1",
                         "content": json.dumps(await get_weather("Oslo"))}]


async def test_tool_calls_are_deduplicated_by_name_and_arguments() -> None:
    llm = GuideLLM()
    runs: list[str] = []

    @llm.register_function()
    async def get_weather(city: str) -> dict[str, Any]:
        """Current weather for a city."""
        runs.append(city)
        return {"city": city}

    await reply(llm, "The weather in Boulder, twice please")
    assert runs == ["Boulder"]  # two identical calls, one run


async def test_tools_run_concurrently_with_a_timeout() -> None:
    llm = GuideLLM()

    @llm.register_function()
    async def get_weather(city: str) -> dict[str, Any]:
        """Current weather for a city."""
        await asyncio.sleep(0.3 if city == "Oslo" else 0.15)
        return {"city": city}

    calls = [{"type": "tool_call", "name": "get_weather", "arguments_json": {"city": c},
              "id": c} for c in ("Boulder", "Oslo")]
    started = time.perf_counter()
    results = await llm._execute_tools(calls, timeout_s=0.25)
    elapsed = time.perf_counter() - started
    assert elapsed < 0.29  # concurrent, and Oslo is cut off at the timeout
    assert results[0].result == {"city": "Boulder"} and results[0].error is None
    assert "timed out after 0.25 s" in results[1].result["error"]


def test_register_function_schema_is_what_the_conversion_reads() -> None:
    llm = GuideLLM()
    (schema,) = llm.get_available_functions()
    assert schema["name"] == "get_weather"
    assert schema["parameters_schema"]["properties"] == {"city": {"type": "string"}}


@pytest.mark.parametrize("response, text", [
    ({"choices": [{"message": {"content": "dict reply"}}]}, "dict reply"),
    ({"message": {"role": "assistant", "content": "ollama reply"}}, "ollama reply"),
    ({"content": [{"type": "text", "text": "claude "}, {"type": "text", "text": "reply"}]},
     "claude reply"),
    ({"output_text": "responses api"}, "responses api"),
    ("a plain string", "a plain string"),
])
def test_create_response_event_reads_common_provider_shapes(response: Any, text: str) -> None:
    event = PlainLLM()._create_response_event(response)
    assert event.text == text and event.original is response
