"""Vision Agents' own OpenAI plugin as the voice agent's LLM, in its own environment.

launch/voice_agent_vision_agents.toml runs ``vision_agents:openai.ChatCompletionsLLM``
(vision-agents 0.6.9 from PyPI, unchanged) in launch/envs/vision-agents against the
managed llama.cpp server; everything else is the offline voice agent. A spoken question
must get a spoken answer: what the speaker played is transcribed again.
"""

from __future__ import annotations

import re
import socket
from pathlib import Path

import pytest

from tests.integration.harness import REPO, run_launch, transcribe, words
from va_actors.testing import pipeline_copy_text

LAUNCH = REPO / "launch" / "voice_agent_vision_agents.toml"

# The first run syncs the environment from PyPI (~250 MB; 9 s here from an empty uv
# cache, bench/environments.py --first-sync; then 0.3 s). The run itself ~45 s.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(420)]


def _one_question(tmp_path: Path, wav: Path) -> Path:
    text = pipeline_copy_text(LAUNCH).replace(
        str(REPO / "out" / "voice_agent_vision_agents.wav"), str(wav))
    weather = REPO / "launch" / "assets" / "voice" / "weather.wav"
    text = re.sub(r"utterances = \[.*?\]\ntail_s = [0-9.]+",
                  f'utterances = [{{ path = "{weather}", at_s = 1.0 }}]\ntail_s = 12.0',
                  text, flags=re.S)
    # A port of its own: other runs on this machine may serve llama.cpp on 18765.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    text = text.replace("18765", str(port))
    path = tmp_path / "voice_va.toml"
    path.write_text(text)
    return path


def test_a_spoken_question_gets_a_spoken_answer_from_vision_agents_llm(tmp_path: Path) -> None:
    wav = tmp_path / "agent.wav"
    code, log = run_launch(_one_question(tmp_path, wav), timeout=400)
    assert code == 0, log
    # The llm host ran on the environment's interpreter, not va-launch's.
    env = REPO / "launch" / "envs" / "vision-agents"
    assert re.search(rf"started llm \(pid \d+\) in environment '{re.escape(str(env))}'", log), log
    users = [line for line in log.splitlines() if line.startswith("user:")]
    assert [words(u) for u in users] == [
        words("user: What is the weather usually like in the summer?")], log
    said = next((line[len("agent:"):] for line in log.splitlines()
                 if line.startswith("agent:")), "")
    assert words(said), log  # the LLM (Vision Agents' plugin) answered
    heard = words(transcribe(wav))
    matched = sum(1 for word in words(said) if word in heard)
    assert matched / len(words(said)) >= 0.7, (said, heard)  # and the answer was spoken
