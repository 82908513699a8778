"""The guide's LLM example, ported: SSE streaming, a registered tool, the result in the reply."""

from __future__ import annotations

import json

import acme
from conftest import AcmeProvider
from guide_helpers import collect

from va_actors.core.llm import LLMResponseDelta, LLMResponseFinal
from va_actors.core.llm.events import (
    LLMResponseChunkEvent,
    LLMResponseCompletedEvent,
    ToolEndEvent,
    ToolStartEvent,
)
from va_actors.core.llm.llm import LLMResponseEvent


def weather_llm(provider: AcmeProvider) -> tuple[acme.LLM, list[dict[str, str]]]:
    llm = acme.LLM(api_key=provider.api_key, base_url=provider.base_url)
    calls: list[dict[str, str]] = []

    @llm.register_function(description="Get the current weather for a city")
    async def get_weather(city: str, unit: str = "celsius") -> dict[str, object]:
        calls.append({"city": city, "unit": unit})
        return {"city": city, "sky": "sunny", "celsius": 21}

    return llm, calls


async def test_plain_reply_streams_chunks(acme_provider: AcmeProvider) -> None:
    llm = acme.LLM(api_key=acme_provider.api_key, base_url=acme_provider.base_url)
    llm.set_instructions("Be brief.")
    chunks = collect(llm.events, LLMResponseChunkEvent)
    completed = collect(llm.events, LLMResponseCompletedEvent)
    try:
        response = await llm.simple_response("Say hello")
        await llm.events.wait()
    finally:
        await llm.close()
    assert isinstance(response, LLMResponseEvent)
    assert response.text == "Hello from Acme."
    assert [c.delta for c in chunks] == ["Hello ", "from ", "Acme."]  # type: ignore[attr-defined]
    assert completed[0].text == "Hello from Acme."  # type: ignore[attr-defined]
    sent = acme_provider.state.chat_requests[0]
    assert sent["messages"][0] == {"role": "system", "content": "Be brief."}
    assert sent["messages"][-1] == {"role": "user", "content": "Say hello"}
    assert "tools" not in sent


async def test_registered_tool_is_called_with_the_models_arguments(
        acme_provider: AcmeProvider) -> None:
    llm, calls = weather_llm(acme_provider)
    starts = collect(llm.events, ToolStartEvent)
    ends = collect(llm.events, ToolEndEvent)
    try:
        response = await llm.simple_response("What's the weather in Boulder?")
        await llm.events.wait()
    finally:
        await llm.close()

    assert calls == [{"city": "Boulder", "unit": "celsius"}]
    assert response.text == "It is sunny and 21 degrees in Boulder."
    # the tool was offered in the provider's format
    first, second = acme_provider.state.chat_requests
    (tool,) = first["tools"]
    assert tool["function"]["name"] == "get_weather"
    assert tool["function"]["description"] == "Get the current weather for a city"
    params = tool["function"]["parameters"]
    assert params["properties"]["city"]["type"] == "string" and params["required"] == ["city"]
    # the follow-up carried the call and its result
    assistant, tool_msg = second["messages"][-2:]
    assert assistant["tool_calls"][0]["id"] == "call_7"
    assert tool_msg["tool_call_id"] == "call_7"
    assert json.loads(tool_msg["content"]) == {"city": "Boulder", "sky": "sunny", "celsius": 21}
    assert starts[0].arguments == {"city": "Boulder", "unit": "celsius"}  # type: ignore[attr-defined]
    assert ends[0].success and ends[0].result["sky"] == "sunny"  # type: ignore[attr-defined]


async def test_the_runtime_drives_the_guide_plugin(acme_provider: AcmeProvider) -> None:
    """``respond()`` (what the LLM actor calls) works on the guide-style plugin."""
    llm, calls = weather_llm(acme_provider)
    items = []
    try:
        async for item in llm.respond("What's the weather in Boulder?"):
            items.append(item)
    finally:
        await llm.close()
    deltas = [i for i in items if isinstance(i, LLMResponseDelta)]
    final = items[-1]
    assert isinstance(final, LLMResponseFinal) and not final.interrupted and final.error is None
    assert final.text == "It is sunny and 21 degrees in Boulder."
    assert "".join(d.delta for d in deltas) == final.text
    assert calls == [{"city": "Boulder", "unit": "celsius"}]
    roles = [m.role for m in llm.conversation.messages]
    assert roles == ["user", "assistant"]
    assert llm.conversation.messages[-1].content == final.text
