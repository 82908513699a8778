"""Tool execution on the LLM base: concurrent, bounded, deduplicated, never raising."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import msgpack
import pytest

from va_actors.core import llm
from va_actors.core.events import BaseEvent
from va_actors.core.llm import LLMResponseDelta, LLMResponseFinal
from va_actors.core.llm.events import ToolEndEvent, ToolStartEvent


class Stub(llm.LLM):
    """The smallest LLM: tests call the tool helpers directly."""

    async def simple_response(self, text: str, participant: Any = None,
                              ) -> AsyncIterator[LLMResponseDelta | LLMResponseFinal]:
        yield LLMResponseFinal(text=text)


def capture(model: llm.LLM) -> list[BaseEvent]:
    got: list[BaseEvent] = []
    model.events.subscribe(prefix="")(got.append)
    return got


def assert_round_trips(event: BaseEvent) -> None:
    data = event.to_dict()
    msgpack.packb(data)
    back = BaseEvent.from_dict(data)
    assert type(back) is type(event)
    again = back.to_dict()
    assert again.pop("timestamp") == pytest.approx(data.pop("timestamp"), abs=1e-3)
    assert again == data


class Unserialisable:
    pass


@pytest.fixture
def model() -> Stub:
    stub = Stub()

    @stub.register_function()
    async def ok(x: int) -> dict[str, int]:
        return {"double": x * 2}

    @stub.register_function()
    async def boom() -> None:
        raise ValueError("bad input")

    @stub.register_function()
    async def slow() -> str:
        await asyncio.sleep(5)
        return "late"

    @stub.register_function()
    async def weird() -> Unserialisable:
        return Unserialisable()

    return stub


async def test_failing_tools_give_error_results_and_never_raise(model: Stub) -> None:
    events = capture(model)
    calls: list[dict[str, Any]] = [
        {"name": "ok", "arguments_json": {"x": 2}, "id": "c1"},
        {"name": "boom", "arguments_json": {}, "id": "c2"},
        {"name": "slow", "arguments_json": {}, "id": "c3"},
        {"name": "weird", "arguments_json": {}, "id": "c4"},
        {"name": "missing", "arguments_json": {}, "id": "c5"},
        {"name": "ok", "arguments_json": "{not json", "id": "c6"},
        {"name": "ok", "arguments_json": {"y": 1}, "id": "c7"},
    ]
    started = time.perf_counter()
    outcomes = await model._execute_tools(calls, timeout_s=0.05)
    assert time.perf_counter() - started < 1.0  # the slow tool was cut off

    assert [tc["id"] for tc, _, _ in outcomes] == [c["id"] for c in calls]
    results = {tc["id"]: (result, error) for tc, result, error in outcomes}
    assert results["c1"] == ({"double": 4}, None)
    expected = {
        "c2": "tool 'boom' failed: ValueError: bad input",
        "c3": "timed out after 0.05 s",
        "c4": "cannot be serialised to JSON",
        "c5": "unknown function 'missing'",
        "c6": "not valid JSON",
        "c7": "unexpected argument(s) 'y'",
    }
    for call_id, fragment in expected.items():
        result, error = results[call_id]
        assert fragment in result["error"], (call_id, result)
        assert isinstance(error, Exception)
    assert isinstance(results["c2"][1], ValueError)
    assert isinstance(results["c3"][1], llm.ToolTimeoutError)
    assert isinstance(results["c4"][1], llm.ToolResultError)

    ends = {e.tool_call_id: e for e in events if isinstance(e, ToolEndEvent)}
    starts = [e for e in events if isinstance(e, ToolStartEvent)]
    assert len(starts) == len(calls)
    assert ends["c1"].success and ends["c1"].result == {"double": 4}
    for call_id in expected:
        assert ends[call_id].success is False
        assert ends[call_id].error == results[call_id][0]["error"]
    for event in events:
        assert_round_trips(event)


async def test_concurrency_cap_is_honoured() -> None:
    model = Stub()
    active = 0
    peak = 0

    @model.register_function()
    async def work(i: int) -> int:
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        await asyncio.sleep(0.02)
        active -= 1
        return i

    calls: list[dict[str, Any]] = [{"name": "work", "arguments_json": {"i": i}} for i in range(7)]
    outcomes = await model._execute_tools(calls, max_concurrency=3)
    assert [result for _, result, _ in outcomes] == list(range(7))
    assert peak == 3
    with pytest.raises(ValueError, match="max_concurrency"):
        await model._execute_tools(calls, max_concurrency=0)


async def test_sync_tools_run_concurrently_in_threads() -> None:
    model = Stub()

    @model.register_function()
    def blocking(i: int) -> int:
        time.sleep(0.1)
        return i

    started = time.perf_counter()
    outcomes = await model._execute_tools(
        [{"name": "blocking", "arguments_json": {"i": i}} for i in range(4)])
    assert [r for _, r, _ in outcomes] == [0, 1, 2, 3]
    assert time.perf_counter() - started < 0.3


async def test_identical_calls_in_one_batch_run_once() -> None:
    model = Stub()
    runs = 0

    @model.register_function()
    async def lookup(city: str, unit: str = "C") -> str:
        nonlocal runs
        runs += 1
        return f"{city}/{unit}"

    calls: list[dict[str, Any]] = [
        {"name": "lookup", "arguments_json": {"city": "Oslo", "unit": "C"}, "id": "a"},
        {"name": "lookup", "arguments_json": '{"unit": "C", "city": "Oslo"}', "id": "b"},
        {"name": "lookup", "arguments_json": {"city": "Rome"}, "id": "c"},
    ]
    outcomes = await model._execute_tools(calls)
    assert runs == 2
    assert [(tc["id"], r) for tc, r, _ in outcomes] == [
        ("a", "Oslo/C"), ("b", "Oslo/C"), ("c", "Rome/C")]


# -- a fake OpenAI-compatible provider for the round tests -------------------------


class EndlessToolModel:
    """A chat-completions fake that asks for a tool every time it is called."""

    def __init__(self, same_args: bool = False) -> None:
        self.requests: list[list[dict[str, Any]]] = []
        self.same_args = same_args

    async def create(self, messages: list[dict[str, Any]]) -> dict[str, Any]:
        self.requests.append(messages)
        n = 0 if self.same_args else len(self.requests)
        return {"choices": [{"message": {"role": "assistant", "content": None, "tool_calls": [
            {"id": f"call_{len(self.requests)}", "type": "function",
             "function": {"name": "lookup", "arguments": json.dumps({"n": n})}}]}}]}


class OpenAIStyle(llm.LLM):
    """Uses the base's OpenAI helpers and the generic tool-round driver."""

    def __init__(self, client: EndlessToolModel, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.client = client
        self.lookups = 0

        @self.register_function()
        async def lookup(n: int) -> int:
            self.lookups += 1
            return n

    def _extract_tool_calls_from_response(self, response: Any) -> list[llm.NormalizedToolCallItem]:
        return self._extract_openai_tool_calls(response)

    def _create_tool_result_message(self, tool_calls: Any, results: Any) -> list[dict[str, Any]]:
        return self._create_openai_tool_result_messages(tool_calls, results)

    async def simple_response(self, text: str, participant: Any = None,
                              ) -> AsyncIterator[LLMResponseDelta | LLMResponseFinal]:
        messages = self._build_messages(text)

        async def follow_up(tool_messages: list[dict[str, Any]]) -> Any:
            messages.extend(tool_messages)
            return await self.client.create(list(messages))

        response = await self._run_tool_rounds(await self.client.create(list(messages)),
                                               follow_up)
        yield LLMResponseFinal(text="gave up", original=response)


async def test_max_tool_rounds_stops_a_model_that_keeps_calling_tools() -> None:
    client = EndlessToolModel()
    model = OpenAIStyle(client)
    assert model.max_tool_rounds == 3
    items = [item async for item in model.respond("loop forever")]
    assert items[-1].text == "gave up"  # type: ignore[union-attr]
    assert model.lookups == 3
    assert len(client.requests) == 1 + 3

    client2 = EndlessToolModel()
    model2 = OpenAIStyle(client2, max_tool_rounds=1)
    _ = [item async for item in model2.respond("loop")]
    assert model2.lookups == 1 and len(client2.requests) == 2


async def test_repeated_call_across_rounds_of_one_reply_runs_once() -> None:
    client = EndlessToolModel(same_args=True)
    model = OpenAIStyle(client)
    _ = [item async for item in model.respond("same again")]
    assert len(client.requests) == 4  # three rounds still happened...
    assert model.lookups == 1  # ...but the identical call ran only once
    # every round still answered each tool call id (providers reject a missing one)
    last = client.requests[-1]
    answered = [m["tool_call_id"] for m in last if m["role"] == "tool"]
    assert answered == ["call_1", "call_2", "call_3"]
    # a new reply starts with a fresh dedup memory
    _ = [item async for item in model.respond("again")]
    assert model.lookups == 2


def test_openai_tool_format_helpers() -> None:
    model = Stub()

    @model.register_function(description="Weather")
    async def weather(city: str) -> str:
        return city

    tools = model._get_tools_for_provider()
    assert tools == [{"type": "function", "function": {
        "name": "weather", "description": "Weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                       "required": ["city"]}}}]

    class Obj:
        def __init__(self, **kw: Any) -> None:
            self.__dict__.update(kw)

    response = Obj(choices=[Obj(message=Obj(tool_calls=[
        Obj(id="t1", function=Obj(name="weather", arguments='{"city": "Oslo"}'))]))])
    calls = model._extract_openai_tool_calls(response)
    assert calls == [{"type": "tool_call", "name": "weather",
                      "arguments_json": {"city": "Oslo"}, "id": "t1"}]
    messages = model._create_openai_tool_result_messages(calls, [{"temp": 3}])
    assert messages[0]["role"] == "assistant"
    assert messages[0]["tool_calls"][0]["function"] == {"name": "weather",
                                                        "arguments": '{"city": "Oslo"}'}
    assert messages[1] == {"role": "tool", "tool_call_id": "t1", "content": '{"temp": 3}'}
    # the no-op defaults of Vision Agents
    assert model._extract_tool_calls_from_response(response) == []
    assert model._create_tool_result_message(calls, [1]) == []


def test_sanitize_tool_output() -> None:
    model = Stub()
    assert model._sanitize_tool_output("plain") == "plain"
    assert model._sanitize_tool_output({"a": 1}) == '{"a": 1}'
    assert model._sanitize_tool_output(ValueError("x")) == "Error: ValueError: x"
    cut = model._sanitize_tool_output("y" * 100, max_chars=10)
    assert cut.startswith("y" * 10 + "…") and "truncated: 90 more characters" in cut


def test_dedup_and_execute_compat() -> None:
    model = Stub()

    @model.register_function()
    async def f(a: int) -> int:
        return a

    async def run() -> None:
        seen: set[tuple[str, str]] = set()
        first, seen = await model._dedup_and_execute([{"name": "f", "arguments_json": {"a": 1}}],
                                                     seen=seen)
        second, seen = await model._dedup_and_execute([{"name": "f", "arguments_json": {"a": 1}}],
                                                      seen=seen)
        assert [r for _, r, _ in first] == [1]
        assert second == []

    asyncio.run(run())


async def test_a_cancelled_tool_call_still_ends_with_a_tool_end_event() -> None:
    model = Stub()
    events = capture(model)
    started = asyncio.Event()

    @model.register_function()
    async def hang() -> None:
        started.set()
        await asyncio.Event().wait()

    task = asyncio.create_task(model._execute_tools([{"name": "hang", "id": "h"}]))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    ends = [e for e in events if isinstance(e, ToolEndEvent)]
    assert [(e.tool_call_id, e.success, e.error) for e in ends] == [("h", False, "cancelled")]
