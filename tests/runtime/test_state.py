"""The conversation store, and the LLM driver picking a session up after a crash."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.postgres import postgres_server, postgres_url  # noqa: F401 - fixtures
from tests.runtime.test_host_drivers import FakeHost, ScriptedLLM, event_msg, settle, transcript
from va_actors.core.edge.events import AudioPlaybackEvent
from va_actors.core.llm.conversation import Conversation
from va_actors.runtime import drivers
from va_actors.runtime.spec import ActorSpec, InputSpec
from va_actors.runtime.state import (
    ConversationStore,
    ReplyState,
    StateError,
    StoredMessage,
)
from va_actors.runtime.state.recorder import ConversationRecorder
from va_actors.runtime.state.unsaid import continuation, rest_after
from va_actors.wire import TextChunk

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(params=["sqlite", "postgresql"])
def store_target(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where a store lives: a SQLite file, or a database on a real PostgreSQL server."""
    if request.param == "sqlite":
        return str(tmp_path / "state.db")
    return str(request.getfixturevalue("postgres_url"))


# -- the store --------------------------------------------------------------------------------
def test_store_keeps_each_sessions_conversation_and_reply_progress(store_target: str) -> None:
    path = store_target
    one, two = ConversationStore(path, "one", "run1"), ConversationStore(path, "two", "run1")
    one.save_messages([StoredMessage("u1", "user", "hi"), StoredMessage("a1", "assistant", "yo",
                                                                          interrupted=True)])
    two.save_messages([StoredMessage("u9", "user", "other")])
    one.set_instructions("Be brief.")
    one.begin_reply("r1", 3, "hi")
    one.reply_sent("r1", "Hello th", 2)
    one.tool_started("r1", "c1", "weather", {"city": "Oslo"})
    one.tool_ended("r1", "c1", {"temp": 3})

    again = ConversationStore(path, "one", "run1")  # as a restarted actor opens it
    assert [(m.id, m.role, m.content, m.interrupted) for m in again.messages()] == [
        ("u1", "user", "hi", False), ("a1", "assistant", "yo", True)]
    assert again.instructions() == "Be brief."
    reply = again.last_reply()
    assert reply is not None
    assert (reply.response_id, reply.epoch, reply.sent, reply.chunks, reply.state) == (
        "r1", 3, "Hello th", 2, ReplyState.GENERATING)
    assert [(t.name, t.arguments, t.result, t.done) for t in again.tools()] == [
        ("weather", {"city": "Oslo"}, {"temp": 3}, True)]
    assert [m.content for m in ConversationStore(path, "two").messages()] == ["other"]
    assert again.sessions() == ["one", "two"]
    assert again.size_bytes() > 0
    again.rename_reply("r1", "r1b")
    renamed = again.last_reply()
    assert renamed is not None and renamed.response_id == "r1b"
    assert [t.response_id for t in again.tools()] == ["r1b"]


def test_a_new_reply_supersedes_the_one_still_generating(store_target: str) -> None:
    store = ConversationStore(store_target, "s", "run")
    store.begin_reply("r1", 0, "first")
    store.begin_reply("r2", 0, "second")
    store.end_reply("r2", "done text", ReplyState.DONE)
    last = store.last_reply()
    assert last is not None and (last.response_id, last.state) == ("r2", ReplyState.DONE)
    store.clear()
    assert store.last_reply() is None and store.messages() == []


def test_history_of_a_missing_store_names_it(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from va_actors.cli.history import history

    result = CliRunner().invoke(history, ["--store", str(tmp_path / "nope.db")])
    assert result.exit_code == 2
    assert "no conversation store at" in result.output and "nope.db" in result.output
    assert not (tmp_path / "nope.db").exists()  # not created by looking


def test_an_unreachable_server_is_a_clear_error_without_the_password() -> None:
    with pytest.raises(StateError, match=r"holds a password.*PGPASSWORD") as err:
        ConversationStore("postgresql://va:hunter2@127.0.0.1:1/va", "s")
    assert "hunter2" not in str(err.value)
    with pytest.raises(StateError, match=r"postgresql://va@127\.0\.0\.1:1/va: "):
        ConversationStore("postgresql://va@127.0.0.1:1/va", "s")


def test_an_unusable_store_leaves_the_conversation_in_memory(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    assert ConversationRecorder.open(str(blocker / "state.db"), "s", "r", "llm") is None
    assert "no conversation store" in caplog.text
    recorder = ConversationRecorder.open(str(tmp_path / "ok.db"), "s", "r", "llm")
    assert recorder is not None
    recorder.store.close()  # the store fails from now on: one warning, no exception
    recorder.begin("r1", 0, "hi")
    recorder.sent("r1", "x", 1)
    assert caplog.text.count("the conversation store failed") == 1


# -- what is left to say ----------------------------------------------------------------------
def test_rest_after_what_was_heard_counts_words() -> None:
    assert rest_after("It is sunny. Take a hat.", "It is sunny.") == "Take a hat."
    assert rest_after("It is sunny. Take a hat.", "") == "It is sunny. Take a hat."
    assert rest_after("It is sunny.", "It is sunny.") == ""
    assert rest_after("One,  two three.", "One, two") == "three."


def test_continuation_goes_on_exactly_or_by_word_count() -> None:
    assert continuation("Hello th", "Hello there. Bye.") == ("ere. Bye.", True)
    assert continuation("Hi you.", "Hello you. Nice day.") == (" Nice day.", False)
    assert continuation("", "All new.") == ("All new.", True)


# -- the driver -------------------------------------------------------------------------------
class StoreHost(FakeHost):
    """A host whose spec names a conversation store (as the supervisor's does)."""

    def __init__(self, path: Path | str, *, playback: bool = False, run: str = "run1") -> None:
        super().__init__()
        inputs = [InputSpec("stt.transcript", ["ipc:///tmp/stt.sock"])]
        if playback:
            inputs.append(InputSpec("speaker.playback", ["ipc:///tmp/speaker.sock"]))
        self.spec = ActorSpec(actor="llm", instance="llm", plugin="x:Y",
                              data_endpoint="ipc:///tmp/llm.sock", sys_pub="ipc:///tmp/p.sock",
                              sys_pull="ipc:///tmp/q.sock", inputs=inputs,
                              state_store=str(path), session="s1", run=run)


class RecordingLLM(ScriptedLLM):
    """A ScriptedLLM that records the chat history each reply was asked with."""

    def __init__(self, script: str, delay: float = 0.0) -> None:
        super().__init__(script, delay)
        self.asked: list[list[dict[str, Any]]] = []

    async def simple_response(self, text: str, processors: Any = None,
                              participant: Any = None) -> AsyncIterator[Any]:
        self.asked.append(self.conversation.to_chat_messages())
        async for item in super().simple_response(text, processors, participant):
            yield item


def _texts(host: FakeHost) -> list[tuple[TextChunk, dict[str, Any]]]:
    return [(value, fields) for stream, value, _, fields in host.published if stream == "text"]


async def _crash(host: FakeHost) -> None:
    """What kill -9 leaves: tasks gone, nothing closed."""
    await host.close()


async def test_a_restarted_llm_starts_from_the_stored_conversation(store_target: str) -> None:
    path = store_target
    first = StoreHost(path)
    llm = RecordingLLM("Paris is the capital.")
    driver = drivers.LLMDriver(first, llm)
    await driver.start()
    await driver.attach()
    await driver.on_input(event_msg(transcript("What is the capital of France?")))
    await settle(first, lambda: any(c.final for c in first.on("text")))
    await _crash(first)

    second = StoreHost(path)
    restarted = RecordingLLM("About two million people.")
    driver2 = drivers.LLMDriver(second, restarted)
    await driver2.start()
    await driver2.attach()
    await driver2.on_input(event_msg(transcript("How many people live there?")))
    await settle(second, lambda: any(c.final for c in second.on("text")))
    await second.close()
    # The follow-up was asked with the earlier turn in the history.
    assert restarted.asked[0] == [
        {"role": "user", "content": "What is the capital of France?"},
        {"role": "assistant", "content": "Paris is the capital."},
        {"role": "user", "content": "How many people live there?"}]
    assert not [c for c in second.on("text") if c.final and c.text == "Paris is the capital."]


async def test_an_llm_killed_mid_reply_says_only_the_rest_of_it_when_restarted(
        tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    script = "One two three. Four five six. Seven eight nine."
    first = StoreHost(path)
    driver = drivers.LLMDriver(first, ScriptedLLM(script, delay=0.03))
    await driver.start()
    await driver.attach()
    await driver.on_input(event_msg(transcript("count")))
    await settle(first, lambda: len(first.on("text")) >= 4)
    await _crash(first)
    before = [c for c in first.on("text")]
    rid = before[0].response_id

    second = StoreHost(path)
    restarted = ScriptedLLM(script)
    driver2 = drivers.LLMDriver(second, restarted)
    await driver2.start()
    await driver2.attach()
    await settle(second, lambda: any(c.final for c in second.on("text")))
    await second.close()
    after = second.on("text")
    # One reply across both incarnations: same id, chunk numbers go on, no word twice.
    assert {c.response_id for c in after} == {rid}
    assert [c.index for c in before + after] == list(range(len(before) + len(after)))
    said = "".join(c.text for c in before + after if not c.final)
    assert said.split() == script.split()
    assert after[-1].final and after[-1].text.split() == script.split()
    history = [(m.role, m.content) for m in restarted.conversation.messages]
    assert history[0] == ("user", "count")
    assert history[1][0] == "assistant" and history[1][1].split() == script.split()
    assert restarted.conversation.get(rid) is not None  # playback reports find it


async def test_a_reply_that_went_out_whole_is_not_said_again(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    first = StoreHost(path)
    driver = drivers.LLMDriver(first, ScriptedLLM("All done."))
    await driver.start()
    await driver.attach()
    await driver.on_input(event_msg(transcript("go")))
    await settle(first, lambda: any(c.final for c in first.on("text")))
    await _crash(first)
    second = StoreHost(path)
    driver2 = drivers.LLMDriver(second, ScriptedLLM("All done."))
    await driver2.start()
    await driver2.attach()
    await asyncio.sleep(0.2)
    await second.close()
    assert second.on("text") == []


async def test_a_reply_of_an_older_epoch_or_run_is_not_re_run(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    first = StoreHost(path)
    driver = drivers.LLMDriver(first, ScriptedLLM("a b c d e f", delay=0.05))
    await driver.start()
    await driver.attach()
    await driver.on_input(event_msg(transcript("go")))
    await settle(first, lambda: len(first.on("text")) >= 2)
    await _crash(first)
    bumped = StoreHost(path)
    bumped.epoch = 1  # the user spoke on while the LLM was down
    other_run = StoreHost(path, run="run2")
    for host in (bumped, other_run):
        driver2 = drivers.LLMDriver(host, ScriptedLLM("a b c d e f"))
        await driver2.start()
        await driver2.attach()
        await asyncio.sleep(0.2)
        await host.close()
        assert host.on("text") == []


async def test_a_restarted_tts_gets_the_unheard_rest_of_the_reply(tmp_path: Path) -> None:
    host = StoreHost(tmp_path / "state.db", playback=True)
    script = "First part here. Second part there. Third part last."
    driver = drivers.LLMDriver(host, ScriptedLLM(script, delay=0.02))
    await driver.start()
    await driver.attach()
    await driver.on_input(event_msg(transcript("talk")))
    await settle(host, lambda: len(host.on("text")) >= 2)
    rid = host.on("text")[0].response_id
    await driver.on_peer_down("tts", "tts")  # it crashed: what follows is held
    published = len(host.on("text"))
    await settle(host, lambda: all(t.done() for t in host.tasks))
    assert len(host.on("text")) == published
    # The speaker played what it had: the first sentence.
    await driver.on_input(event_msg(AudioPlaybackEvent(
        playing=False, response_id=rid, heard_text="First part here.", played_ms=900)))
    await driver.on_peer_restarted("tts", "tts")
    resent = [(c, f) for c, f in _texts(host)[published:]]
    assert [f.get("resent") for _, f in resent] == [True, True]
    assert resent[0][0] == TextChunk("Second part there. Third part last. ", False, rid,
                                     resent[0][0].index)
    assert resent[1][0].final and resent[1][0].text.split() == script.split()
    await host.close()


async def test_a_restarted_tts_after_a_barge_in_gets_nothing(tmp_path: Path) -> None:
    host = StoreHost(tmp_path / "state.db", playback=True)
    driver = drivers.LLMDriver(host, ScriptedLLM("one two three four", delay=0.02))
    await driver.start()
    await driver.attach()
    await driver.on_input(event_msg(transcript("talk")))
    await settle(host, lambda: len(host.on("text")) >= 2)
    await driver.on_peer_down("tts", "tts")
    host.epoch = 1
    await driver.on_epoch(1)
    await settle(host, lambda: all(t.done() for t in host.tasks))
    published = len(host.published)
    await driver.on_peer_restarted("tts", "tts")
    assert len(host.published) == published
    await host.close()


def test_restore_leaves_out_the_cut_off_turns_user_message(tmp_path: Path) -> None:
    store = ConversationStore(tmp_path / "s.db", "s", "run")
    store.save_messages([StoredMessage("u1", "user", "a"), StoredMessage("a1", "assistant", "b"),
                         StoredMessage("u2", "user", "c")])
    store.begin_reply("r2", 0, "c")
    conversation = Conversation()
    pending = ConversationRecorder(store, "llm").restore(conversation)
    assert pending is not None and pending.user_text == "c"
    assert [m.content for m in conversation.messages] == ["a", "b"]


# -- the setting ------------------------------------------------------------------------------
_ACTOR = '\n[[actor]]\nname = "mic"\nplugin = "tests.actors.tone:ToneSource"\n'


def test_the_state_setting_is_a_path_from_the_file_or_false(tmp_path: Path) -> None:
    from va_actors.runtime.config import ConfigError, load_pipeline

    path = tmp_path / "p.toml"
    path.write_text('[pipeline]\nstate = "data/conversations.db"\n' + _ACTOR)
    config = load_pipeline(path)
    assert config.state == str(tmp_path / "data" / "conversations.db") and config.keep_state
    path.write_text("[pipeline]\nstate = false\n" + _ACTOR)
    off = load_pipeline(path)
    assert off.state is None and not off.keep_state
    path.write_text('[pipeline]\nstate = "postgresql://va@db.internal/va"\n' + _ACTOR)
    assert load_pipeline(path).state == "postgresql://va@db.internal/va"
    path.write_text('[pipeline]\nstate = "postgresql://va:s3cret@db/va"\n' + _ACTOR)
    with pytest.raises(ConfigError, match=r"p\.toml:2.*password.*PGPASSWORD") as err:
        load_pipeline(path)
    assert "s3cret" not in str(err.value)
    path.write_text('[pipeline]\nstate = "mysql://db/va"\n' + _ACTOR)
    with pytest.raises(ConfigError, match=r"p\.toml:2.*unknown store 'mysql'"):
        load_pipeline(path)


async def test_an_llm_killed_before_its_first_word_answers_the_turn_when_restarted(
        tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    first = StoreHost(path)
    driver = drivers.LLMDriver(first, ScriptedLLM("Slow answer.", delay=5.0))
    await driver.start()
    await driver.attach()
    await driver.on_input(event_msg(transcript("Are you there?")))
    await asyncio.sleep(0.1)  # the model is still thinking
    await _crash(first)
    assert first.on("text") == []
    second = StoreHost(path)
    restarted = ScriptedLLM("Yes, I am.")
    driver2 = drivers.LLMDriver(second, restarted)
    await driver2.start()
    await driver2.attach()
    await settle(second, lambda: any(c.final for c in second.on("text")))
    await second.close()
    finals = [(c.text, f) for c, f in _texts(second) if c.final]
    assert finals == [("Yes, I am.", {"user_text": "Are you there?", "rerun": True})]
    assert [(m.role, m.content) for m in restarted.conversation.messages] == [
        ("user", "Are you there?"), ("assistant", "Yes, I am.")]


async def test_a_restarted_tts_after_the_whole_reply_was_heard_gets_nothing(
        tmp_path: Path) -> None:
    host = StoreHost(tmp_path / "state.db", playback=True)
    driver = drivers.LLMDriver(host, ScriptedLLM("All of it. Heard."))
    await driver.start()
    await driver.attach()
    await driver.on_input(event_msg(transcript("talk")))
    await settle(host, lambda: any(c.final for c in host.on("text")))
    rid = host.on("text")[0].response_id
    await driver.on_input(event_msg(AudioPlaybackEvent(
        playing=False, response_id=rid, heard_text="All of it. Heard.", played_ms=1500)))
    await driver.on_peer_down("tts", "tts")
    published = len(host.published)
    await driver.on_peer_restarted("tts", "tts")
    assert len(host.published) == published  # not even a final: the TTS would say it
    await host.close()
