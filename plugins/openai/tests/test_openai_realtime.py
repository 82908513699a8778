"""openai.Realtime against the scripted GA Realtime server (realtime_server.py).

Every test runs a real WebSocket on 127.0.0.1 and checks what a user of the
client would notice: what the server was sent (so the model's memory), what
the client emitted (audio, transcripts, turns, errors), and what it did after
a drop, a refused key or garbage on the socket.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import wave
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import numpy as np
import pytest
from realtime_server import RATE, VOICE, Connection, RealtimeServer, Spoken, ToolCall, load_voice

from va_actors.core.audio import AudioFormat, PcmData, Resampler
from va_actors.core.backoff import Backoff
from va_actors.core.edge.events import AudioPlaybackEvent
from va_actors.core.edge.types import Participant
from va_actors.core.events import BaseEvent
from va_actors.core.llm import (
    LLMResponseFinalEvent,
    RealtimeAgentSpeechTranscriptionEvent,
    RealtimeAudioOutputDoneEvent,
    RealtimeAudioOutputEvent,
    RealtimeConnectedEvent,
    RealtimeDisconnectedEvent,
    RealtimeErrorEvent,
    RealtimeUserSpeechTranscriptionEvent,
    ToolEndEvent,
)
from va_actors.core.turn_detection import TurnEndedEvent, TurnStartedEvent
from va_actors.plugins.openai import Realtime, RealtimeAuthError

pytestmark = pytest.mark.timeout(20)

FAST = Backoff(initial=0.05, factor=2.0, cap=0.2, max_attempts=4, jitter=0.0)
USER = Participant(user_id="ann", id="ann-1")
ANSWER = load_voice("joke.wav", "weather.wav")  # 3.76 s of real speech as the agent's voice
LONG_ANSWER = "Summer days are long, warm and mostly dry here."


# -- helpers ---------------------------------------------------------------------------
def collect(rt: Realtime, *classes: type[BaseEvent]) -> list[Any]:
    got: list[Any] = []
    rt.events.subscribe(event_types=list(classes))(got.append)
    return got


async def until(condition: Callable[[], object], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():  # noqa: ASYNC110 - polls state other tasks change
            await asyncio.sleep(0.005)


def voice_chunks(name: str = "weather.wav", chunk_ms: int = 20) -> list[PcmData]:
    """A WAV of launch/assets/voice in chunks, at its own rate (22.05 kHz)."""
    with wave.open(str(VOICE / name)) as w:
        rate, frames = w.getframerate(), w.readframes(w.getnframes())
    pcm = PcmData.from_bytes(frames, rate, AudioFormat.S16)
    return list(pcm.chunks(rate * chunk_ms // 1000))


def silence(rate: int, ms: int, chunk_ms: int = 20) -> list[PcmData]:
    n = rate * chunk_ms // 1000
    return [PcmData(rate, AudioFormat.S16, np.zeros(n, np.int16)) for _ in range(ms // chunk_ms)]


def tone(rate: int, ms: int, freq: float = 440.0) -> np.ndarray:
    t = np.arange(rate * ms // 1000) / rate
    return (0.4 * 32767 * np.sin(2 * np.pi * freq * t)).astype(np.int16)


async def say(rt: Realtime, chunks: list[PcmData]) -> None:
    for chunk in chunks:
        await rt.simple_audio_response(chunk, USER)


async def speak_turn(rt: Realtime) -> None:
    """The user asks a question: speech, then enough silence for the server's VAD."""
    await say(rt, voice_chunks() + silence(22050, 700))


def decoded(conn: Connection) -> bytes:
    return b"".join(base64.b64decode(e["audio"]) for e in conn.of_type("input_audio_buffer.append"))


@pytest.fixture
async def server() -> AsyncIterator[RealtimeServer]:
    srv = await RealtimeServer().start()
    try:
        yield srv
    finally:
        await srv.stop()


@pytest.fixture
async def make(server: RealtimeServer) -> AsyncIterator[Callable[..., Realtime]]:
    made: list[Realtime] = []

    def factory(**params: Any) -> Realtime:
        params.setdefault("api_key", server.api_key)
        params.setdefault("reconnect", FAST)
        rt = Realtime(base_url=server.url, **params)
        made.append(rt)
        return rt

    try:
        yield factory
    finally:
        for rt in made:
            await rt.close()


# -- session set-up --------------------------------------------------------------------
async def test_session_update_carries_every_setting(server: RealtimeServer,
                                                    make: Callable[..., Realtime]) -> None:
    rt = make(voice="cedar", instructions="Answer in one sentence.",
              turn_detection={"type": "server_vad", "silence_duration_ms": 400},
              input_transcription="whisper-1")

    @rt.register_function(description="Today's weather in a city")
    def weather(city: str) -> dict[str, Any]:
        return {"city": city, "sky": "sunny"}

    connected = collect(rt, RealtimeConnectedEvent)
    await rt.connect()
    conn = await server.wait_connections(1)

    request = conn.request
    assert request.query["model"] == "gpt-realtime"
    assert server.headers[0]["Authorization"] == f"Bearer {server.api_key}"
    assert not any(h.lower() == "openai-beta" for h in server.headers[0])
    (update,) = conn.of_type("session.update")
    session = update["session"]
    assert session["type"] == "realtime"
    assert session["output_modalities"] == ["audio"]
    assert session["instructions"] == "Answer in one sentence."
    pcm = {"type": "audio/pcm", "rate": 24000}
    assert session["audio"]["input"]["format"] == pcm
    assert session["audio"]["output"]["format"] == pcm
    assert session["audio"]["input"]["turn_detection"] == {"type": "server_vad",
                                                          "silence_duration_ms": 400}
    assert session["audio"]["input"]["transcription"] == {"model": "whisper-1"}
    assert session["audio"]["output"]["voice"] == "cedar"
    assert session["tools"] == [{
        "type": "function", "name": "weather", "description": "Today's weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                       "required": ["city"]}}]
    assert session["tool_choice"] == "auto"
    # the server's answer is the effective session; the client keeps it
    assert rt.session_state["audio"]["output"]["voice"] == "cedar"
    assert rt.connected and connected[0].session_config["model"] == "gpt-realtime"


@pytest.mark.parametrize("setting", [None, "none"])
async def test_turn_detection_off_sends_null(server: RealtimeServer,
                                             make: Callable[..., Realtime],
                                             setting: str | None) -> None:
    rt = make(turn_detection=setting, input_transcription=None)
    await rt.connect()
    conn = await server.wait_connections(1)
    audio_input = conn.of_type("session.update")[0]["session"]["audio"]["input"]
    assert audio_input["turn_detection"] is None and "transcription" not in audio_input
    assert conn.session["audio"]["input"]["turn_detection"] is None


async def test_semantic_vad_and_a_rejected_session(server: RealtimeServer,
                                                   make: Callable[..., Realtime]) -> None:
    rt = make(turn_detection={"type": "semantic_vad", "eagerness": "high"})
    await rt.connect()
    conn = await server.wait_connections(1)
    detection = conn.of_type("session.update")[0]["session"]["audio"]["input"]["turn_detection"]
    assert detection == {"type": "semantic_vad", "eagerness": "high"}

    bad = make(session={"audio": {"output": {"format": {"type": "audio/pcm", "rate": 16000}}}})
    errors = collect(bad, RealtimeErrorEvent)
    with pytest.raises(Exception, match=r"rejected session\.update.*output format"):
        await bad.connect()
    assert len(errors) == 1 and not errors[0].is_recoverable


# -- audio in ----------------------------------------------------------------------------
@pytest.mark.parametrize("rate", [16000, 48000])
async def test_audio_is_sent_as_continuous_pcm16_at_24khz(server: RealtimeServer,
                                                          make: Callable[..., Realtime],
                                                          rate: int) -> None:
    rt = make(turn_detection=None)
    await rt.connect()
    conn = await server.wait_connections(1)
    signal = tone(rate, 1000)
    chunk = rate // 50
    for i in range(0, signal.size, chunk):
        await rt.simple_audio_response(PcmData(rate, AudioFormat.S16, signal[i:i + chunk]), USER)
    # The same signal resampled in one piece: chunking added no clicks or gaps.
    whole = Resampler(RATE, 1, AudioFormat.S16).process(PcmData(rate, AudioFormat.S16, signal))
    assert whole.duration_ms > 960  # all but the resampler's filter delay
    await until(lambda: len(decoded(conn)) >= 2 * whole.samples.size)
    sent = np.frombuffer(decoded(conn), dtype="<i2")
    assert sent.size == whole.samples.size
    assert np.max(np.abs(sent.astype(np.int32) - whole.samples.astype(np.int32))) <= 1
    # streamed as it comes (soxr emits in blocks, so a chunk may bring none), no buffering
    assert len(conn.of_type("input_audio_buffer.append")) >= 25


async def test_manual_turns_commit_and_clear(server: RealtimeServer,
                                             make: Callable[..., Realtime]) -> None:
    rt = make(turn_detection="none")
    audio = collect(rt, RealtimeAudioOutputEvent)
    await rt.connect()
    conn = await server.wait_connections(1)
    await rt.simple_audio_response(PcmData(16000, AudioFormat.S16, tone(16000, 40)), USER)
    await rt.flush(USER)  # under 100 ms: nothing to commit, nothing asked
    await rt.clear_audio()
    await say(rt, [PcmData(16000, AudioFormat.S16, tone(16000, 20)) for _ in range(15)])
    await rt.flush(USER)  # the pipeline's turn detector says the turn ended
    await server.wait_for(conn, "response.create")
    await until(lambda: audio)
    assert conn.types()[1:] == ["input_audio_buffer.clear", "input_audio_buffer.commit",
                                "response.create"]
    assert conn.items[0].data["role"] == "user"


# -- server events -------------------------------------------------------------------------
async def test_a_spoken_turn_gives_turns_transcripts_and_audio(
        server: RealtimeServer, make: Callable[..., Realtime]) -> None:
    server.transcripts = ["What is the weather usually like in the summer?"]
    server.replies = [Spoken("It is usually warm and sunny.", ANSWER[: 48 * 1200])]
    rt = make()
    turns = collect(rt, TurnStartedEvent, TurnEndedEvent)
    user = collect(rt, RealtimeUserSpeechTranscriptionEvent)
    agent = collect(rt, RealtimeAgentSpeechTranscriptionEvent)
    audio = collect(rt, RealtimeAudioOutputEvent)
    done = collect(rt, RealtimeAudioOutputDoneEvent)
    finals = collect(rt, LLMResponseFinalEvent)
    await rt.connect()
    await server.wait_connections(1)
    await speak_turn(rt)
    await until(lambda: finals)

    assert [type(t) for t in turns] == [TurnStartedEvent, TurnEndedEvent]
    assert turns[0].participant == USER and turns[1].trailing_silence_ms == 500
    assert [u.text for u in user] == ["What is the weather usually like in the summer?"]
    assert user[0].participant == USER
    response_id = audio[0].response_id
    assert response_id.startswith("resp_")
    assert all(a.response_id == response_id and a.epoch == 0 for a in audio)
    assert all(a.data.sample_rate == 24000 and a.data.channels == 1 for a in audio)
    assert sum(a.data.duration_ms for a in audio) == pytest.approx(1200, abs=1)
    assert b"".join(a.data.to_bytes() for a in audio) == ANSWER[: 48 * 1200]
    deltas = [a.text for a in agent if a.mode == "delta"]
    assert "".join(deltas) == "It is usually warm and sunny."
    assert [a.text for a in agent if a.mode == "final"] == ["It is usually warm and sunny."]
    assert {a.response_id for a in agent} == {response_id}
    assert len(done) == 1 and not done[0].interrupted and done[0].response_id == response_id
    assert finals[0].input_tokens == 20 and finals[0].output_tokens == 10
    assert finals[0].total_tokens == 30 and not finals[0].interrupted
    assert [(m.role, m.content) for m in rt.conversation.messages] == [
        ("user", "What is the weather usually like in the summer?"),
        ("assistant", "It is usually warm and sunny.")]


async def test_a_tool_call_round_trips_through_the_registry(
        server: RealtimeServer, make: Callable[..., Realtime]) -> None:
    server.replies = [ToolCall("weather", {"city": "Lisbon", "unit": "C"}, pieces=4),
                      Spoken("It is sunny in Lisbon.", ANSWER[: 48 * 300])]
    rt = make(turn_detection=None)
    calls: list[tuple[str, str]] = []

    @rt.register_function(description="Weather in a city")
    async def weather(city: str, unit: str = "C") -> dict[str, Any]:
        calls.append((city, unit))
        return {"city": city, "temperature": 24, "unit": unit}

    tools = collect(rt, ToolEndEvent)
    agent = collect(rt, RealtimeAgentSpeechTranscriptionEvent)
    await rt.connect()
    conn = await server.wait_connections(1)
    await rt.simple_response("What's the weather in Lisbon?", participant=USER)
    await until(lambda: any(a.mode == "final" for a in agent))

    assert calls == [("Lisbon", "C")]
    assert tools[0].success and tools[0].tool_name == "weather"
    call = next(i.data for i in conn.items if i.data.get("type") == "function_call")
    outputs = [e["item"] for e in conn.of_type("conversation.item.create")
               if e["item"]["type"] == "function_call_output"]
    assert len(outputs) == 1 and outputs[0]["call_id"] == call["call_id"]
    assert json.loads(outputs[0]["output"]) == {"city": "Lisbon", "temperature": 24, "unit": "C"}
    # the output alone does not make the model speak: one response.create after it
    kinds = [(e["type"], e.get("item", {}).get("type")) for e in conn.received
             if e["type"] != "input_audio_buffer.append"]
    output_at = kinds.index(("conversation.item.create", "function_call_output"))
    creates = [i for i, kind in enumerate(kinds) if kind[0] == "response.create"]
    assert len(creates) == 2 and creates[0] < output_at < creates[1]
    assert [a.text for a in agent if a.mode == "final"] == ["It is sunny in Lisbon."]
    assert conn.errors() == []


async def test_barge_in_cancels_and_truncates_at_what_the_speaker_played(
        server: RealtimeServer, make: Callable[..., Realtime]) -> None:
    server.transcripts = ["What is the weather like?", "Stop."]
    server.replies = [Spoken(LONG_ANSWER, ANSWER, interval_s=0.05)]
    rt = make(truncate_wait_ms=2000)
    audio = collect(rt, RealtimeAudioOutputEvent)
    agent = collect(rt, RealtimeAgentSpeechTranscriptionEvent)
    errors = collect(rt, RealtimeErrorEvent)
    await rt.connect()
    conn = await server.wait_connections(1)
    await speak_turn(rt)
    await until(lambda: len(audio) >= 5)
    response_id = audio[0].response_id
    # The speaker starts playing and reports its position.
    rt.on_playback(AudioPlaybackEvent(playing=True, response_id=response_id, played_ms=250.0))
    # The user speaks over the agent: the server's VAD says speech_started.
    await say(rt, voice_chunks("joke.wav")[:30])
    await server.wait_for(conn, "response.cancel")
    assert not conn.of_type("conversation.item.truncate")  # waiting for the speaker's figure
    # The supervisor bumped the epoch; the speaker stopped and says where.
    await rt.interrupt(1)
    rt.on_playback(AudioPlaybackEvent(playing=False, interrupted=True, response_id=response_id,
                                      played_ms=380.0))
    (truncate,) = await server.wait_for(conn, "conversation.item.truncate")
    assistant = next(i for i in conn.items if i.data.get("role") == "assistant")
    assert truncate == {"type": "conversation.item.truncate", "item_id": assistant.data["id"],
                        "content_index": 0, "audio_end_ms": 380}
    await until(lambda: any(a.interrupted for a in agent))
    assert assistant.audio_ms == 380  # the server's copy now ends where the user stopped hearing
    (heard,) = [a for a in agent if a.mode == "final"]  # not the generated text: the heard
    assert heard.interrupted
    assert heard.text.startswith("Summer") and len(heard.text) < len(LONG_ANSWER)
    assert rt.conversation.messages[1].content == heard.text  # the memory holds what was heard
    assert rt.conversation.messages[1].interrupted
    count = len(audio)
    await asyncio.sleep(0.2)
    assert len(audio) == count  # nothing more of the interrupted reply
    # the server had already cancelled it itself (VAD): the client's cancel is harmless
    assert {e["code"] for e in conn.errors()} <= {"response_cancel_not_active"}
    assert not errors


async def test_an_epoch_bump_mid_response_drops_its_audio_and_truncates_by_estimate(
        server: RealtimeServer, make: Callable[..., Realtime]) -> None:
    server.replies = [Spoken("One two three four five six seven eight.", ANSWER,
                             interval_s=0.1)]
    rt = make(turn_detection=None)
    audio = collect(rt, RealtimeAudioOutputEvent)
    done = collect(rt, RealtimeAudioOutputDoneEvent)
    await rt.connect()
    conn = await server.wait_connections(1)
    await rt.simple_response("Count to eight.")
    await until(lambda: len(audio) >= 3)
    await rt.interrupt(1)  # no speaker reports here: the estimate is time since the first audio
    (cancel,) = await server.wait_for(conn, "response.cancel")
    assert cancel["response_id"] == audio[0].response_id
    (truncate,) = await server.wait_for(conn, "conversation.item.truncate")
    received_ms = 100 * len(audio)
    assert 150 <= truncate["audio_end_ms"] <= received_ms + 100
    await until(lambda: done)
    assert done[0].interrupted
    assert {a.epoch for a in audio} == {0}
    # Audio of the old response still in flight after the bump is not passed on.
    count, dropped = len(audio), rt.dropped_audio_chunks
    stale = next(e for e in conn.sent if e["type"] == "response.output_audio.delta")
    await conn.send({**stale, "event_id": "event_late"})
    await until(lambda: rt.dropped_audio_chunks == dropped + 1)
    assert len(audio) == count
    # The next response belongs to the new epoch.
    await rt.simple_response("Go on.")
    await until(lambda: len(audio) > count)
    assert {a.epoch for a in audio[count:]} == {1}


async def test_text_responses_interim_user_transcripts_and_deleted_items(
        server: RealtimeServer, make: Callable[..., Realtime]) -> None:
    rt = make(output_modalities=["text"], turn_detection=None)
    agent = collect(rt, RealtimeAgentSpeechTranscriptionEvent)
    user = collect(rt, RealtimeUserSpeechTranscriptionEvent)
    errors = collect(rt, RealtimeErrorEvent)
    finals = collect(rt, LLMResponseFinalEvent)
    await rt.connect()
    conn = await server.wait_connections(1)
    assert conn.of_type("session.update")[0]["session"]["output_modalities"] == ["text"]
    ids = {"response_id": "resp_t", "item_id": "item_t", "output_index": 0, "content_index": 0}
    for event in (
            {"type": "conversation.item.added", "item": {
                "id": "item_u", "type": "message", "role": "user",
                "content": [{"type": "input_audio", "transcript": None}]}},
            {"type": "conversation.item.input_audio_transcription.delta", "item_id": "item_u",
             "content_index": 0, "delta": "Hel"},
            {"type": "conversation.item.input_audio_transcription.failed", "item_id": "item_u",
             "content_index": 0, "error": {"type": "transcription_error",
                                           "code": "audio_unintelligible",
                                           "message": "Audio unintelligible"}},
            {"type": "response.created", "response": {"id": "resp_t", "status": "in_progress"}},
            {"type": "response.output_item.added", "response_id": "resp_t", "output_index": 0,
             "item": {"id": "item_t", "type": "message", "role": "assistant", "content": []}},
            {"type": "response.output_text.delta", **ids, "delta": "Plain"},
            {"type": "response.output_text.delta", **ids, "delta": " text."},
            {"type": "response.output_text.done", **ids, "text": "Plain text."},
            {"type": "response.done", "response": {"id": "resp_t", "status": "completed"}},
            {"type": "conversation.item.deleted", "item_id": "item_t"}):
        await conn.send(event)
    await until(lambda: finals and rt.conversation.get("item_t") is None)
    assert [(a.mode, a.text) for a in agent] == [("delta", "Plain"), ("delta", " text."),
                                                 ("final", "Plain text.")]
    assert [(u.mode, u.text) for u in user] == [("delta", "Hel")]
    assert len(errors) == 1 and "audio_unintelligible" in str(errors[0].error)
    assert finals[0].text == "Plain text." and not finals[0].interrupted
    assert rt.conversation_items.get("item_t") is None  # deleted on the server: gone here


async def test_malformed_json_unknown_events_and_error_events_keep_the_session(
        server: RealtimeServer, make: Callable[..., Realtime],
        caplog: pytest.LogCaptureFixture) -> None:
    async def garbage(conn: Connection) -> None:
        await conn.send_raw("{this is not json")
        await conn.send_raw('["an", "array"]')
        for _ in range(3):
            await conn.send({"type": "response.brand_new_event", "x": 1})
        await conn.send({"type": "error", "error": {
            "type": "invalid_request_error", "code": "invalid_value",
            "message": "Invalid value for 'voice'.", "param": "voice", "event_id": None}})

    server.on_connect = garbage
    rt = make(turn_detection=None)
    errors = collect(rt, RealtimeErrorEvent)
    audio = collect(rt, RealtimeAudioOutputEvent)
    caplog.set_level(logging.INFO, logger="va_actors.plugins.openai")
    await rt.connect()
    await until(lambda: len(errors) >= 3)
    assert rt.malformed_events == 2
    assert [e.is_recoverable for e in errors] == [True, True, True]
    assert "not JSON" in str(errors[0].error) and "not an event" in str(errors[1].error)
    assert "invalid_value" in str(errors[2].error) and "voice" in str(errors[2].error)
    assert rt.unknown_events == {"response.brand_new_event": 3}
    assert sum("response.brand_new_event" in r.getMessage() for r in caplog.records) == 1
    # still connected and working
    await rt.simple_response("Hello?")
    await until(lambda: audio)
    assert rt.connected and len(server.connections) == 1


# -- failures -------------------------------------------------------------------------------
async def test_a_dropped_socket_reconnects_and_restores_the_conversation(
        server: RealtimeServer, make: Callable[..., Realtime]) -> None:
    server.transcripts = ["What is the weather usually like in the summer?"]
    server.replies = [Spoken("Warm.", ANSWER[: 48 * 400]),
                      ToolCall("weather", {"city": "Oslo"}),
                      Spoken("Cold and clear in Oslo right now.", ANSWER, interval_s=0.05)]
    server.drop_after_deltas = None
    rt = make(instructions="Be brief.")

    @rt.register_function(description="Weather in a city")
    def weather(city: str) -> str:
        return f"{city}: 3 C, clear"

    audio = collect(rt, RealtimeAudioOutputEvent)
    disconnected = collect(rt, RealtimeDisconnectedEvent)
    connected = collect(rt, RealtimeConnectedEvent)
    await rt.connect()
    first = await server.wait_connections(1)
    await speak_turn(rt)                      # turn 1: spoken question, spoken answer
    await until(lambda: len(audio) == 4)
    await rt.simple_response("And in Oslo?")  # turn 2: a tool call, then a spoken answer...
    server.drop_after_deltas = 3              # ... cut by a network failure mid-answer
    await until(lambda: disconnected)
    second = await server.wait_connections(2)
    await until(lambda: len(connected) == 2)
    # The server reads the restored items on its own task: wait for them (a busy machine).
    await until(lambda: len(second.of_type("conversation.item.create")) >= 6)

    assert not disconnected[0].clean and server.handshakes == 2
    assert connected[1].session_config["restored"] is True
    assert second.of_type("session.update")[0]["session"]["instructions"] == "Be brief."
    restored = [e["item"] for e in second.of_type("conversation.item.create")]
    call = next(i.data for i in first.items if i.data.get("type") == "function_call")
    assert [(i["type"], i.get("role")) for i in restored] == [
        ("message", "user"), ("message", "assistant"), ("message", "user"),
        ("function_call", None), ("function_call_output", None), ("message", "assistant")]
    assert restored[0]["content"] == [{"type": "input_text",
                                       "text": "What is the weather usually like in the summer?"}]
    assert restored[1]["content"] == [{"type": "output_text", "text": "Warm."}]
    assert restored[2]["content"] == [{"type": "input_text", "text": "And in Oslo?"}]
    assert restored[3]["call_id"] == call["call_id"] and restored[3]["name"] == "weather"
    assert restored[4] == {"id": restored[4]["id"], "type": "function_call_output",
                           "call_id": call["call_id"], "output": "Oslo: 3 C, clear"}
    assert restored[5]["content"][0]["type"] == "output_text"
    assert restored[5]["content"][0]["text"].startswith("Cold")
    assert not [e for e in second.received if e.get("type") == "error"]
    # and the new session works
    await rt.simple_response("Thanks!")
    await until(lambda: any(e.get("type") == "response.create" for e in second.received))


async def test_a_tool_still_running_at_a_drop_answers_the_new_session(
        server: RealtimeServer, make: Callable[..., Realtime]) -> None:
    server.replies = [ToolCall("slow_lookup", {"q": "tides"}),
                      Spoken("High tide is at noon.", ANSWER[: 48 * 300])]
    rt = make(turn_detection=None)
    started = asyncio.Event()

    @rt.register_function(description="A lookup that takes a while")
    async def slow_lookup(q: str) -> str:
        started.set()
        await asyncio.sleep(0.4)
        return f"{q}: high at 12:00"

    agent = collect(rt, RealtimeAgentSpeechTranscriptionEvent)
    await rt.connect()
    first = await server.wait_connections(1)
    await rt.simple_response("When is high tide?")
    await asyncio.wait_for(started.wait(), 5)
    first.drop()  # the network fails while the tool runs
    second = await server.wait_connections(2)
    await until(lambda: any(a.mode == "final" for a in agent))
    created = [e["item"] for e in second.of_type("conversation.item.create")]
    assert [i["type"] for i in created] == ["message", "function_call", "function_call_output"]
    assert created[1]["call_id"] == created[2]["call_id"]
    assert created[2]["output"] == "tides: high at 12:00"
    assert second.types()[-1] == "response.create" and second.errors() == []
    assert [a.text for a in agent if a.mode == "final"] == ["High tide is at noon."]
    assert first.of_type("conversation.item.create")[-1]["item"]["type"] == "message"


async def test_audio_spoken_while_reconnecting_is_sent_afterwards(
        server: RealtimeServer, make: Callable[..., Realtime]) -> None:
    rt = make(turn_detection=None,
              reconnect=Backoff(initial=0.3, cap=0.3, max_attempts=3, jitter=0.0))
    await rt.connect()
    first = await server.wait_connections(1)
    server.refuse_handshakes = 1  # the first reconnect attempt fails: 0.3 s offline
    first.drop()
    await until(lambda: not rt.connected)
    await say(rt, [PcmData(24000, AudioFormat.S16, np.full(480, i, np.int16)) for i in range(10)])
    second = await server.wait_connections(2)
    await until(lambda: len(decoded(second)) >= 10 * 960)
    assert server.handshakes == 3
    values = np.frombuffer(decoded(second), dtype="<i2")[::480]
    assert list(values[:10]) == list(range(10))  # in order, nothing lost
    assert rt.dropped_input_ms == 0


@pytest.mark.parametrize("mode", ["handshake", "error_event"])
async def test_a_refused_key_is_one_permanent_error_and_no_retry(
        server: RealtimeServer, make: Callable[..., Realtime], mode: str,
        caplog: pytest.LogCaptureFixture) -> None:
    server.auth_failure = mode
    caplog.set_level(logging.DEBUG)
    key = "sk-wrong-key-9876543210-must-not-leak"
    rt = make(api_key=key)
    errors = collect(rt, RealtimeErrorEvent)
    with pytest.raises(RealtimeAuthError) as raised:
        await rt.connect()
    await asyncio.sleep(0.5)  # time for any (wrong) retry
    assert server.handshakes == 1
    assert len(errors) == 1 and not errors[0].is_recoverable
    assert "OPENAI_API_KEY" in str(raised.value)
    with pytest.raises(RealtimeAuthError):
        await rt.connect()  # still refused, without another attempt
    assert server.handshakes == 1
    assert key not in caplog.text and key not in repr(rt) and key not in str(raised.value)


async def test_the_key_never_reaches_logs_or_reprs(server: RealtimeServer,
                                                   make: Callable[..., Realtime],
                                                   caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    server.transcripts = ["Hello."]
    rt = make()
    await rt.connect()
    conn = await server.wait_connections(1)
    await speak_turn(rt)
    await server.wait_for(conn, "input_audio_buffer.append", 50)
    conn.drop()
    await server.wait_connections(2)
    await until(lambda: rt.connected)
    assert server.api_key not in caplog.text
    assert server.api_key not in repr(rt)


async def test_unreachable_server_gives_up_after_the_backoff() -> None:
    rt = Realtime(base_url="ws://127.0.0.1:9/v1/realtime", api_key="k", reconnect=FAST,
                  connect_timeout_s=1.0)
    errors = collect(rt, RealtimeErrorEvent)
    try:
        with pytest.raises(ConnectionError, match="gave up after 4 attempts"):
            await rt.connect()
        assert rt.connects == 4 and len(errors) == 1 and not errors[0].is_recoverable
    finally:
        await rt.close()


async def test_a_server_that_never_sets_up_the_session_times_out(
        server: RealtimeServer) -> None:
    server.greet = False
    rt = Realtime(base_url=server.url, api_key=server.api_key, connect_timeout_s=0.3,
                  reconnect=None)
    try:
        with pytest.raises(ConnectionError, match=r"session set-up .* within 0\.3 s"):
            await asyncio.wait_for(rt.connect(), 5)
    finally:
        await rt.close()
    assert server.handshakes == 1


async def test_close_ends_the_session_in_order_and_leaves_a_shared_http_session(
        server: RealtimeServer) -> None:
    async with aiohttp.ClientSession() as http:
        rt = Realtime(base_url=server.url, api_key=server.api_key, http_session=http)
        disconnected = collect(rt, RealtimeDisconnectedEvent)
        await rt.connect()
        conn = await server.wait_connections(1)
        await rt.close()
        await asyncio.wait_for(conn.closed.wait(), 2)
        assert not rt.connected and disconnected[-1].clean
        assert not http.closed  # not ours to close
        await rt.close()  # idempotent
        with pytest.raises(RuntimeError, match="closed"):
            await rt.connect()


def test_the_guides_form_constructs_without_a_key_for_a_custom_endpoint(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    realtime = Realtime(model="gpt-realtime", base_url="wss://custom-endpoint.com/v1/realtime")
    assert "custom-endpoint.com" in repr(realtime) and not realtime.connected


def test_an_openai_url_without_a_key_is_refused_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(ValueError, match="OPENAI_API_KEY"):
        Realtime()
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env-123")
    rt = Realtime()
    assert "sk-from-env" not in repr(rt)
