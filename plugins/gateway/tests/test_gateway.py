"""The realtime gateway, driven in-process: a real aiohttp server and WebSocket client.

The pipeline's side is played by the test: it hands the node the messages a
turn detector, STT, LLM and TTS publish (the same types, topics and header
fields) and reads what the node publishes from a recording NodeContext.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import numpy as np
import pytest

from va_actors.core.audio import AudioFormat, PcmData
from va_actors.core.edge import AudioPlaybackEvent, Participant
from va_actors.core.llm.events import LLMContextEvent
from va_actors.core.node import Inbound
from va_actors.core.stt import STTTranscriptEvent
from va_actors.core.tts.events import TTSSynthesisCompleteEvent
from va_actors.core.turn_detection import TurnEndedEvent, TurnStartedEvent
from va_actors.plugins.gateway import RealtimeGateway
from va_actors.plugins.gateway.scripted_client import ScriptedRealtimeClient

# -- the pipeline's side ----------------------------------------------------------------


@dataclass
class Sent:
    stream: str
    value: Any
    epoch: int
    fields: dict[str, Any]


@dataclass
class FakeContext:
    """Records what the gateway publishes; the supervisor has started it."""

    name: str = "gw"
    epoch: int = 0
    sent: list[Sent] = field(default_factory=list)
    drops: Counter[str] = field(default_factory=Counter)

    def publish(self, stream: str, value: Any, *, epoch: int | None = None,
                final: bool = False, **fields: Any) -> None:
        self.sent.append(Sent(stream, value, self.epoch if epoch is None else epoch, fields))

    async def wait_started(self) -> None:
        return None

    def count_drop(self, reason: str, n: int = 1) -> None:
        self.drops[reason] += n

    def on(self, stream: str) -> list[Any]:
        return [s.value for s in self.sent if s.stream == stream]


class Pipeline:
    """Stand-ins for the actors behind the gateway: they hand it their messages."""

    def __init__(self, node: RealtimeGateway, ctx: FakeContext) -> None:
        self.node, self.ctx = node, ctx
        self.seq = 0

    async def _give(self, topic: str, value: Any, **fields: Any) -> None:
        self.seq += 1
        await self.node.on_message(Inbound(topic, value, self.ctx.epoch, self.seq, 0,
                                           topic.partition(".")[0], fields))

    def participant(self) -> Participant:
        audio = self.ctx.on("audio")
        return audio[-1].participant if audio else Participant(user_id="user", id="")

    async def turn_started(self, start_ms: float = 120.0) -> None:
        await self._give("turn.turn", TurnStartedEvent(participant=self.participant(),
                                                       custom={"start_ms": start_ms}))

    async def turn_ended(self, detected_ms: float = 1500.0) -> None:
        await self._give("turn.turn", TurnEndedEvent(participant=self.participant(),
                                                     custom={"detected_ms": detected_ms}))

    async def transcript(self, text: str) -> None:
        await self._give("stt.transcript", STTTranscriptEvent(text=text,
                                                              participant=self.participant()))

    async def llm(self, reply_id: str, *deltas: str, final: bool = True,
                  interrupted: bool = False) -> None:
        for i, delta in enumerate(deltas):
            await self._give("llm.text", delta, final=False, response_id=reply_id, index=i)
        if final:
            extra = {"interrupted": True} if interrupted else {}
            await self._give("llm.text", "".join(deltas), final=True, response_id=reply_id,
                             index=len(deltas), **extra)

    async def tts(self, reply_id: str, sentence: str, seconds: float = 0.5,
                  rate: int = 22050, pieces: int = 5) -> None:
        samples = (3000 * np.sin(np.arange(int(rate * seconds)) * 0.05)).astype(np.int16)
        for part in np.array_split(samples, pieces):
            await self._give("tts.audio", PcmData(rate, AudioFormat.S16, part), text=sentence,
                             response_id=reply_id)

    async def synthesised(self, sentence: str) -> None:
        await self._give("tts.events", TTSSynthesisCompleteEvent(text=sentence))


@dataclass
class Rig:
    node: RealtimeGateway
    ctx: FakeContext
    pipeline: Pipeline
    clients: list[ScriptedRealtimeClient] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.node.url

    def client(self, **kw: Any) -> ScriptedRealtimeClient:
        client = ScriptedRealtimeClient(self.url, **kw)
        self.clients.append(client)
        return client


async def _rig(run: bool = True, **params: Any) -> AsyncIterator[Rig]:
    ctx = FakeContext()
    node = RealtimeGateway(port=0, response_idle_ms=300, **params)
    await node.start(ctx)
    runner = asyncio.create_task(node.run(ctx)) if run else None
    await asyncio.sleep(0)
    rig = Rig(node, ctx, Pipeline(node, ctx))
    try:
        yield rig
        for client in rig.clients:  # every test checks the shapes of what it got
            client.check_protocol()
    finally:
        if runner is not None:
            runner.cancel()
            await asyncio.gather(runner, return_exceptions=True)
        await node.close()


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    async for r in _rig():
        yield r


async def until(condition: Callable[[], Any], timeout: float = 5.0) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while not (value := condition()):
        assert asyncio.get_running_loop().time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.005)
    return value


def error_of(event: dict[str, Any]) -> dict[str, Any]:
    assert event["type"] == "error", event
    error: dict[str, Any] = event["error"]
    assert error["type"] == "invalid_request_error"
    return error


def pcm16(seconds: float, rate: int = 24000) -> str:
    samples = (8000 * np.sin(np.arange(int(rate * seconds)) * 2 * np.pi * 300 / rate))
    return base64.b64encode(samples.astype("<i2").tobytes()).decode()


async def speak_turn(rig: Rig, client: ScriptedRealtimeClient, text: str) -> None:
    """One user turn as the pipeline reports it: audio, turn start and end, transcript."""
    await client.send({"type": "input_audio_buffer.append", "audio": pcm16(0.3)})
    await until(lambda: rig.ctx.on("audio"))
    await rig.pipeline.turn_started()
    await rig.pipeline.turn_ended()
    await rig.pipeline.transcript(text)


# -- the HTTP side -------------------------------------------------------------------------


async def test_health_says_503_until_the_pipeline_runs_then_200() -> None:
    async for r in _rig(run=False):
        async with aiohttp.ClientSession() as http:
            base = f"http://127.0.0.1:{r.node.port}"
            async with http.get(f"{base}/health") as reply:
                assert reply.status == 503
            runner = asyncio.create_task(r.node.run(r.ctx))
            try:
                await asyncio.sleep(0.01)
                async with http.get(f"{base}/health") as reply:
                    assert reply.status == 200
                    assert (await reply.json())["status"] == "ok"
            finally:
                runner.cancel()
                await asyncio.gather(runner, return_exceptions=True)


async def test_a_taken_port_fails_the_start_with_the_address() -> None:
    async for r in _rig():
        other = RealtimeGateway(port=r.node.port)
        with pytest.raises(OSError, match=f"cannot listen on 127.0.0.1:{r.node.port}"):
            await other.start(FakeContext())


async def test_a_second_client_gets_an_error_and_is_closed(rig: Rig) -> None:
    async with rig.client() as first:
        await first.next("session.created")
        async with rig.client() as second:
            event = await second.next("error")
            assert error_of(event)["code"] == "session_limit_reached"
            assert "one realtime session at a time" in event["error"]["message"]
            await until(lambda: second.close_code is not None)
            assert second.close_code == 1013
        # The first session is unaffected.
        await first.send({"type": "session.update", "session": {"instructions": "Hi."}})
        assert (await first.next("session.updated"))["session"]["instructions"] == "Hi."
    async with rig.client() as third:  # once the first left, a new one is served
        await third.next("session.created")


@pytest.mark.parametrize("headers", [
    {"OpenAI-Beta": "realtime=v1"},
    {"Sec-WebSocket-Protocol": "realtime, openai-beta.realtime-v1"},
])
async def test_the_beta_protocol_is_refused(rig: Rig, headers: dict[str, str]) -> None:
    async with rig.client(headers=headers) as client:
        assert error_of(await client.next("error"))["code"] == "beta_api_shape_disabled"
        await until(lambda: client.close_code is not None)
        assert client.close_code == 4000


async def test_api_key_and_origin_are_checked() -> None:
    async for r in _rig(api_key="s3cret"):
        async with aiohttp.ClientSession() as http:
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await http.ws_connect(r.url)
            assert refused.value.status == 401
            with pytest.raises(aiohttp.WSServerHandshakeError) as foreign:
                await http.ws_connect(r.url, headers={"Authorization": "Bearer s3cret",
                                                      "Origin": "https://evil.example"})
            assert foreign.value.status == 403
        async with ScriptedRealtimeClient(r.url, {"Authorization": "Bearer s3cret",
                                                  "Origin": "http://localhost:3000"}) as ok:
            await ok.next("session.created")
        # A browser cannot set headers: the key comes as a subprotocol.
        browser = {"Sec-WebSocket-Protocol": "realtime, openai-insecure-api-key.s3cret",
                   "Origin": "http://127.0.0.1:8000"}
        async with ScriptedRealtimeClient(r.url, browser) as page:
            await page.next("session.created")
        assert "s3cret" not in repr(r.node)


# -- session ----------------------------------------------------------------------------------


async def test_session_created_then_updated_with_the_fields_sent(rig: Rig) -> None:
    async with ScriptedRealtimeClient(rig.url + "?model=gpt-realtime") as client:
        created = (await client.next("session.created"))["session"]
        assert created["type"] == "realtime" and created["object"] == "realtime.session"
        assert created["id"].startswith("sess_") and created["model"] == "gpt-realtime"
        assert created["audio"]["input"]["format"] == {"type": "audio/pcm", "rate": 24000}
        assert created["audio"]["output"]["format"] == {"type": "audio/pcm", "rate": 24000}
        assert created["audio"]["input"]["turn_detection"]["type"] == "server_vad"
        [fresh] = rig.ctx.on("transcript")
        assert isinstance(fresh, LLMContextEvent) and fresh.new_conversation
        tools = [{"type": "function", "name": "get_weather", "description": "Weather.",
                  "parameters": {"type": "object", "properties": {}}}]
        await client.send({"type": "session.update", "session": {
            "type": "realtime", "instructions": "Answer in French.", "tools": tools,
            "audio": {"input": {"format": {"type": "audio/pcm", "rate": 16000},
                                "turn_detection": {"type": "semantic_vad", "eagerness": "low"}},
                      "output": {"voice": "marin"}}}})
        updated = (await client.next("session.updated"))["session"]
        assert updated["instructions"] == "Answer in French."
        assert updated["tools"] == tools
        assert updated["audio"]["input"]["format"] == {"type": "audio/pcm", "rate": 16000}
        assert updated["audio"]["input"]["turn_detection"] == {
            "type": "semantic_vad", "eagerness": "low", "create_response": True,
            "interrupt_response": True}
        assert updated["audio"]["output"] == {**created["audio"]["output"], "voice": "marin"}
        assert {k: v for k, v in updated.items() if k not in ("instructions", "tools", "audio")} \
            == {k: v for k, v in created.items() if k not in ("instructions", "tools", "audio")}
        # The instructions reach the LLM, taken as written.
        context = rig.ctx.on("transcript")[-1]
        assert isinstance(context, LLMContextEvent)
        assert (context.instructions, context.new_conversation) == ("Answer in French.", False)
        mark = len(client.received)
        await client.send({"type": "session.update",
                           "session": {"audio": {"input": {"turn_detection": None}}}})
        manual = await client.next("session.updated", after=mark)
        assert manual["session"]["audio"]["input"]["turn_detection"] is None


@pytest.mark.parametrize(("update", "param", "code"), [
    ({"modalities": ["audio"]}, "session.modalities", "unknown_parameter"),
    ({"audio": {"input": {"format": {"type": "audio/opus"}}}},
     "session.audio.input.format.type", "invalid_value"),
    ({"audio": {"output": {"format": {"type": "audio/pcm", "rate": 44}}}},
     "session.audio.output.format.rate", "invalid_value"),
    ({"audio": {"input": {"turn_detection": {"type": "push_to_talk"}}}},
     "session.audio.input.turn_detection.type", "invalid_value"),
    ({"output_modalities": ["audio", "text"]}, "session.output_modalities", "invalid_value"),
    ({"type": "transcription"}, "session.type", "invalid_value"),
    ({"instructions": 5}, "session.instructions", "invalid_value"),
])
async def test_a_bad_session_update_is_an_error_and_changes_nothing(
        rig: Rig, update: dict[str, Any], param: str, code: str) -> None:
    async with rig.client() as client:
        before = (await client.next("session.created"))["session"]
        await client.send({"type": "session.update", "event_id": "evt_1",
                           "session": {"instructions": "changed", **update}})
        error = error_of(await client.next("error"))
        assert (error["param"], error["code"], error["event_id"]) == (param, code, "evt_1")
        assert param.split(".")[-1] in error["message"]
        await client.send({"type": "session.update", "session": {}})
        assert (await client.next("session.updated"))["session"] == before


@pytest.mark.parametrize(("frame", "code", "says"), [
    ("{not json", "invalid_json", "not valid JSON"),
    ('["session.update"]', "invalid_event", "JSON object with a 'type'"),
    ('{"type": "response.audio.delta"}', "invalid_event", "unknown client event type"),
    ('{"type": "input_audio_buffer.append", "audio": "%%%not base64"}', "invalid_audio",
     "not valid base64"),
    ('{"type": "input_audio_buffer.append", "audio": "AAAA"}', "invalid_audio",
     "not a whole number of 16-bit samples"),
    ('{"type": "input_audio_buffer.commit"}', "input_audio_buffer_commit_empty", "0 ms"),
    ('{"type": "response.cancel"}', "response_cancel_not_active", "nothing to cancel"),
    ('{"type": "response.create"}', "no_user_input", "nothing to respond to"),
    ('{"type": "conversation.item.truncate", "item_id": "item_x", "audio_end_ms": 10}',
     "item_not_found", "only assistant audio"),
    ('{"type": "conversation.item.create", "item": {"type": "message", "role": "assistant",'
     ' "content": [{"type": "output_text", "text": "hi"}]}}', "invalid_value",
     "only user messages"),
])
async def test_bad_client_input_gets_an_error_and_the_session_goes_on(
        rig: Rig, frame: str, code: str, says: str) -> None:
    async with rig.client() as client:
        await client.next("session.created")
        await client.send_raw(frame)
        error = error_of(await client.next("error"))
        assert error["code"] == code and says in error["message"], error
        await client.send({"type": "session.update", "session": {"instructions": "still here"}})
        assert (await client.next("session.updated"))["session"]["instructions"] == "still here"


async def test_a_binary_frame_is_an_error(rig: Rig) -> None:
    async with aiohttp.ClientSession() as http, http.ws_connect(rig.url) as ws:
        assert json.loads((await ws.receive()).data)["type"] == "session.created"
        await ws.send_bytes(b"\x00\x01")
        error = json.loads((await ws.receive()).data)
        assert error_of(error)["code"] == "invalid_event" and "JSON text" in error["error"][
            "message"]


# -- audio in ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("fmt", "rate", "width"), [
    ({"type": "audio/pcm", "rate": 24000}, 24000, 2),
    ({"type": "audio/pcm", "rate": 48000}, 48000, 2),
    ({"type": "audio/pcmu"}, 8000, 1),
])
async def test_appended_audio_reaches_the_pipeline_as_20_ms_of_16_khz(
        rig: Rig, fmt: dict[str, Any], rate: int, width: int) -> None:
    async with rig.client() as client:
        session = (await client.next("session.created"))["session"]
        await client.send({"type": "session.update",
                           "session": {"audio": {"input": {"format": fmt}}}})
        await client.next("session.updated")
        one_second = bytes(rate * width) if width == 1 else base64.b64decode(pcm16(1.0, rate))
        step = len(one_second) // 7 // width * width  # pieces of no whole 20 ms
        for i in range(0, len(one_second), step):
            piece = one_second[i:i + step]
            await client.send({"type": "input_audio_buffer.append",
                               "audio": base64.b64encode(piece).decode()})
        chunks = await until(lambda: (a := rig.ctx.on("audio")) and sum(
            c.num_samples for c in a) >= 14400 and a)  # soxr holds some ms
        assert {(c.sample_rate, c.channels, c.format, c.num_samples) for c in chunks} == {
            (16000, 1, AudioFormat.S16, 320)}
        assert [c.pts for c in chunks] == [320 * i for i in range(len(chunks))]
        assert {c.participant.id for c in chunks} == {session["id"]}


async def test_a_manual_commit_ends_the_turn_for_the_stt(rig: Rig) -> None:
    async with rig.client() as client:
        await client.next("session.created")
        await client.send({"type": "session.update",
                           "session": {"audio": {"input": {"turn_detection": None}}}})
        await client.next("session.updated")
        await client.send({"type": "input_audio_buffer.append", "audio": pcm16(0.25)})
        await client.send({"type": "input_audio_buffer.commit"})
        committed = await client.next("input_audio_buffer.committed")
        added = await client.next("conversation.item.added")
        assert added["item"]["id"] == committed["item_id"]
        assert added["item"]["content"] == [{"type": "input_audio", "transcript": None}]
        [ended] = [v for v in rig.ctx.on("turn") if isinstance(v, TurnEndedEvent)]
        assert ended.custom["reason"] == "input_audio_buffer.commit"
        # The STT's transcript of that audio completes the item; no response unasked.
        await rig.pipeline.transcript("hello there")
        done = await client.next("conversation.item.input_audio_transcription.completed")
        assert (done["item_id"], done["transcript"]) == (committed["item_id"], "hello there")
        assert not client.of("response.created")
        await client.send({"type": "response.create"})
        await client.next("response.created")
        assert rig.ctx.on("transcript")[-1].text == "hello there"


# -- a whole spoken turn ------------------------------------------------------------------------


async def test_a_spoken_turn_and_its_spoken_answer(rig: Rig) -> None:
    async with rig.client() as client:
        await client.next("session.created")
        await client.send({"type": "input_audio_buffer.append", "audio": pcm16(0.3)})
        await until(lambda: rig.ctx.on("audio"))
        await rig.pipeline.turn_started(start_ms=120)
        started = await client.next("input_audio_buffer.speech_started")
        assert started["audio_start_ms"] == 120
        await rig.pipeline.turn_ended(detected_ms=1500)
        stopped = await client.next("input_audio_buffer.speech_stopped")
        assert (stopped["item_id"], stopped["audio_end_ms"]) == (started["item_id"], 1500)
        committed = await client.next("input_audio_buffer.committed")
        assert committed["item_id"] == started["item_id"]
        await rig.pipeline.transcript("What is the weather like?")
        heard = await client.next("conversation.item.input_audio_transcription.completed")
        assert heard["transcript"] == "What is the weather like?"
        created = await client.next("response.created")
        response_id = created["response"]["id"]
        assert created["response"]["status"] == "in_progress"
        # The user turn went to the LLM.
        turn = rig.ctx.on("transcript")[-1]
        assert isinstance(turn, STTTranscriptEvent) and turn.text == "What is the weather like?"
        await rig.pipeline.llm("m1", "It is ", "sunny. ", "Warm ", "too.")
        await rig.pipeline.tts("m1", "It is sunny.", seconds=0.6)
        await rig.pipeline.tts("m1", "Warm too.", seconds=0.4)
        await rig.pipeline.synthesised("Warm too.")
        done = await client.next("response.done")
        assert done["response"]["status"] == "completed"
        [item] = done["response"]["output"]
        assert item["role"] == "assistant" and item["status"] == "completed"
        assert item["content"] == [{"type": "output_audio", "transcript": "It is sunny. Warm too."}]
        transcript = [e["delta"] for e in client.of("response.output_audio_transcript.delta")]
        assert transcript == ["It is sunny.", " Warm too."]
        assert (await client.next("response.output_audio_transcript.done"))["transcript"] == \
            "It is sunny. Warm too."
        audio = client.audio(response_id)
        assert abs(audio.size - 24000) <= 240  # 1.0 s at 24 kHz, every sample sent
        order = [t for t in client.types() if t.startswith(("response.", "conversation.item"))]
        assert order[:5] == ["conversation.item.added", "conversation.item.input_audio_"
                             "transcription.completed", "conversation.item.done",
                             "response.created", "response.output_item.added"]
        assert order[-6:] == ["response.output_audio.done",
                              "response.output_audio_transcript.done",
                              "response.content_part.done", "response.output_item.done",
                              "conversation.item.done", "response.done"]
        first_audio = order.index("response.output_audio.delta")
        assert order[first_audio - 1] == "response.output_audio_transcript.delta"
        # The client's speaker (modelled in the gateway) reports playback like a sink.
        playing = await until(lambda: [p for p in rig.ctx.on("playback") if p.playing])
        assert isinstance(playing[0], AudioPlaybackEvent) and playing[0].response_id == "m1"


async def test_a_text_turn_with_a_text_response(rig: Rig) -> None:
    async with rig.client() as client:
        await client.next("session.created")
        await client.send({"type": "conversation.item.create", "item": {
            "type": "message", "role": "user",
            "content": [{"type": "input_text", "text": "Tell me a joke."}]}})
        added = await client.next("conversation.item.added")
        assert added["item"]["content"] == [{"type": "input_text", "text": "Tell me a joke."}]
        assert not [v for v in rig.ctx.on("transcript") if isinstance(v, STTTranscriptEvent)]
        await client.send({"type": "response.create",
                           "response": {"output_modalities": ["text"]}})
        await client.next("response.created")
        turn = rig.ctx.on("transcript")[-1]
        assert isinstance(turn, STTTranscriptEvent) and turn.text == "Tell me a joke."
        await rig.pipeline.llm("m1", "Why did ", "the chicken...")
        await rig.pipeline.tts("m1", "Why did the chicken...")  # not sent: text only
        done = await client.next("response.done")
        assert [e["delta"] for e in client.of("response.output_text.delta")] == [
            "Why did ", "the chicken..."]
        assert done["response"]["output"][0]["content"] == [
            {"type": "output_text", "text": "Why did the chicken..."}]
        assert not client.of("response.output_audio.delta")


# -- cancel, barge-in, truncate -----------------------------------------------------------------


async def test_cancel_asks_for_a_barge_in_and_ends_the_response(rig: Rig) -> None:
    async with rig.client() as client:
        await client.next("session.created")
        await speak_turn(rig, client, "Count to ten.")
        created = await client.next("response.created")
        await rig.pipeline.llm("m1", "One. ", "Two. ", final=False)
        await rig.pipeline.tts("m1", "One.", seconds=0.3)
        await client.send({"type": "response.cancel"})
        done = await client.next("response.done")
        assert done["response"]["id"] == created["response"]["id"]
        assert done["response"]["status"] == "cancelled"
        assert done["response"]["status_details"] == {"type": "cancelled",
                                                      "reason": "client_cancelled"}
        # The supervisor is asked for an epoch bump (it follows <node>.turn).
        [ask] = [v for v in rig.ctx.on("turn") if isinstance(v, TurnStartedEvent)]
        assert ask.custom["reason"] == "response.cancel"
        # Audio of the cancelled reply is no longer sent.
        sent = len(client.of("response.output_audio.delta"))
        await rig.pipeline.tts("m1", "Two.", seconds=0.3)
        await asyncio.sleep(0.05)
        assert len(client.of("response.output_audio.delta")) == sent


async def test_an_epoch_bump_cancels_the_response_and_drops_stale_audio(rig: Rig) -> None:
    async with rig.client() as client:
        await client.next("session.created")
        await speak_turn(rig, client, "Tell me a long story.")
        await client.next("response.created")
        await rig.pipeline.llm("m1", "Once upon a time. ", final=False)
        await rig.pipeline.tts("m1", "Once upon a time.", seconds=0.5)
        await until(lambda: [p for p in rig.ctx.on("playback") if p.playing])
        mark = len(client.received)
        rig.ctx.epoch = 1  # the user spoke while the agent played: the supervisor bumped
        await rig.node.on_epoch(1)
        await rig.pipeline.turn_started()  # the turn detector's message comes a bit later
        done = await client.next("response.done")
        assert done["response"]["status_details"]["reason"] == "turn_detected"
        # As from the API: speech_started, then the cancelled response's end.
        later = client.types()[mark:]
        assert later.index("input_audio_buffer.speech_started") < later.index("response.done")
        # The speaker model reports what was heard of it, for the LLM's history.
        cut = await until(lambda: [p for p in rig.ctx.on("playback") if p.interrupted])
        assert cut[0].response_id == "m1" and not cut[0].playing
        sent = len(client.of("response.output_audio.delta"))
        rig.ctx.epoch = 0  # a late chunk of the old epoch...
        await rig.pipeline.tts("m1", "They lived.", seconds=0.2)
        rig.ctx.epoch = 1
        await rig.pipeline.tts("m1", "They lived.", seconds=0.2)  # ...and one of the old reply
        assert len(client.of("response.output_audio.delta")) == sent


async def test_truncate_gives_the_llm_what_was_heard(rig: Rig) -> None:
    async with rig.client() as client:
        await client.next("session.created")
        await speak_turn(rig, client, "Say two sentences.")
        created = await client.next("response.created")
        await rig.pipeline.llm("m1", "One two three four. ", "Five six.")
        await rig.pipeline.tts("m1", "One two three four.", seconds=0.8)
        await rig.pipeline.tts("m1", "Five six.", seconds=0.4)
        await rig.pipeline.synthesised("Five six.")
        done = await client.next("response.done")
        item_id = done["response"]["output"][0]["id"]
        assert item_id == (await client.next("response.output_item.added"))["item"]["id"]
        await client.send({"type": "conversation.item.truncate", "item_id": item_id,
                           "content_index": 0, "audio_end_ms": 5000})
        assert "past the end" in error_of(await client.next("error"))["message"]
        await client.send({"type": "conversation.item.truncate", "item_id": item_id,
                           "content_index": 0, "audio_end_ms": 400})
        truncated = await client.next("conversation.item.truncated")
        assert (truncated["item_id"], truncated["audio_end_ms"]) == (item_id, 400)
        heard = [p for p in rig.ctx.on("playback") if p.interrupted]
        assert heard[-1].response_id == "m1" and heard[-1].heard_text == "One two"
        await client.send({"type": "conversation.item.retrieve", "item_id": item_id})
        retrieved = await client.next("conversation.item.retrieved")
        assert retrieved["item"]["content"][0]["transcript"] == "One two"
        assert created["response"]["id"] == done["response"]["id"]


async def test_speech_during_a_response_not_yet_audible_cancels_it(rig: Rig) -> None:
    async with rig.client() as client:
        await client.next("session.created")
        await speak_turn(rig, client, "First question.")
        first = await client.next("response.created")
        await rig.pipeline.turn_started()  # the user goes on before any audio
        done = await client.next("response.done")
        assert done["response"]["id"] == first["response"]["id"]
        assert done["response"]["status_details"]["reason"] == "turn_detected"
        mark = len(client.received)
        await rig.pipeline.turn_ended()
        await rig.pipeline.transcript("Second question.")
        second = await client.next("response.created", after=mark)
        # The LLM superseded the first reply; its late text does not reach the second.
        await rig.pipeline.llm("m1", "Answer one.", interrupted=True)
        await rig.pipeline.llm("m2", "Answer two.")
        await rig.pipeline.tts("m2", "Answer two.")
        await rig.pipeline.synthesised("Answer two.")
        last = await client.next("response.done", where=lambda e: e["response"]["id"] ==
                                 second["response"]["id"])
        assert last["response"]["output"][0]["content"][0]["transcript"] == "Answer two."
        # The first reply is cut from the LLM's history to what was heard: nothing.
        cut = [p for p in rig.ctx.on("playback") if p.interrupted and p.response_id == "m1"]
        assert [c.heard_text for c in cut] == [""]
