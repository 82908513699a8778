"""openai.realtime as an actor: a scripted user, the Realtime actor, a speaker, a console.

The pipeline runs under the real supervisor (one process per actor); the
Realtime actor talks to the scripted GA server in this test's process. The
user asks a question, then speaks again while the answer is still playing.
"""

from __future__ import annotations

import asyncio
import os
import signal
import wave
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from realtime_server import ROOT, RealtimeServer, Spoken, load_voice

from va_actors.runtime.config import load_pipeline
from va_actors.testing import read_jsonl, supervised, until

ANSWER_TEXT = "Summer is usually warm, with long sunny days and short nights."
ANSWER = load_voice("joke.wav", "weather.wav")  # 3.76 s of real speech as the agent's voice


def pipeline(tmp_path: Path, url: str) -> Path:
    path = tmp_path / "realtime.toml"
    voice = ROOT / "launch" / "assets" / "voice"
    path.write_text(f"""
[pipeline]
name = "realtime-test"

[[actor]]
name = "user"
plugin = "local.script"
[actor.params]
utterances = [
    {{ path = "{voice / 'weather.wav'}", at_s = 0.3 }},
    {{ path = "{voice / 'joke.wav'}", at_s = 4.0 }},
]
tail_s = 3.0

[[actor]]
name = "agent"
plugin = "openai.realtime"
inputs = ["user.audio", "speaker.playback"]
[actor.params]
base_url = "{url}"
api_key = "$REALTIME_TEST_KEY"
instructions = "You are a test agent."
truncate_wait_ms = 1500

[[actor]]
name = "speaker"
plugin = "local.wav_sink"
inputs = ["agent.audio"]
[actor.params]
path = "{tmp_path / 'agent.wav'}"

[[actor]]
name = "console"
plugin = "va_actors.plugins.local.console:Console"
inputs = ["agent.turn", "agent.transcript", "agent.audio", "speaker.playback"]

[[actor]]
name = "rec"
plugin = "tests.actors.record:RecordingSink"
inputs = ["agent.audio", "agent.transcript", "agent.turn", "speaker.playback", "console.metrics"]
params = {{ path = "{tmp_path / 'rec.jsonl'}" }}
""")
    return path


@pytest.fixture
async def server(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[RealtimeServer]:
    srv = await RealtimeServer().start()
    monkeypatch.setenv("REALTIME_TEST_KEY", srv.api_key)
    srv.transcripts = ["What is the weather usually like in the summer?",
                       "Can you tell me a short joke?"]
    srv.replies = [Spoken(ANSWER_TEXT, ANSWER, interval_s=0.02)]
    try:
        yield srv
    finally:
        await srv.stop()


def records(tmp_path: Path, topic: str) -> list[dict[str, Any]]:
    return [r for r in read_jsonl(tmp_path / "rec.jsonl") if r.get("topic") == topic]


@pytest.mark.slow
@pytest.mark.timeout(90)
async def test_a_realtime_actor_speaks_transcribes_and_is_interrupted(
        tmp_path: Path, server: RealtimeServer, capfd: pytest.CaptureFixture[str]) -> None:
    config = load_pipeline(pipeline(tmp_path, server.url))
    async with supervised(config, tmp_path / "run") as (_sup, log):
        conn = await server.wait_connections(1, timeout=20)
        # The answer plays, the user speaks over it, the supervisor bumps the epoch.
        await until(lambda: len(log.epochs) >= 2, 20, "the barge-in epoch")
        (truncate,) = await server.wait_for(conn, "conversation.item.truncate", timeout=10)
        # The second question is answered in the new epoch.
        await until(lambda: any(r.get("epoch") == 2 for r in records(tmp_path, "agent.audio")),
                    15, "the answer to the second question")
        await until(lambda: len([r for r in records(tmp_path, "console.metrics")
                                 if r.get("event_type") == "metrics.turn_latency"]) == 2,
                    10, "both turns' latency from the console")
        await asyncio.sleep(0.3)

    # Epoch 1: the user's first turn (no speaker had reported yet); 2: the barge-in.
    assert [e["epoch"] for e in log.epochs] == [1, 2]
    assert all("agent.turn" in e["reason"] for e in log.epochs)
    assert server.handshakes == 1  # one session all along

    audio = records(tmp_path, "agent.audio")
    assert {r["epoch"] for r in audio} == {1, 2}
    # Stale agent audio never reaches a consumer once it has the new epoch.
    lines = read_jsonl(tmp_path / "rec.jsonl")
    bumped_at = next(i for i, r in enumerate(lines) if r.get("on_epoch") == 2)
    assert all(r["epoch"] == 2 for r in lines[bumped_at:] if r.get("topic") == "agent.audio")

    transcripts = records(tmp_path, "agent.transcript")
    user_lines = [r["text"] for r in transcripts if r.get("type") == "plugin.stt_transcript"]
    assert user_lines[:2] == ["What is the weather usually like in the summer?",
                              "Can you tell me a short joke?"]
    agent_text = [r["text"] for r in transcripts if "type" not in r]
    assert ANSWER_TEXT.split()[0] in "".join(agent_text)

    turns = [r["type"] for r in records(tmp_path, "agent.turn")]
    assert turns[:4] == ["plugin.turn_started", "plugin.turn_ended",
                         "plugin.turn_started", "plugin.turn_ended"]

    # The speaker stopped at the barge-in and said where; the model was told exactly that.
    playback = records(tmp_path, "speaker.playback")
    (cut,) = [r for r in playback if r.get("interrupted")]
    assistant = next(i for i in conn.items if i.data.get("role") == "assistant")
    assert truncate["item_id"] == assistant.data["id"]
    assert truncate["audio_end_ms"] == int(cut["played_ms"])
    assert 300 < truncate["audio_end_ms"] < len(ANSWER) / 48 - 500
    assert assistant.audio_ms == truncate["audio_end_ms"]
    assert cut["response_id"] == conn.sent[next(
        i for i, e in enumerate(conn.sent) if e["type"] == "response.created")]["response"]["id"]

    # What was played went to the WAV file: the cut answer, then the second one.
    with wave.open(str(tmp_path / "agent.wav")) as w:
        played_s = w.getnframes() / w.getframerate()
    assert truncate["audio_end_ms"] / 1000 - 0.2 < played_s < len(ANSWER) / 48000 + 1.7

    out = capfd.readouterr().out
    assert "user:  What is the weather usually like in the summer?" in out
    assert "agent: " in out and "[barge-in: the user heard '" in out
    assert "voice-to-voice" in out


@pytest.mark.slow
@pytest.mark.timeout(60)
async def test_a_refused_key_is_one_error_and_no_restart_loop(
        tmp_path: Path, server: RealtimeServer, monkeypatch: pytest.MonkeyPatch,
        capfd: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("REALTIME_TEST_KEY", "sk-revoked-key-0000")
    path = tmp_path / "refused.toml"
    path.write_text(f"""
[pipeline]
name = "realtime-refused"

[[actor]]
name = "user"
plugin = "local.script"
[actor.params]
utterances = [{{ path = "{ROOT / 'launch' / 'assets' / 'voice' / 'weather.wav'}", at_s = 0.2 }}]

[[actor]]
name = "agent"
plugin = "openai.realtime"
inputs = ["user.audio"]
[actor.params]
base_url = "{server.url}"
api_key = "$REALTIME_TEST_KEY"

[[actor]]
name = "rec"
plugin = "tests.actors.record:RecordingSink"
inputs = ["agent.events", "agent.audio"]
params = {{ path = "{tmp_path / 'rec.jsonl'}" }}
""")
    async with supervised(load_pipeline(path), tmp_path / "run") as (_sup, log):
        await asyncio.sleep(3.0)  # the user speaks; a retry loop would show by now
        states = [s["state"] for s in log.of("agent")]
    assert server.handshakes == 1
    assert "restarting" not in states and "running" in states
    errors = [r for r in read_jsonl(tmp_path / "rec.jsonl")
              if r.get("type") == "plugin.realtime_error"]
    assert len(errors) == 1 and errors[0]["is_recoverable"] is False
    logs = capfd.readouterr()
    assert "the realtime session cannot be opened" in logs.err  # the actor says why...
    assert "sk-revoked" not in logs.err + logs.out  # ... without the key


@pytest.mark.slow
@pytest.mark.timeout(90)
async def test_a_restarted_realtime_actor_gives_its_new_session_the_conversation(
        tmp_path: Path, server: RealtimeServer) -> None:
    """kill -9 of the Realtime actor after its first answer: the new session gets it back."""
    text = pipeline(tmp_path, server.url).read_text()
    one_question = text.replace(
        "    {{ path = \"{voice}\", at_s = 4.0 }},\n".format(
            voice=ROOT / "launch" / "assets" / "voice" / "joke.wav"), "")
    assert one_question != text
    path = tmp_path / "one.toml"
    path.write_text(one_question.replace('name = "agent"\nplugin = "openai.realtime"',
                                         'name = "agent"\nplugin = "openai.realtime"\n'
                                         'restart = "always"'))
    config = load_pipeline(path)
    async with supervised(config, tmp_path / "run") as (sup, log):
        await server.wait_connections(1, timeout=20)
        await until(lambda: any(r.get("final") for r in records(tmp_path, "agent.transcript")),
                    20, "the first answer's transcript")
        await until(lambda: any(r.get("playing") is False and r.get("played_ms", 0) > 0
                                for r in records(tmp_path, "speaker.playback")),
                    20, "the answer to be played")
        old = sup.pid_of("agent")
        assert old is not None
        os.kill(old, signal.SIGKILL)
        await log.wait("agent", "running", restarts=1)
        second = await server.wait_connections(2, timeout=20)
        await until(lambda: len(second.of_type("conversation.item.create")) >= 2, 10,
                    "the restored conversation")
        await asyncio.sleep(0.5)
    created = [e["item"] for e in second.of_type("conversation.item.create")]
    said = [(i["role"], i["content"][0].get("text")) for i in created]
    assert said[0] == ("user", "What is the weather usually like in the summer?")
    assert said[1][0] == "assistant" and said[1][1].split()[:3] == ANSWER_TEXT.split()[:3]
    assert second.of_type("response.create") == []  # answered before the crash: not again
