"""launch/stream_agent.toml end to end, offline: the edge runs in launch/envs/stream
(the real environment, getstream[webrtc] 7.0.0 installed there) with the SDK double
first on its PYTHONPATH; a participant asks a question in the call and the agent's
answer is played into the call."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import wave
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import pytest

from va_actors.core.audio import AudioFormat, PcmData, Resampler
from va_actors.testing import pipeline_copy_text, read_jsonl

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
LAUNCH = REPO / "launch" / "stream_agent.toml"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _variant(tmp_path: Path) -> tuple[Path, Path]:
    record = tmp_path / "call.jsonl"
    script = tmp_path / "call.json"
    script.write_text(json.dumps({
        "participants": [{"user_id": "alice", "session_id": "sess-a", "name": "Alice"}],
        "audio": [{"session_id": "sess-a", "at_s": 1.0,
                   "wav": str(REPO / "launch" / "assets" / "voice" / "weather.wav")}],
        "end_after_s": 30}))
    env = (f'env = {{ PYTHONPATH = "{HERE / "sdk_double"}", STREAM_DOUBLE_SCRIPT = "{script}", '
           f'STREAM_DOUBLE_RECORD = "{record}" }}')
    text = pipeline_copy_text(LAUNCH).replace("18765", str(_free_port()))
    # A short answer: it is played into the call in real time, and the test waits for it.
    assert "max_tokens = 60" in text
    text = text.replace("max_tokens = 60", "max_tokens = 24")
    anchor = f'environment = "{REPO / "launch" / "envs" / "stream"}"'
    assert anchor in text
    path = tmp_path / "stream_agent.toml"
    path.write_text(text.replace(anchor, f"{anchor}\n{env}"))
    return path, record


def _until(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


class _Answered:
    """True once more than a second of agent audio reached the call and then
    none came for ``quiet_s`` (the answer has been played)."""

    def __init__(self, pcm: Path, quiet_s: float = 3.0) -> None:
        self.pcm, self.quiet_s = pcm, quiet_s
        self._size, self._since = 0, time.monotonic()

    def __call__(self) -> bool:
        size = self.pcm.stat().st_size if self.pcm.exists() else 0
        now = time.monotonic()
        if size != self._size:
            self._size, self._since = size, now
        return size > 48000 * 2 and now - self._since >= self.quiet_s


def _transcribe_48k(raw: bytes, path: Path) -> str:
    pcm = PcmData.from_bytes(raw, sample_rate=48000, format=AudioFormat.S16, channels=1)
    resampler = Resampler(16000, 1, AudioFormat.S16)
    audio = np.concatenate([resampler.process(pcm).samples, resampler.flush().samples])
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
        out.writeframes(audio.astype("<i2").tobytes())
    from tests.integration.harness import transcribe

    return transcribe(path)


@pytest.mark.slow
@pytest.mark.timeout(420)
def test_a_participant_in_the_call_gets_a_spoken_answer(tmp_path: Path) -> None:
    path, record = _variant(tmp_path)
    env = {**os.environ, "STREAM_API_KEY": "test-key", "STREAM_API_SECRET": "test-secret"}
    log_path = tmp_path / "launch.log"
    with open(log_path, "wb") as log_file:
        proc = subprocess.Popen([sys.executable, "-m", "va_actors.cli.main", "run", str(path)],
                                stdout=log_file, stderr=subprocess.STDOUT, env=env, cwd=REPO)
    launcher = psutil.Process(proc.pid)
    try:
        # Stop once the agent's answer has been played into the call (the call's own
        # end, 30 s in, is the upper bound); the edge must then leave the call.
        answered = _Answered(record.parent / (record.name + ".pcm"))
        _until(lambda: answered() or proc.poll() is not None
               or any(e["what"] == "leave" for e in read_jsonl(record)), 360,
               "the agent's answer in the call")
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            for child in launcher.children(recursive=True):
                child.kill()
            proc.kill()
            proc.wait()
    log = log_path.read_text(errors="replace")
    assert code == 0, log
    calls = read_jsonl(record)
    whats = [e["what"] for e in calls]
    assert whats[:5] == ["client", "upsert_users", "get_or_create", "join", "add_tracks"], whats
    assert "leave" in whats, whats  # left the call cleanly on the way out
    assert calls[3]["call"] == "default:va-actors-demo"
    assert "test-secret" not in log and "test-key" not in log  # credentials never logged
    users = [line for line in log.splitlines() if line.startswith("user:")]
    assert users and "weather" in users[0], log
    captions = [e["custom"] for e in calls if e["what"] == "send_call_event"]
    assert any("weather" in (c.get("event") or {}).get("text", "") for c in captions), captions
    said = next((line[len("agent:"):] for line in log.splitlines() if line.startswith("agent:")),
                "")
    audio = (record.parent / (record.name + ".pcm")).read_bytes()
    assert len(audio) > 48000 * 2, log  # more than a second of agent speech reached the call
    heard = _transcribe_48k(audio, tmp_path / "agent16k.wav").lower()
    spoken = [w for w in said.lower().split() if w.isalpha()]
    assert spoken and sum(w in heard for w in spoken) / len(spoken) >= 0.6, (said, heard)
