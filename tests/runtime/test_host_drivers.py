"""Category drivers in-process, against a fake host that records what they publish."""

from __future__ import annotations

import asyncio
import threading
import zlib
from collections.abc import AsyncIterator, Coroutine
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zmq

from tests.actors.tone import tone_chunk
from va_actors.core.audio.pcm import PcmData
from va_actors.core.edge.events import AudioPlaybackEvent
from va_actors.core.edge.types import Participant
from va_actors.core.events.base import BaseEvent, PluginBaseEvent, PluginErrorEvent
from va_actors.core.llm import (
    LLM,
    LLMContextEvent,
    LLMResponseDelta,
    LLMResponseFinal,
    Realtime,
    VideoLLM,
)
from va_actors.core.llm import events as llm_events
from va_actors.core.processors import ProcessorStateEvent, VideoProcessorPublisher
from va_actors.core.stt import STT, STTErrorEvent, STTTranscriptEvent
from va_actors.core.tts import TTS
from va_actors.core.turn_detection import TurnDetector, TurnEndedEvent, TurnStartedEvent
from va_actors.core.utils.video_forwarder import VideoForwarder
from va_actors.core.video import QueuedVideoTrack, VideoFrame
from va_actors.runtime import drivers, plugins
from va_actors.runtime.drivers import llm as drivers_llm
from va_actors.runtime.spec import ActorSpec, InputSpec
from va_actors.wire import Message, TextChunk, decode, encode_audio, encode_event, encode_text
from va_actors.wire.codec import encode_video


class FakeHost:
    """Implements drivers.HostPort; records publishes, drops and failures."""

    actor = "a"
    instance = "a"

    def __init__(self) -> None:
        self.thread = threading.get_ident()  # sockets are used from this thread only
        self.loop = asyncio.get_running_loop()
        self.epoch = 0
        self.resumed_epoch = 0
        self.published: list[tuple[str, Any, int, dict[str, Any]]] = []
        self.drops: dict[str, int] = {}
        self.failures: list[tuple[type[PluginErrorEvent], BaseException, str]] = []
        self.tasks: set[asyncio.Task[Any]] = set()
        self.holds: list[bool] = []

    def publish(self, stream: str, value: Any, *, epoch: int | None = None, ref: Any = None,
                final: bool = False, **fields: Any) -> None:
        if threading.get_ident() != self.thread:  # as the host does: hand over to the loop
            self.loop.call_soon_threadsafe(lambda: self.publish(stream, value, epoch=epoch,
                                                                final=final, **fields))
            return
        stamp = self.epoch if epoch is None else epoch
        if stamp < self.epoch:
            self.count_drop("stale_out")
            return
        self.published.append((stream, value, stamp, fields))

    def count_drop(self, reason: str, n: int = 1) -> None:
        self.drops[reason] = self.drops.get(reason, 0) + n

    def hold_replay(self, held: bool) -> None:
        self.holds.append(held)

    async def wait_started(self) -> None:
        return None

    def spawn(self, coro: Coroutine[Any, Any, Any], context: str) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        return task

    def fail(self, error: BaseException, context: str,
             event_class: type[PluginErrorEvent] = PluginErrorEvent) -> None:
        self.failures.append((event_class, error, context))

    def on(self, stream: str) -> list[Any]:
        return [value for s, value, _, _ in self.published if s == stream]

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


def wire(frames: list[Any]) -> Message:
    return decode([bytes(f) for f in frames])


def audio_msg(index: int, epoch: int = 0) -> Message:
    return wire(encode_audio("mic.audio", tone_chunk(index), seq=index, epoch=epoch, source="mic"))


def text_msg(text: str, rid: str, index: int, *, final: bool = False, epoch: int = 0,
             **fields: Any) -> Message:
    frames = encode_text("llm.text", TextChunk(text, final, rid, index), seq=index, epoch=epoch,
                         source="llm")
    msg = wire(frames)
    msg.fields.update(fields)
    return msg


def event_msg(event: BaseEvent, epoch: int = 0) -> Message:
    return wire(encode_event("stt.transcript", event, seq=0, epoch=epoch, source="stt"))


async def settle(host: FakeHost, until: Any, timeout: float = 3.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not until():
        if loop.time() > deadline:
            raise AssertionError(f"timed out; published {[p[0] for p in host.published]}")
        await asyncio.sleep(0.005)


@pytest.fixture
async def host() -> AsyncIterator[FakeHost]:
    fake = FakeHost()
    try:
        yield fake
    finally:
        await fake.close()


# -- selection ------------------------------------------------------------------------------
def test_driver_for_matches_the_category_and_checks_the_class() -> None:
    assert drivers.driver_for(plugins.category(EchoSTT), EchoSTT) is drivers.STTDriver
    assert drivers.driver_for("tts", SlowTTS) is drivers.TTSDriver
    assert drivers.driver_for("llm", ScriptedLLM) is drivers.LLMDriver
    with pytest.raises(ValueError, match="not a tts plugin"):
        drivers.driver_for("tts", EchoSTT)


# -- STT -----------------------------------------------------------------------------------
class EchoSTT(STT):
    """Reports every chunk as a turn start plus a transcript; fails on chunk 2."""

    async def process_audio(self, pcm_data: PcmData,
                            participant: Participant | None = None) -> None:
        if pcm_data.pts == 2 * 320:
            raise RuntimeError("provider hiccup")
        self._emit_turn_started_event(participant)
        self._emit_partial_transcript_event("hel", participant)
        self._emit_transcript_event(f"chunk {pcm_data.pts}", participant)
        self.events.send(PluginBaseEvent(plugin_name="custom"))


async def test_stt_routes_transcripts_turns_and_events(host: FakeHost) -> None:
    driver = drivers.STTDriver(host, EchoSTT())
    await driver.start()
    await driver.on_input(audio_msg(1))
    assert [type(e).__name__ for e in host.on("transcript")] == [
        "STTPartialTranscriptEvent", "STTTranscriptEvent"]
    assert [type(e) for e in host.on("turn")] == [TurnStartedEvent]
    assert [e.plugin_name for e in host.on("events")] == ["custom"]
    with pytest.raises(RuntimeError):  # the host's dispatcher turns this into driver.fail
        await driver.on_input(audio_msg(2))
    driver.fail(RuntimeError("x"), "input mic.audio")
    assert host.failures[0][0] is STTErrorEvent


class FlushableSTT(EchoSTT):
    """Records the turn ends the runtime hands it."""

    def __init__(self) -> None:
        super().__init__()
        self.flushed: list[Participant | None] = []

    async def flush(self, participant: Participant | None = None) -> None:
        self.flushed.append(participant)


async def test_stt_finalises_when_the_turn_detector_ends_the_turn(host: FakeHost) -> None:
    stt = FlushableSTT()
    driver = drivers.STTDriver(host, stt)
    await driver.start()
    who = Participant(user_id="ana", id="p1")
    await driver.on_input(event_msg(TurnStartedEvent(participant=who)))
    assert stt.flushed == []
    assert host.holds == [True]  # the utterance stays replayable for a restart
    await driver.on_input(event_msg(TurnEndedEvent(participant=who)))
    assert stt.flushed == [who]
    await driver.on_input(audio_msg(1))  # its transcript lets the audio go
    assert host.holds == [True, False]


async def test_a_turn_detector_holds_the_audio_of_a_turn_replayable(host: FakeHost) -> None:
    class Turns(TurnDetector):
        async def process_audio(self, audio_data: PcmData, participant: Any = None,
                                conversation: Any = None) -> None:
            if audio_data.pts == 320:
                self._emit_turn_started_event(participant)
            elif audio_data.pts == 3 * 320:
                self._emit_turn_ended_event(participant)

    driver = drivers.TurnDriver(host, Turns())
    await driver.start()
    for i in range(4):
        await driver.on_input(audio_msg(i))
    assert host.holds == [True, False]


# -- LLM -----------------------------------------------------------------------------------
class ScriptedLLM(LLM):
    """Streams the words of ``script`` with ``delay`` between them."""

    def __init__(self, script: str = "Hi there. How are you?", delay: float = 0.0) -> None:
        super().__init__()
        self.script = script
        self.delay = delay
        self.interrupts: list[int | None] = []
        self.prepared = 0

    async def prepare_next_turn(self) -> None:
        self.prepared += 1

    async def simple_response(self, text: str, processors: Any = None,
                              participant: Participant | None = None
                              ) -> AsyncIterator[LLMResponseDelta | LLMResponseFinal]:
        for word in self.script.split(" "):
            await asyncio.sleep(self.delay)
            yield LLMResponseDelta(delta=word + " ")
        yield LLMResponseFinal(text=self.script)

    async def interrupt(self, epoch: int | None = None) -> None:
        self.interrupts.append(epoch)


def transcript(text: str, mode: str = "final") -> STTTranscriptEvent:
    return STTTranscriptEvent(text=text, mode=mode)  # type: ignore[arg-type]


async def test_llm_replies_to_final_transcripts_with_text_chunks(host: FakeHost) -> None:
    driver = drivers.LLMDriver(host, ScriptedLLM())
    await driver.start()
    await driver.on_input(event_msg(transcript("hel", mode="replacement")))
    await driver.on_input(event_msg(transcript("hello"), epoch=0))
    await settle(host, lambda: any(c.final for c in host.on("text")))
    chunks: list[TextChunk] = host.on("text")
    assert "".join(c.text for c in chunks[:-1]) == "Hi there. How are you? "
    assert chunks[-1] == TextChunk("Hi there. How are you?", True, chunks[0].response_id,
                                   len(chunks) - 1)
    assert {c.response_id for c in chunks} == {chunks[0].response_id}
    assert [c.index for c in chunks] == list(range(len(chunks)))


async def test_llm_barge_in_interrupts_and_drops_the_old_reply(host: FakeHost) -> None:
    llm = ScriptedLLM("one two three four five six", delay=0.02)
    driver = drivers.LLMDriver(host, llm)
    await driver.start()
    await driver.on_input(event_msg(transcript("go")))
    await settle(host, lambda: len(host.on("text")) >= 2)
    host.epoch = 1
    await driver.on_epoch(1)
    assert llm.interrupts == [1]
    await settle(host, lambda: all(t.done() for t in host.tasks))
    assert all(stamp == 0 for s, _, stamp, _ in host.published if s == "text")
    assert not any(c.final for c in host.on("text"))  # the final of epoch 0 is stale
    assert host.drops["stale_out"] >= 1


async def test_llm_newer_transcript_supersedes_the_reply(host: FakeHost) -> None:
    driver = drivers.LLMDriver(host, ScriptedLLM("a b c d e f g h", delay=0.02))
    await driver.start()
    await driver.on_input(event_msg(transcript("first")))
    await settle(host, lambda: len(host.on("text")) >= 1)
    await driver.on_input(event_msg(transcript("second")))
    await settle(host, lambda: sum(c.final for c in host.on("text")) == 2)
    finals = [(c, f) for s, c, _, f in host.published if s == "text" and c.final]
    assert finals[0][1] == {"interrupted": True, "user_text": "first"}
    assert finals[1][1] == {"user_text": "second"}
    assert finals[1][0].text == "a b c d e f g h"


async def test_llm_history_keeps_only_what_the_user_heard(host: FakeHost) -> None:
    llm = ScriptedLLM("one two three four five six", delay=0.02)
    driver = drivers.LLMDriver(host, llm)
    await driver.start()
    await driver.on_input(event_msg(transcript("count for me")))
    await settle(host, lambda: len(host.on("text")) >= 3)
    reply_id = host.on("text")[0].response_id
    host.epoch = 1
    await driver.on_epoch(1)
    await settle(host, lambda: all(t.done() for t in host.tasks))
    # The speaker reports it played "one two" of that reply before the barge-in.
    await driver.on_input(event_msg(AudioPlaybackEvent(
        interrupted=True, response_id=reply_id, heard_text="one two", epoch=0)))
    said = [(m.role, m.content) for m in llm.conversation.messages]
    assert said == [("user", "count for me"), ("assistant", "one two")]


class PlaybackHost(FakeHost):
    """A host whose actor reads a sink's playback reports, as the voice agent's LLM does."""

    spec = ActorSpec(actor="llm", instance="llm", plugin="x:Y",
                     data_endpoint="ipc:///tmp/llm.sock", sys_pub="ipc:///tmp/pub.sock",
                     sys_pull="ipc:///tmp/pull.sock",
                     inputs=[InputSpec("stt.transcript", ["ipc:///tmp/stt.sock"]),
                             InputSpec("speaker.playback", ["ipc:///tmp/speaker.sock"])])


async def _reply_started(host: FakeHost, driver: drivers.LLMDriver, text: str) -> str:
    before = len(host.on("text"))
    await driver.on_input(event_msg(transcript(text)))
    await settle(host, lambda: len(host.on("text")) > before)
    return str(host.on("text")[-1].response_id)


async def test_llm_user_resuming_before_the_reply_was_heard_makes_one_turn() -> None:
    host = PlaybackHost()
    llm = ScriptedLLM("one two three four five six", delay=0.02)
    driver = drivers.LLMDriver(host, llm)
    await driver.start()
    try:
        await _reply_started(host, driver, "If the reader will excuse me,")
        # The user speaks on before any audio played: the supervisor bumps the epoch.
        host.epoch = 1
        await driver.on_epoch(1)
        await driver.on_input(event_msg(transcript("I will say nothing."), epoch=1))
        await settle(host, lambda: any(c.final for c in host.on("text")))
        await settle(host, lambda: all(t.done() for t in host.tasks))
        said = [(m.role, m.content) for m in llm.conversation.messages]
        assert said == [("user", "If the reader will excuse me, I will say nothing."),
                        ("assistant", "one two three four five six")]
        [fields] = [f for s, c, _, f in host.published if s == "text" and c.final]
        assert fields["user_text"] == "If the reader will excuse me, I will say nothing."
        assert fields["continues"] is True
    finally:
        await host.close()


async def test_llm_a_transcript_while_the_unheard_reply_streams_continues_its_turn() -> None:
    host = PlaybackHost()
    llm = ScriptedLLM("a b c d e f g h", delay=0.02)
    driver = drivers.LLMDriver(host, llm)
    await driver.start()
    try:
        await _reply_started(host, driver, "first")
        await driver.on_input(event_msg(transcript("second")))
        await settle(host, lambda: sum(c.final for c in host.on("text")) == 2)
        await settle(host, lambda: all(t.done() for t in host.tasks))
        assert [(m.role, m.content) for m in llm.conversation.messages] == [
            ("user", "first second"), ("assistant", "a b c d e f g h")]
    finally:
        await host.close()


async def test_llm_after_a_heard_reply_the_next_transcript_is_a_new_turn() -> None:
    host = PlaybackHost()
    llm = ScriptedLLM("one two three four five six", delay=0.02)
    driver = drivers.LLMDriver(host, llm)
    await driver.start()
    try:
        reply_id = await _reply_started(host, driver, "count for me")
        await driver.on_input(event_msg(AudioPlaybackEvent(
            playing=True, response_id=reply_id, played_ms=400.0, epoch=0)))
        host.epoch = 1  # a barge-in: the user heard some of it
        await driver.on_epoch(1)
        await settle(host, lambda: all(t.done() for t in host.tasks))
        await driver.on_input(event_msg(AudioPlaybackEvent(
            interrupted=True, response_id=reply_id, heard_text="one", epoch=0)))
        await driver.on_input(event_msg(transcript("stop"), epoch=1))
        await settle(host, lambda: any(c.final for c in host.on("text")))
        await settle(host, lambda: all(t.done() for t in host.tasks))
        assert [(m.role, m.content) for m in llm.conversation.messages] == [
            ("user", "count for me"), ("assistant", "one"), ("user", "stop"),
            ("assistant", "one two three four five six")]
    finally:
        await host.close()


async def test_llm_a_resume_as_the_reply_starts_playing_is_still_the_same_turn() -> None:
    host = PlaybackHost()
    llm = ScriptedLLM("one two three four five six", delay=0.02)
    driver = drivers.LLMDriver(host, llm)
    await driver.start()
    try:
        reply_id = await _reply_started(host, driver, "nor of the circumstances,")
        # 40 ms had played when the user's start of turn came: they spoke first.
        await driver.on_input(event_msg(AudioPlaybackEvent(
            playing=True, response_id=reply_id, played_ms=40.0, epoch=0)))
        host.epoch = 1
        await driver.on_epoch(1)
        await driver.on_input(event_msg(transcript("the narrative would be tedious."),
                                        epoch=1))
        await settle(host, lambda: any(c.final for c in host.on("text")))
        await settle(host, lambda: all(t.done() for t in host.tasks))
        users = [m.content for m in llm.conversation.messages if m.role == "user"]
        assert users == ["nor of the circumstances, the narrative would be tedious."]
    finally:
        await host.close()


async def test_llm_a_resume_bump_after_some_audio_played_is_still_the_same_turn() -> None:
    """The supervisor judged the user went on (speech began as the reply's audio did)."""
    host = PlaybackHost()
    llm = ScriptedLLM("one two three four five six", delay=0.02)
    driver = drivers.LLMDriver(host, llm)
    await driver.start()
    try:
        reply_id = await _reply_started(host, driver, "nor of the circumstances,")
        await driver.on_input(event_msg(AudioPlaybackEvent(
            playing=True, response_id=reply_id, played_ms=480.0, epoch=0)))
        host.epoch = host.resumed_epoch = 1
        await driver.on_epoch(1)
        # The speaker reports how much played when the bump stopped it.
        await driver.on_input(event_msg(AudioPlaybackEvent(
            interrupted=True, response_id=reply_id, played_ms=700.0, heard_text="one two",
            epoch=0)))
        await driver.on_input(event_msg(transcript("the narrative would be tedious."),
                                        epoch=1))
        await settle(host, lambda: any(c.final for c in host.on("text")))
        await settle(host, lambda: all(t.done() for t in host.tasks))
        said = [(m.role, m.content) for m in llm.conversation.messages]
        assert said == [("user", "nor of the circumstances, the narrative would be tedious."),
                        ("assistant", "one two three four five six")]
    finally:
        await host.close()


async def test_llm_plugin_prepares_the_next_turn_once_the_reply_plays_or_is_cut() -> None:
    host = PlaybackHost()
    llm = ScriptedLLM("one two three", delay=0.0)
    driver = drivers.LLMDriver(host, llm)
    await driver.start()
    try:
        reply_id = await _reply_started(host, driver, "count for me")
        await settle(host, lambda: any(c.final for c in host.on("text")))
        for played_ms in (20.0, 520.0):  # periodic reports: told once
            await driver.on_input(event_msg(AudioPlaybackEvent(
                playing=True, response_id=reply_id, played_ms=played_ms, epoch=0)))
        await settle(host, lambda: all(t.done() for t in host.tasks))
        assert llm.prepared == 1
        await driver.on_input(event_msg(AudioPlaybackEvent(
            interrupted=True, response_id=reply_id, heard_text="one", epoch=0)))
        await settle(host, lambda: all(t.done() for t in host.tasks))
        assert llm.prepared == 2  # the history changed: cut to what was heard
    finally:
        await host.close()


async def test_llm_without_playback_reports_never_merges_turns(host: FakeHost) -> None:
    llm = ScriptedLLM("a b c d e f g h", delay=0.02)
    driver = drivers.LLMDriver(host, llm)
    await driver.start()
    await _reply_started(host, driver, "first")
    host.epoch = 1
    await driver.on_epoch(1)
    await driver.on_input(event_msg(transcript("second"), epoch=1))
    await settle(host, lambda: any(c.final for c in host.on("text")))
    await settle(host, lambda: all(t.done() for t in host.tasks))
    users = [m.content for m in llm.conversation.messages if m.role == "user"]
    assert users == ["first", "second"]


async def test_llm_context_sets_instructions_verbatim_and_starts_afresh(
        host: FakeHost, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "secret.md").write_text("the agent's private notes")
    monkeypatch.chdir(tmp_path)
    llm = ScriptedLLM("ok")
    driver = drivers.LLMDriver(host, llm)
    await driver.start()
    await driver.on_input(event_msg(transcript("earlier session")))
    await settle(host, lambda: any(c.final for c in host.on("text")))
    await driver.on_input(event_msg(LLMContextEvent(
        instructions="Be brief. See @secret.md", new_conversation=True)))
    # A remote client's instructions are taken as written: no file is read for it.
    assert llm.instructions == "Be brief. See @secret.md"
    assert list(llm.conversation.messages) == []
    await driver.on_input(event_msg(LLMContextEvent(instructions=None)))
    assert llm.instructions == "Be brief. See @secret.md"  # None keeps them
    assert llm._build_messages("hi")[0] == {"role": "system",
                                            "content": "Be brief. See @secret.md"}


# -- TTS -----------------------------------------------------------------------------------
class SlowTTS(TTS):
    """10 ms of audio per character, streamed in 4 pieces with ``delay`` between."""

    def __init__(self, delay: float = 0.0) -> None:
        super().__init__()
        self.delay = delay
        self.said: list[str] = []

    async def stream_audio(self, text: str, *args: Any, **kwargs: Any) -> Any:
        self.said.append(text)
        samples = np.full(160 * len(text), 1000, dtype=np.int16)

        async def pieces() -> AsyncIterator[PcmData]:
            for part in np.array_split(samples, 4):
                await asyncio.sleep(self.delay)
                yield PcmData(16000, "s16", part)

        return pieces()

    async def stop_audio(self) -> None:
        return None


async def test_tts_cuts_sentences_and_says_the_rest_at_final(host: FakeHost) -> None:
    tts = SlowTTS()
    driver = drivers.TTSDriver(host, tts)
    await driver.start()
    for i, part in enumerate(["Hello there", ". How are", " you? I'm", " fine"]):
        await driver.on_input(text_msg(part, "r1", i))
    await settle(host, lambda: len(tts.said) == 2)
    assert tts.said == ["Hello there.", "How are you?"]
    await driver.on_input(text_msg("Hello there. How are you? I'm fine", "r1", 4, final=True))
    await settle(host, lambda: len(tts.said) == 3)
    assert tts.said[2] == "I'm fine"
    await settle(host, lambda: sum(p.samples.size for p in host.on("audio")) == 160 * 32)
    # A reply that came only as a final (no deltas) is said from the final's text.
    await driver.on_input(text_msg("Short. Reply", "r2", 0, final=True))
    await settle(host, lambda: len(tts.said) == 5)
    assert tts.said[3:] == ["Short.", "Reply"]
    # Each chunk names the sentence it speaks and its reply, so the output can
    # tell what the user actually heard when a reply is interrupted.
    tagged = {(f["text"], f["response_id"]) for s, _, _, f in host.published if s == "audio"}
    assert {("Hello there.", "r1"), ("I'm fine", "r1"), ("Reply", "r2")} <= tagged


async def test_tts_barge_in_drops_buffered_text_and_old_audio(host: FakeHost) -> None:
    tts = SlowTTS(delay=0.03)
    driver = drivers.TTSDriver(host, tts)
    await driver.start()
    await driver.on_input(text_msg("First sentence here. Second one. Third", "r1", 0))
    await settle(host, lambda: len(host.on("audio")) >= 1)
    host.epoch = 1
    await driver.on_epoch(1)
    before = len(host.on("audio"))
    await asyncio.sleep(0.2)
    assert len(host.on("audio")) == before  # nothing of epoch 0 after the interrupt
    assert tts.said == ["First sentence here."]
    assert tts.epoch == 1
    await driver.on_input(text_msg("New reply.", "r2", 0, final=True, epoch=1))
    await settle(host, lambda: tts.said[-1] == "New reply.")
    await settle(host, lambda: any(stamp == 1 for s, _, stamp, _ in host.published))


async def test_tts_holds_the_session_epoch(host: FakeHost) -> None:
    host.epoch = 4  # a restarted TTS joins a session that has had four barge-ins
    tts = SlowTTS(delay=0.03)
    driver = drivers.TTSDriver(host, tts)
    await driver.start()
    assert tts.epoch == 4
    await driver.on_input(text_msg("First sentence here. Second one.", "r1", 0, epoch=4))
    await settle(host, lambda: len(host.on("audio")) >= 1)
    host.epoch = 7  # several bumps in a row: one epoch, not a count of interrupts
    await driver.on_epoch(7)
    assert tts.epoch == 7


async def test_tts_text_of_a_new_epoch_is_not_cut_by_its_late_epoch_notice(
        host: FakeHost) -> None:
    tts = SlowTTS(delay=0.01)
    driver = drivers.TTSDriver(host, tts)
    await driver.start()
    host.epoch = 1  # the control thread has the new epoch; on_epoch has not run yet
    await driver.on_input(text_msg("After the barge-in.", "r2", 0, final=True, epoch=1))
    await settle(host, lambda: tts.said == ["After the barge-in."])
    await driver.on_epoch(1)  # arrives late: the TTS already holds epoch 1
    await settle(host, lambda: sum(p.samples.size for p in host.on("audio")) == 160 * 19)
    assert tts.epoch == 1


async def test_tts_drops_the_rest_of_a_superseded_reply(host: FakeHost) -> None:
    tts = SlowTTS()
    driver = drivers.TTSDriver(host, tts)
    await driver.start()
    await driver.on_input(text_msg("Half a sent", "r1", 0))
    await driver.on_input(text_msg("Half a sent", "r1", 1, final=True, interrupted=True))
    await driver.on_input(text_msg("Other.", "r2", 0, final=True))
    await settle(host, lambda: tts.said == ["Other."])


# -- video processor ---------------------------------------------------------------------
class Annotator(VideoProcessorPublisher):
    """Inverts every frame it gets and publishes it, with a state event."""

    def __init__(self) -> None:
        super().__init__()
        self.track = QueuedVideoTrack(8, 8, fps=30)

    async def process_video(self, track: Any, participant_id: str | None,
                            shared_forwarder: VideoForwarder | None = None) -> None:
        assert shared_forwarder is not None
        shared_forwarder.add_frame_handler(self.on_frame, fps=30)

    async def on_frame(self, frame: VideoFrame) -> None:
        inverted = VideoFrame.from_ndarray(255 - frame.to_ndarray(), pts=frame.pts)
        self.track.add_frame(inverted)
        self.events.send(ProcessorStateEvent(processor="annotator", frame_pts=frame.pts))

    def publish_video_track(self) -> QueuedVideoTrack:
        return self.track

    async def stop_processing(self) -> None:
        return None

    async def close(self) -> None:
        self.track.stop()


async def test_video_processor_publishes_its_track_and_state(host: FakeHost) -> None:
    driver = drivers.VideoProcessorDriver(host, Annotator())
    await driver.start()
    pixels = np.arange(8 * 8 * 3, dtype=np.uint8).reshape(8, 8, 3)
    frame = VideoFrame.from_ndarray(pixels, pts=7)
    await driver.on_input(wire(encode_video("cam.video", frame, seq=0, epoch=0, source="cam")))
    await settle(host, lambda: host.on("video") and host.on("state"))
    out = host.on("video")[0]
    assert zlib.crc32(out.to_ndarray().tobytes()) == zlib.crc32((255 - pixels).tobytes())
    assert host.on("state")[0].frame_pts == 7
    await driver.close()


# -- realtime and VLM -------------------------------------------------------------------------
class ParrotRealtime(Realtime):
    """Answers every user chunk with the same audio, as response "r<epoch>"."""

    async def connect(self) -> None:
        self._emit_connected_event()

    async def simple_audio_response(self, pcm: PcmData,
                                    participant: Participant | None = None) -> None:
        self._emit_user_speech_transcription("hi", participant=participant)
        self._emit_audio_output_event(pcm, response_id=f"r{self.epoch}")

    async def simple_response(self, text: str, processors: Any = None,
                              participant: Participant | None = None) -> None:
        return None

    async def close(self) -> None:
        return None


async def test_realtime_publishes_agent_audio_with_its_epoch(host: FakeHost) -> None:
    host.epoch = 2  # a restarted actor joins the session's epoch
    llm = ParrotRealtime()
    driver = drivers.RealtimeDriver(host, llm)
    await driver.start()
    assert llm.epoch == 2 and llm.connected
    await driver.on_input(audio_msg(0, epoch=2))
    (pcm,) = host.on("audio")
    assert pcm.samples.size == 320
    assert [s for s, _, stamp, _ in host.published] == ["events", "transcript", "audio"]
    assert {stamp for _, _, stamp, _ in host.published} == {2}
    host.epoch = 3
    await driver.on_epoch(3)
    assert llm.epoch == 3
    await driver.on_input(audio_msg(1, epoch=3))
    assert [stamp for s, _, stamp, _ in host.published if s == "audio"] == [2, 3]


class ServerVADRealtime(Realtime):
    """Plays a provider with server VAD: a turn, both transcripts, audio, a cut final."""

    def __init__(self, fail_connect: BaseException | None = None) -> None:
        super().__init__()
        self.fail_connect = fail_connect
        self.playback: list[AudioPlaybackEvent] = []
        self.flushed: list[Participant | None] = []

    async def connect(self) -> None:
        if self.fail_connect is not None:
            self._emit_error_event(self.fail_connect, context="connect", is_recoverable=False)
            raise self.fail_connect
        self._emit_connected_event()

    async def simple_audio_response(self, pcm: PcmData,
                                    participant: Participant | None = None) -> None:
        self.events.send(TurnStartedEvent(participant=participant))
        self.events.send(TurnEndedEvent(participant=participant, trailing_silence_ms=500))
        self._emit_user_speech_transcription("hello there", participant=participant)
        self.events.send(llm_events.RealtimeAgentSpeechTranscriptionEvent(
            text="Hi", mode="delta", response_id="resp_1"))
        self._emit_audio_output_event(pcm, response_id="resp_1")
        self.events.send(llm_events.RealtimeAgentSpeechTranscriptionEvent(
            text=" you", mode="delta", response_id="resp_1"))
        self._emit_audio_output_event(pcm, response_id="resp_1")
        self.events.send(llm_events.RealtimeAgentSpeechTranscriptionEvent(
            text="Hi", mode="final", response_id="resp_1", interrupted=True))

    def on_playback(self, event: AudioPlaybackEvent) -> None:
        self.playback.append(event)

    async def flush(self, participant: Participant | None = None) -> None:
        self.flushed.append(participant)

    async def simple_response(self, text: str, processors: Any = None,
                              participant: Participant | None = None) -> None:
        return None

    async def close(self) -> None:
        return None


async def test_realtime_routes_turns_transcripts_and_labelled_audio(host: FakeHost) -> None:
    rt = ServerVADRealtime()
    driver = drivers.RealtimeDriver(host, rt)
    await driver.start()
    await driver.on_input(audio_msg(0))
    turns = host.on("turn")
    assert [type(t) for t in turns] == [TurnStartedEvent, TurnEndedEvent]
    user, *agent = host.on("transcript")
    assert isinstance(user, STTTranscriptEvent) and user.text == "hello there"
    assert [(c.text, c.final, c.response_id, c.index) for c in agent] == [
        ("Hi", False, "resp_1", 0), (" you", False, "resp_1", 1), ("Hi", True, "resp_1", 2)]
    final_fields = [f for s, _, _, f in host.published if s == "transcript"][-1]
    assert final_fields == {"interrupted": True}
    labels = [f for s, _, _, f in host.published if s == "audio"]
    # each chunk says which reply it is and what the reply has said so far
    assert labels == [{"response_id": "resp_1", "text": "Hi", "synthesis_id": "resp_1"},
                      {"response_id": "resp_1", "text": "Hi you", "synthesis_id": "resp_1"}]
    assert not any(isinstance(v, llm_events.RealtimeAgentSpeechTranscriptionEvent)
                   for v in host.on("events"))


async def test_realtime_takes_playback_reports_and_the_turn_detectors_end(host: FakeHost) -> None:
    rt = ServerVADRealtime()
    driver = drivers.RealtimeDriver(host, rt)
    await driver.start()
    report = AudioPlaybackEvent(playing=False, interrupted=True, response_id="resp_1",
                                played_ms=420.0)
    await driver.on_input(wire(encode_event("speaker.playback", report, seq=0, epoch=1,
                                            source="speaker")))
    who = Participant(user_id="ann", id="ann-1")
    await driver.on_input(event_msg(TurnEndedEvent(participant=who)))
    assert [(p.response_id, p.played_ms, p.interrupted) for p in rt.playback] == [
        ("resp_1", 420.0, True)]
    assert [p.user_id for p in rt.flushed if p is not None] == ["ann"]


async def test_realtime_refused_key_is_reported_once_and_the_actor_stays_up(
        host: FakeHost) -> None:
    rt = ServerVADRealtime(fail_connect=PermissionError("invalid_api_key"))
    driver = drivers.RealtimeDriver(host, rt)
    await driver.start()  # does not raise: a restart could not fix a refused key
    assert host.on("events") == []  # held: before "start" nobody may be subscribed
    await driver.run()
    errors = [v for v in host.on("events") if isinstance(v, llm_events.RealtimeErrorEvent)]
    assert len(errors) == 1 and not errors[0].is_recoverable  # the plugin's own, once
    assert host.failures == []


async def test_realtime_temporary_connect_failure_fails_the_actor(host: FakeHost) -> None:
    driver = drivers.RealtimeDriver(host, ServerVADRealtime(
        fail_connect=ConnectionError("refused")))
    with pytest.raises(ConnectionError):
        await driver.start()  # the supervisor restarts it with its backoff


class WatchingVLM(VideoLLM):
    """Counts frames from the shared forwarder and replies with how many it saw."""

    def __init__(self) -> None:
        super().__init__()
        self.frames = 0

    async def watch_video_track(self, track: Any,
                                shared_forwarder: VideoForwarder | None = None) -> None:
        assert shared_forwarder is not None
        shared_forwarder.add_frame_handler(self._on_frame, fps=30)

    def _on_frame(self, frame: VideoFrame) -> None:
        self.frames += 1

    async def stop_watching_video_track(self) -> None:
        return None

    async def simple_response(self, text: str, processors: Any = None,
                              participant: Participant | None = None
                              ) -> AsyncIterator[LLMResponseDelta | LLMResponseFinal]:
        yield LLMResponseFinal(text=f"I saw {self.frames} frame(s).")


async def test_video_llm_watches_the_input_video_and_answers(host: FakeHost) -> None:
    vlm = WatchingVLM()
    driver = drivers.VideoLLMDriver(host, vlm)
    await driver.start()
    frame = VideoFrame.from_ndarray(np.zeros((4, 4, 3), dtype=np.uint8), pts=1)
    await driver.on_input(wire(encode_video("cam.video", frame, seq=0, epoch=0, source="cam")))
    await settle(host, lambda: vlm.frames >= 1)
    await driver.on_input(event_msg(transcript("what do you see?")))
    await settle(host, lambda: host.on("text"))
    assert host.on("text")[0].text == "I saw 1 frame(s)."
    await driver.close()


# -- the host's input queues (in-process, no sockets) -------------------------------------
class GatedDriver(drivers.Driver):
    """Records inputs; blocks on the first one until ``gate`` is set."""

    def __init__(self) -> None:
        super().__init__(FakeHost(), None)
        self.gate = asyncio.Event()
        self.got: list[Message] = []

    async def on_input(self, msg: Message) -> None:
        self.got.append(msg)
        await self.gate.wait()

    def fail(self, error: BaseException, context: str) -> None:
        raise AssertionError(f"{context}: {error}")


async def test_host_queues_bound_audio_by_duration_and_keep_the_newest_frame() -> None:
    from va_actors.runtime.host import ActorHost
    from va_actors.runtime.host.inputs import Inputs

    spec = ActorSpec(actor="sink", instance="sink", plugin="x:Y", data_endpoint="ipc:///x",
                     sys_pub="ipc:///p", sys_pull="ipc:///q", audio_queue_ms=200,
                     inputs=[InputSpec("mic.audio", ["ipc:///m"], epoch_bound=False),
                             InputSpec("cam.video", ["ipc:///c"], epoch_bound=False)])
    host = ActorHost(spec)
    host._loop = asyncio.get_running_loop()
    driver = GatedDriver()
    host._driver = driver
    host._inputs = Inputs(host, spec, host._loop, driver.on_input)
    frame = VideoFrame.from_ndarray(np.zeros((4, 4, 3), dtype=np.uint8))
    try:
        for i in range(30):  # 600 ms of audio against a 200 ms bound
            host._inputs.accept(encode_audio("mic.audio", tone_chunk(i), seq=i, epoch=0,
                                             source="mic"))
            await asyncio.sleep(0)
        for i in range(5):
            host._inputs.accept(encode_video("cam.video", frame.with_timing(i), seq=i, epoch=0,
                                             source="cam"))
            await asyncio.sleep(0)
        assert len(host._tasks) == 2  # one dispatcher per input queue, however many messages
        assert host.drops == {"overflow": 19, "replaced": 3}
        driver.gate.set()
        await settle_until(lambda: len(driver.got) == 1 + 10 + 2)
        audio_seqs = [m.seq for m in driver.got if m.topic == "mic.audio"]
        assert audio_seqs == [0, *range(20, 30)]  # oldest dropped, order kept
        assert [m.seq for m in driver.got if m.topic == "cam.video"] == [0, 4]
    finally:
        for task in host._tasks:
            task.cancel()
        await asyncio.gather(*host._tasks, return_exceptions=True)


async def test_agent_audio_sentences_are_not_dropped_by_the_live_audio_bound() -> None:
    # A TTS sends a sentence per message (seconds of audio, faster than real
    # time): a sink busy for a moment must not lose any of it.
    from va_actors.runtime.host import ActorHost
    from va_actors.runtime.host.inputs import Inputs

    spec = ActorSpec(actor="speaker", instance="speaker", plugin="x:Y",
                     data_endpoint="ipc:///x", sys_pub="ipc:///p", sys_pull="ipc:///q",
                     audio_queue_ms=2000,
                     inputs=[InputSpec("tts.audio", ["ipc:///t"], epoch_bound=True)])
    host = ActorHost(spec)
    host._loop = asyncio.get_running_loop()
    driver = GatedDriver()
    host._driver = driver
    host._inputs = Inputs(host, spec, host._loop, driver.on_input)
    sentence = PcmData(16000, "s16", np.zeros(16000 * 4, dtype=np.int16))  # 4 s each
    try:
        for i in range(6):
            host._inputs.accept(encode_audio("tts.audio", sentence, seq=i, epoch=0,
                                             source="tts"))
            await asyncio.sleep(0)
        driver.gate.set()
        await settle_until(lambda: len(driver.got) == 6)
        assert host.drops == {}
    finally:
        for task in list(host._tasks):
            task.cancel()
        await asyncio.gather(*host._tasks, return_exceptions=True)


async def settle_until(until: Any, timeout: float = 3.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not until():
        assert loop.time() < deadline, "timed out"
        await asyncio.sleep(0.005)


async def test_host_publish_from_a_plugin_thread_goes_through_the_loop(
        tmp_path: Path) -> None:
    from va_actors.runtime.host import ActorHost

    endpoint = f"ipc://{tmp_path}/a.sock"
    spec = ActorSpec(actor="stt", instance="stt", plugin="x:Y", data_endpoint=endpoint,
                     sys_pub="ipc:///p", sys_pull="ipc:///q")
    host = ActorHost(spec)
    host._loop = asyncio.get_running_loop()
    host._ctx = zmq.Context()
    host._bind_output()
    sub = host._ctx.socket(zmq.SUB)
    sub.connect(endpoint)
    sub.setsockopt(zmq.SUBSCRIBE, b"stt.transcript")
    try:
        await settle_until(lambda: host.subscribers.get("stt.transcript") == 1)
        stt = EchoSTT()
        drivers.STTDriver(host, stt).forward_events(lambda e: "transcript")
        await asyncio.to_thread(stt._emit_transcript_event, "from a thread")
        await settle_until(lambda: sub.poll(0))
        event = decode(sub.recv_multipart()).event()
        assert isinstance(event, STTTranscriptEvent) and event.text == "from a thread"
        assert host.n_out == 1
    finally:
        host._remove_readers()
        sub.close(0)
        host._close_sockets()


async def test_llm_a_bump_long_after_the_reply_was_done_does_not_make_a_continuation(
        monkeypatch: pytest.MonkeyPatch) -> None:
    host = PlaybackHost()
    llm = ScriptedLLM("a b", delay=0.01)
    driver = drivers.LLMDriver(host, llm)
    await driver.start()
    try:
        await _reply_started(host, driver, "In 1813.")
        await settle(host, lambda: any(c.final for c in host.on("text")))
        # No playback report named it (a sink that lost them), and the next question
        # barges in 9 s later: that reply was done long ago, so this is a new turn.
        monkeypatch.setattr(drivers_llm, "CUT_GRACE_S", 0.05)
        await asyncio.sleep(0.1)
        host.epoch = 1
        await driver.on_epoch(1)
        await driver.on_input(event_msg(transcript("Eight. The press yard."), epoch=1))
        await settle(host, lambda: sum(c.final for c in host.on("text")) == 2)
        await settle(host, lambda: all(t.done() for t in host.tasks))
        users = [m.content for m in llm.conversation.messages if m.role == "user"]
        assert users == ["In 1813.", "Eight. The press yard."]
    finally:
        await host.close()
