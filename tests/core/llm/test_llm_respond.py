"""LLM.respond(): one driver for legacy and current plugins; epochs, barge-in, errors."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any

import msgpack
import pytest

from va_actors.core import llm
from va_actors.core.edge.types import Participant
from va_actors.core.events import BaseEvent
from va_actors.core.llm import LLMResponseDelta, LLMResponseEvent, LLMResponseFinal
from va_actors.core.llm.events import (
    LLMErrorEvent,
    LLMResponseChunkEvent,
    LLMResponseCompletedEvent,
    ToolEndEvent,
    ToolStartEvent,
)

Item = LLMResponseDelta | LLMResponseFinal


def capture(model: llm.LLM) -> list[BaseEvent]:
    got: list[BaseEvent] = []
    model.events.subscribe(prefix="")(got.append)
    return got


def assert_round_trips(events: Iterable[BaseEvent]) -> None:
    for event in events:
        data = event.to_dict()
        msgpack.packb(data)
        back = BaseEvent.from_dict(data)
        assert type(back) is type(event)
        again = back.to_dict()
        assert again.pop("timestamp") == pytest.approx(data.pop("timestamp"), abs=1e-3)
        assert again == data


def deltas(items: list[Item]) -> list[LLMResponseDelta]:
    return [i for i in items if isinstance(i, LLMResponseDelta)]


def final_of(items: list[Item]) -> LLMResponseFinal:
    assert isinstance(items[-1], LLMResponseFinal)
    assert sum(isinstance(i, LLMResponseFinal) for i in items) == 1
    return items[-1]


class StatusError(Exception):
    def __init__(self, status_code: int) -> None:
        super().__init__(f"HTTP {status_code}")
        self.status_code = status_code


# -- fake providers ----------------------------------------------------------------


class FakeChatAPI:
    """A scripted stand-in for an OpenAI-compatible chat API (a cloud service)."""

    def __init__(self, script: list[dict[str, Any]], *, delay: float = 0.0,
                 gate: asyncio.Event | None = None) -> None:
        self.script = list(script)
        self.requests: list[list[dict[str, Any]]] = []
        self.delay = delay
        self.gate = gate
        self.stream_closed = False

    async def create(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> Any:
        self.requests.append(json.loads(json.dumps(messages)))
        step = self.script.pop(0)
        if "error" in step:
            raise step["error"]
        if "tool" in step:
            name, args = step["tool"]
            assert any(t["function"]["name"] == name for t in tools)
            call = {"id": f"call_{len(self.requests)}", "type": "function",
                    "function": {"name": name, "arguments": json.dumps(args)}}
            return {"choices": [{"message": {"role": "assistant", "tool_calls": [call]}}]}
        return {"choices": [{"message": {"role": "assistant", "content": step["text"]}}]}

    async def stream(self, response: Any) -> AsyncIterator[str]:
        text = response["choices"][0]["message"]["content"]
        try:
            for i, word in enumerate(text.split(" ")):
                if self.gate is not None and i == 1:
                    await self.gate.wait()
                await asyncio.sleep(self.delay)
                yield word if i == 0 else " " + word
        finally:
            self.stream_closed = True


class GuideLLM(llm.LLM):
    """Written the way the public plugin guide shows (legacy, event-based)."""

    def __init__(self, model: str, client: FakeChatAPI) -> None:
        super().__init__()
        self.model = model
        self.client = client

    def _extract_tool_calls_from_response(self, response: Any) -> list[llm.NormalizedToolCallItem]:
        return self._extract_openai_tool_calls(response)

    def _create_tool_result_message(self, tool_calls: Any, results: Any) -> list[dict[str, Any]]:
        return self._create_openai_tool_result_messages(tool_calls, results)

    async def simple_response(self, text: str, processors: Any = None,
                              participant: Participant | None = None) -> LLMResponseEvent[Any]:
        messages = self._build_messages(text)
        tools = self._convert_tools_to_provider_format(self.get_available_functions())
        response = await self.client.create(messages, tools)
        rounds = 0
        while (calls := self._extract_tool_calls_from_response(response)) \
                and rounds < self.max_tool_rounds:
            rounds += 1
            outcomes = await self._execute_tools(calls)
            messages += self._create_tool_result_message([o[0] for o in outcomes],
                                                         [o[1] for o in outcomes])
            response = await self.client.create(messages, tools)
        total_text = ""
        async for chunk in self.client.stream(response):
            self.events.send(LLMResponseChunkEvent(
                plugin_name="fake", content_index=0, item_id="", output_index=0,
                sequence_number=0, delta=chunk))
            total_text += chunk
        llm_response = self._create_response_event(response, total_text)
        self.events.send(LLMResponseCompletedEvent(
            plugin_name="fake", original=llm_response.original, text=llm_response.text))
        return llm_response


class StreamingLLM(llm.LLM):
    """Current style: an async generator of deltas and a final."""

    provider_name = "streaming"

    def __init__(self, tokens: Iterable[str], *, delay: float = 0.0,
                 fail_after: int | None = None, error: Exception | None = None,
                 stall_after: int | None = None) -> None:
        super().__init__()
        self.tokens = tokens
        self.delay = delay
        self.fail_after = fail_after
        self.error = error
        self.stall_after = stall_after
        self.seen_messages: list[list[dict[str, Any]]] = []
        self.closed = False

    async def simple_response(self, text: str, participant: Participant | None = None,
                              ) -> AsyncIterator[Item]:
        self.seen_messages.append(self._build_messages(text))
        produced: list[str] = []
        try:
            for i, token in enumerate(self.tokens):
                if i == self.fail_after and self.error is not None:
                    raise self.error
                if i == self.stall_after:
                    await asyncio.Event().wait()
                await asyncio.sleep(self.delay)
                produced.append(token)
                yield LLMResponseDelta(delta=token)
            yield LLMResponseFinal(text="".join(produced), model="fake-1", input_tokens=3,
                                   output_tokens=len(produced))
        finally:
            self.closed = True


async def collect(model: llm.LLM, text: str, **kw: Any) -> list[Item]:
    return [item async for item in model.respond(text, **kw)]


# -- legacy and current plugins ----------------------------------------------------


async def test_guide_style_plugin_with_a_tool_round() -> None:
    client = FakeChatAPI([{"tool": ("get_weather", {"city": "Oslo"})},
                          {"text": "It is sunny in Oslo"}])
    model = GuideLLM("fake-1", client)
    model.set_instructions("You are terse.")
    events = capture(model)

    @model.register_function(description="Weather for a city")
    async def get_weather(city: str) -> dict[str, str]:
        return {"city": city, "sky": "sunny"}

    items = await collect(model, "weather in Oslo?", participant=Participant(user_id="u1"))
    final = final_of(items)
    assert "".join(d.delta for d in deltas(items)) == "It is sunny in Oslo"
    assert final.text == "It is sunny in Oslo" and not final.interrupted and final.error is None
    assert final.original["choices"][0]["message"]["content"] == "It is sunny in Oslo"
    assert {d.item_id for d in deltas(items)} == {final.item_id}
    assert [d.is_first_chunk for d in deltas(items)] == [True, False, False, False, False]
    assert [d.sequence_number for d in deltas(items)] == [0, 0, 0, 0, 0]  # the plugin's own

    first, second = client.requests
    assert first == [{"role": "system", "content": "You are terse."},
                     {"role": "user", "content": "weather in Oslo?"}]
    assert second[-1] == {"role": "tool", "tool_call_id": "call_1",
                          "content": '{"city": "Oslo", "sky": "sunny"}'}

    history = model.conversation.messages
    assert [(m.role, m.content, m.user_id) for m in history] == [
        ("user", "weather in Oslo?", "u1"), ("assistant", "It is sunny in Oslo", None)]
    assert history[1].id == final.item_id

    await asyncio.sleep(0)
    kinds = [type(e) for e in events]
    assert kinds.count(ToolStartEvent) == 1 and kinds.count(ToolEndEvent) == 1
    assert kinds.count(LLMResponseChunkEvent) == 5
    assert_round_trips(events)


async def test_current_style_plugin() -> None:
    model = StreamingLLM(["Hel", "lo", "", " there"])
    items = await collect(model, "hi")
    final = final_of(items)
    assert [d.delta for d in deltas(items)] == ["Hel", "lo", " there"]  # empty delta skipped
    assert [d.sequence_number for d in deltas(items)] == [0, 1, 2]
    assert deltas(items)[0].time_to_first_token_ms is not None
    assert final.text == "Hello there"
    assert (final.model, final.input_tokens, final.output_tokens) == ("fake-1", 3, 4)
    assert final.latency_ms is not None and final.time_to_first_token_ms is not None
    assert model.closed


async def test_legacy_plugin_that_forgets_to_return() -> None:
    class Forgetful(llm.LLM):
        async def simple_response(self, text: str, processors: Any = None,
                                  participant: Any = None) -> None:
            self.events.send(LLMResponseChunkEvent(delta="a"))
            self.events.send(LLMResponseCompletedEvent(text="a!", original={"raw": 1}))

    final = final_of(await collect(Forgetful(), "x"))
    assert final.text == "a!" and final.original == {"raw": 1}


async def test_plain_strings_may_be_yielded_and_bad_items_are_errors() -> None:
    class Strings(llm.LLM):
        async def simple_response(self, text: str, participant: Any = None,
                                  ) -> AsyncIterator[Any]:
            yield "a"
            yield "b"
            yield 42

    model = Strings()
    events = capture(model)
    items = await collect(model, "x")
    final = final_of(items)
    assert final.text == "ab"
    assert final.error is not None and "yielded a int" in final.error
    assert [type(e) for e in events] == [LLMErrorEvent]


# -- epochs and barge-in -----------------------------------------------------------


async def test_every_item_carries_the_epoch_in_force_at_the_start() -> None:
    model = StreamingLLM(["a", "b"])
    await model.interrupt()
    assert model.epoch == 1
    assert {i.epoch for i in await collect(model, "x")} == {1}
    await model.interrupt(epoch=5)
    await model.interrupt(epoch=3)  # older: ignored
    await model.interrupt(epoch=5)  # repeated broadcast: ignored
    assert model.epoch == 5
    assert {i.epoch for i in await collect(model, "y")} == {5}


async def test_interrupt_mid_stream_stops_within_one_delta() -> None:
    words = (f"w{i} " for i in itertools.count())
    model = StreamingLLM(words, delay=0.001)
    got: list[Item] = []
    async for item in model.respond("tell me everything"):
        got.append(item)
        if len(got) == 3:
            await model.interrupt()
    assert len(got) == 4  # three deltas, then straight to the final
    final = final_of(got)
    assert final.interrupted and final.epoch == 0 and final.error is None
    assert final.text == "w0 w1 w2 "
    await asyncio.sleep(0)
    assert model.closed  # the provider stream was cancelled

    reply = model.conversation.get(final.item_id or "")
    assert reply is not None and reply.interrupted and reply.content == "w0 w1 w2 "
    # the transport reports the user heard only the first word
    model.conversation.truncate_message(final.item_id or "", "w0")
    assert model._build_messages("sorry, go on")[-2:] == [
        {"role": "assistant", "content": "w0"}, {"role": "user", "content": "sorry, go on"}]


async def test_interrupt_mid_stream_of_a_legacy_plugin() -> None:
    gate = asyncio.Event()
    client = FakeChatAPI([{"text": "one two three four"}], gate=gate)
    model = GuideLLM("fake-1", client)
    events = capture(model)
    got: list[Item] = []
    async for item in model.respond("count"):
        got.append(item)
        if len(got) == 1:
            await model.interrupt()
            gate.set()
    assert [type(i) for i in got] == [LLMResponseDelta, LLMResponseFinal]
    final = final_of(got)
    assert final.interrupted and final.text == "one"
    await asyncio.sleep(0)
    assert client.stream_closed  # the provider stream was cancelled
    assert not [e for e in events if isinstance(e, LLMResponseCompletedEvent)]


async def test_interrupt_while_the_provider_stalls_returns_promptly() -> None:
    model = StreamingLLM(["first", "never"], stall_after=1)
    got: list[Item] = []

    async def barge_in() -> None:
        await asyncio.sleep(0.05)
        await model.interrupt()

    started = time.perf_counter()
    barge = asyncio.create_task(barge_in())
    async for item in model.respond("x"):
        got.append(item)
    await barge
    assert time.perf_counter() - started < 0.5
    assert final_of(got).interrupted and final_of(got).text == "first"
    assert model.closed


async def test_new_reply_supersedes_the_one_in_flight() -> None:
    model = StreamingLLM(["a", "b"], stall_after=1)
    first = model.respond("one")
    assert isinstance(await anext(first), LLMResponseDelta)
    model.stall_after = None
    second = await collect(model, "two")
    assert final_of(second).text == "ab" and not final_of(second).interrupted
    leftover = [item async for item in first]
    assert final_of(leftover).interrupted and final_of(leftover).text == "a"
    assert [(m.role, m.content) for m in model.conversation.messages] == [
        ("user", "one"), ("assistant", "a"), ("user", "two"), ("assistant", "ab")]


async def test_caller_stopping_early_records_an_interrupted_reply() -> None:
    model = StreamingLLM((f"t{i}" for i in itertools.count()), delay=0.001)
    async for _ in model.respond("go"):
        break
    await asyncio.sleep(0.01)
    assert model.closed
    reply = model.conversation.messages[-1]
    assert reply.role == "assistant" and reply.interrupted and reply.content == "t0"


async def test_interrupt_overrides_advance_the_epoch_exactly_once() -> None:
    class NoSuper(StreamingLLM):
        hook_calls = 0

        async def interrupt(self) -> None:  # type: ignore[override] # no epoch, no super()
            self.hook_calls += 1

    class WithSuper(StreamingLLM):
        hook_calls = 0

        async def interrupt(self, epoch: int | None = None) -> None:
            await super().interrupt(epoch)
            self.hook_calls += 1

    class Deeper(WithSuper):
        async def interrupt(self, epoch: int | None = None) -> None:
            await super().interrupt(epoch)

    class Broken(StreamingLLM):
        async def interrupt(self) -> None:  # type: ignore[override]
            raise RuntimeError("provider gone")

    plain = NoSuper([])
    await plain.interrupt()
    await plain.interrupt(epoch=4)  # type: ignore[call-arg]
    await plain.interrupt(epoch=2)  # type: ignore[call-arg]
    assert (plain.epoch, plain.hook_calls) == (4, 2)

    for cls in (WithSuper, Deeper):
        model = cls([])
        await model.interrupt()
        await model.interrupt()
        assert (model.epoch, model.hook_calls) == (2, 2)

    broken = Broken([])
    events = capture(broken)
    await broken.interrupt()
    assert broken.epoch == 1
    assert [e.context for e in events if isinstance(e, LLMErrorEvent)] == ["interrupt"]


# -- provider errors ---------------------------------------------------------------


@pytest.mark.parametrize(("error", "recoverable"), [
    (ConnectionError("socket closed"), True),
    (StatusError(503), True),
    (StatusError(429), True),
    (StatusError(401), False),
    (ValueError("bad model name"), False),
])
async def test_provider_exception_becomes_an_error_event_and_a_final(
        error: Exception, recoverable: bool) -> None:
    model = StreamingLLM(["a", "b", "c"], fail_after=2, error=error)
    events = capture(model)
    items = await collect(model, "x")
    final = final_of(items)
    assert [d.delta for d in deltas(items)] == ["a", "b"]
    assert final.text == "ab" and not final.interrupted
    assert final.error == f"{type(error).__name__}: {error}"
    errors = [e for e in events if isinstance(e, LLMErrorEvent)]
    assert len(errors) == 1
    assert errors[0].is_recoverable is recoverable
    assert errors[0].plugin_name == "streaming" and errors[0].context == "simple_response"
    assert model.conversation.messages[-1].content == "ab"
    assert_round_trips(events)


async def test_legacy_provider_exception() -> None:
    model = GuideLLM("fake-1", FakeChatAPI([{"error": TimeoutError("read timed out")}]))
    events = capture(model)
    final = final_of(await collect(model, "x"))
    assert final.text == "" and final.error == "TimeoutError: read timed out"
    assert [(type(e), e.is_recoverable) for e in events if isinstance(e, LLMErrorEvent)] == [
        (LLMErrorEvent, True)]
    assert [m.role for m in model.conversation.messages] == ["user"]  # nothing was said


async def test_an_error_the_plugin_reported_itself_is_not_sent_twice() -> None:
    class SelfReporting(llm.LLM):
        async def simple_response(self, text: str, processors: Any = None,
                                  participant: Any = None) -> LLMResponseEvent[None]:
            error = RuntimeError("quota")
            self.events.send(LLMErrorEvent(plugin_name="x", error=error))
            return LLMResponseEvent(None, "", exception=error)

    model = SelfReporting()
    events = capture(model)
    final = final_of(await collect(model, "x"))
    assert final.error == "RuntimeError: quota"
    assert len([e for e in events if isinstance(e, LLMErrorEvent)]) == 1


# -- prompt building ---------------------------------------------------------------


async def test_build_messages_uses_history_without_repeating_the_new_text() -> None:
    model = StreamingLLM(["ok"])
    model.set_instructions("Be kind.")
    await collect(model, "first")
    await collect(model, "second")
    assert model.seen_messages[-1] == [
        {"role": "system", "content": "Be kind."},
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": "second"},
    ]
    assert model._build_messages(include_history=False) == [
        {"role": "system", "content": "Be kind."}]


def test_set_instructions_expands_markdown_references(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "faq.md").write_text("Q: why?\nA: because.", encoding="utf-8")
    (tmp_path.parent / "secret.md").write_text("do not read", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    model = StreamingLLM([])
    model.set_instructions("Answer with @docs/faq.md and @missing.md and @../secret.md; "
                           "mail me@example.md")
    text = model.instructions
    assert text.startswith("Answer with @docs/faq.md")
    assert "## Referenced Documentation:" in text
    assert "### docs/faq.md\nQ: why?\nA: because." in text
    assert "### missing.md\n*(File not found or could not be read)*" in text
    assert "do not read" not in text
    assert "### example.md" not in text
    assert model._instructions == text  # the name the plugin guide uses
    with pytest.raises(TypeError):
        model.set_instructions(42)  # type: ignore[arg-type]


async def test_plugin_without_a_participant_parameter() -> None:
    class TextOnly(llm.LLM):
        async def simple_response(self, text: str) -> LLMResponseEvent[None]:
            return LLMResponseEvent(None, text.upper())

    final = final_of(await collect(TextOnly(), "shout", participant=Participant(user_id="u")))
    assert final.text == "SHOUT" and final.error is None


async def test_an_interrupt_hook_may_interrupt_another_llm() -> None:
    inner = StreamingLLM([])

    class Wrapper(StreamingLLM):
        async def interrupt(self, epoch: int | None = None) -> None:
            await inner.interrupt()

    outer = Wrapper([])
    await outer.interrupt()
    assert (outer.epoch, inner.epoch) == (1, 1)


# -- a user turn that goes on before its reply was heard (issue 17) ------------------


async def test_a_continuation_of_an_unheard_turn_supersedes_it_as_one_user_turn() -> None:
    model = StreamingLLM(["a", "b"], stall_after=1)
    first = model.respond("If the reader will excuse me,")
    assert isinstance(await anext(first), LLMResponseDelta)
    model.stall_after = None
    second = await collect(model, "I will say nothing.", continues=True)
    assert final_of(second).text == "ab" and not final_of(second).interrupted
    leftover = [item async for item in first]
    assert final_of(leftover).interrupted
    # One user turn with both parts, one reply; the provider was asked the whole turn.
    assert [(m.role, m.content) for m in model.conversation.messages] == [
        ("user", "If the reader will excuse me, I will say nothing."), ("assistant", "ab")]
    assert model.seen_messages[-1] == [
        {"role": "user", "content": "If the reader will excuse me, I will say nothing."}]


async def test_a_continuation_after_the_reply_finished_unheard_replaces_that_reply() -> None:
    model = StreamingLLM(["a", "b"])
    await collect(model, "one")
    await collect(model, "two")  # finished, but the user never heard it
    await collect(model, "and three", continues=True)
    assert [(m.role, m.content) for m in model.conversation.messages] == [
        ("user", "one"), ("assistant", "ab"), ("user", "two and three"), ("assistant", "ab")]
    assert model.seen_messages[-1][-1] == {"role": "user", "content": "two and three"}


async def test_continues_without_an_earlier_turn_is_a_new_turn() -> None:
    model = StreamingLLM(["ok"])
    await collect(model, "hello", continues=True)
    assert [(m.role, m.content) for m in model.conversation.messages] == [
        ("user", "hello"), ("assistant", "ok")]
