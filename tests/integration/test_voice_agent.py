"""The README's main command: the offline voice agent, every stage a real model.

Runs launch/voice_agent.toml (scripted user -> Silero -> Whisper -> SmolLM2 on
a managed llama.cpp server -> Piper -> simulated speaker, plus the console),
and a one-question variant whose output audio is transcribed again.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.integration.harness import REPO, run_launch, transcribe, words
from va_actors.testing import pipeline_copy_text

LAUNCH = REPO / "launch" / "voice_agent.toml"

pytestmark = [pytest.mark.slow, pytest.mark.timeout(150)]


def _variant(tmp_path: Path, wav: Path, *, one_question: bool) -> Path:
    text = pipeline_copy_text(LAUNCH).replace(str(REPO / "out" / "voice_agent.wav"), str(wav))
    text += f"""
[[actor]]
name = "playback_log"
plugin = "tests.actors.record:RecordingSink"
inputs = ["speaker.playback"]
params = {{ path = "{tmp_path / 'playback.jsonl'}" }}
"""
    if one_question:
        weather = REPO / "launch" / "assets" / "voice" / "weather.wav"
        text = re.sub(r"utterances = \[.*?\]\ntail_s = [0-9.]+",
                      f'utterances = [{{ path = "{weather}", at_s = 1.0 }}]\ntail_s = 12.0',
                      text, flags=re.S)
    path = tmp_path / "voice.toml"
    path.write_text(text)
    return path


def test_the_voice_agent_answers_and_is_interrupted_by_the_second_question(
        tmp_path: Path) -> None:
    wav = tmp_path / "agent.wav"
    code, log = run_launch(_variant(tmp_path, wav, one_question=False), timeout=120)
    assert code == 0, log
    users = [line for line in log.splitlines() if line.startswith("user:")]
    assert [words(u) for u in users] == [
        words("user: What is the weather usually like in the summer?"),
        words("user: Can you tell me a short joke?")]
    assert len([line for line in log.splitlines() if line.startswith("agent:")]) >= 2
    assert "[barge-in: the user heard" in log  # the second question cut the first answer
    assert log.count("voice-to-voice ") >= 3  # one line per turn plus the summary
    assert wav.exists()
    # After the interrupt the speaker plays nothing of the old epoch, and it
    # does play the answer to the second question (a newer epoch).
    events = [json.loads(line) for line in (tmp_path / "playback.jsonl").read_text().splitlines()
              if line.endswith("}")]
    events = [e for e in events if e.get("type") == "transport.playback"]
    cut = next(i for i, e in enumerate(events) if e.get("interrupted"))
    old_epoch = events[cut]["event_epoch"]
    later = [e for e in events[cut + 1:] if e.get("playing")]
    assert later, "the second question was never answered aloud"
    assert all(e["event_epoch"] > old_epoch for e in later), later


def test_what_the_agent_said_is_what_the_llm_wrote(tmp_path: Path) -> None:
    wav = tmp_path / "agent.wav"
    code, log = run_launch(_variant(tmp_path, wav, one_question=True), timeout=120)
    assert code == 0, log
    said = next(line[len("agent:"):] for line in log.splitlines() if line.startswith("agent:"))
    heard = transcribe(wav)
    expected, got = words(said), words(heard)
    matched = sum(1 for word in expected if word in got)
    assert expected and matched / len(expected) >= 0.8, (said, heard)

