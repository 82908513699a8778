"""The speech path across real actor processes, with the real offline models.

scripted user -> Silero turn detection -> Whisper STT (finalised by the turn
detector's end of turn) -> recorder. The STT actor is killed with SIGKILL
between the two utterances: the supervisor restarts it and the second turn is
still transcribed.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.integration.harness import REPO, speak, words
from va_actors.testing import read_jsonl

FIRST = "What is the weather like today?"
SECOND = "Please turn on the kitchen lights."

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]


def _pipeline(tmp_path: Path, first: Path, second: Path, rec: Path) -> Path:
    path = tmp_path / "speech.toml"
    path.write_text(f"""
[pipeline]
name = "speech"
stop_when_sources_finish = true

[supervisor]
backoff_initial_s = 0.05

[[actor]]
name = "user"
plugin = "local.script"
[actor.params]
utterances = [{{ path = "{first}", at_s = 0.5 }}, {{ path = "{second}", gap_s = 4.0 }}]
sample_rate = 48000
tail_s = 2.5

[[actor]]
name = "turn"
plugin = "silero.turn"
inputs = ["user.audio"]

[[actor]]
name = "stt"
plugin = "whisper.stt"
inputs = ["user.audio", "turn.turn"]

[[actor]]
name = "rec"
plugin = "tests.actors.record:RecordingSink"
inputs = ["stt.transcript"]
params = {{ path = "{rec}" }}
""")
    return path


def _finals(rec: Path) -> list[dict[str, Any]]:
    return [r for r in read_jsonl(rec) if r.get("type") == "plugin.stt_transcript"]


def _stt_pid(launcher: psutil.Process) -> int | None:
    for child in launcher.children(recursive=True):
        try:
            if any(arg.endswith("/stt.spec.json") for arg in child.cmdline()):
                return child.pid
        except psutil.Error:
            continue
    return None


def _wait(predicate: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_both_turns_are_transcribed_even_after_the_stt_actor_is_killed(tmp_path: Path) -> None:
    first, second = tmp_path / "first.wav", tmp_path / "second.wav"
    speak(FIRST, first)
    speak(SECOND, second)
    rec = tmp_path / "rec.jsonl"
    pipeline = _pipeline(tmp_path, first, second, rec)
    proc = subprocess.Popen([sys.executable, "-m", "va_actors.cli.main", "run", str(pipeline)],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    launcher = psutil.Process(proc.pid)
    try:
        _wait(lambda: _finals(rec), 40, "the first final transcript")
        old = _wait(lambda: _stt_pid(launcher), 5, "the stt actor's pid")
        psutil.Process(old).send_signal(signal.SIGKILL)
        out, _ = proc.communicate(timeout=60)
    finally:
        for child in launcher.children(recursive=True) if proc.poll() is None else []:
            child.kill()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    log = out.decode(errors="replace")
    assert proc.returncode == 0, log
    texts = [r["text"] for r in _finals(rec)]
    assert len(texts) == 2, (texts, log)
    assert words(texts[0]) == words(FIRST), texts
    assert words(texts[1]) == words(SECOND), texts
    assert "restart" in log.lower(), log
