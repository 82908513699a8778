"""The README's main command: the demo pipeline runs offline and exits 0."""

from __future__ import annotations

import shutil
import subprocess
import sys
import wave
from pathlib import Path

import psutil
import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.timeout(90)
def test_demo_pipeline_plays_every_utterance_and_stops_by_itself(tmp_path: Path) -> None:
    work = tmp_path / "repo"
    (work / "launch").mkdir(parents=True)
    shutil.copy(REPO / "launch" / "demo.toml", work / "launch" / "demo.toml")
    shutil.copytree(REPO / "launch" / "assets", work / "launch" / "assets")
    proc = subprocess.Popen([sys.executable, "-m", "va_actors.cli.main", "run",
                             "launch/demo.toml"], cwd=work,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        out, _ = proc.communicate(timeout=60)
    finally:
        for child in psutil.Process().children(recursive=True):
            child.kill()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = out.decode(errors="replace")
    assert proc.returncode == 0, text
    assert "every source finished" in text
    inputs = [work / "launch" / "assets" / name for name in ("hello.wav", "question.wav")]
    spoken = sum(_seconds(p) for p in inputs)
    with wave.open(str(work / "out" / "demo.wav")) as played:
        played_s = played.getnframes() / played.getframerate()
    # Everything the scripted user said reached the speaker, plus the silences between.
    assert played_s >= spoken
    assert played_s < spoken + 4.0


def _seconds(path: Path) -> float:
    with wave.open(str(path)) as wav:
        return wav.getnframes() / wav.getframerate()
