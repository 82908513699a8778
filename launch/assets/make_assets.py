"""Regenerate the demo's bundled utterances (deterministic, numpy only).

    .venv/bin/python launch/assets/make_assets.py

Each "utterance" is speech-like, not speech: voiced syllables with a gliding
pitch, a few harmonics shaped by two formant-like peaks, syllable envelopes
and short pauses, at 16 kHz mono. Enough for pipelines to have something
that sounds like a user talking; real speech fixtures come from a TTS.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from va_actors.core.audio import PcmData

RATE = 16000
HERE = Path(__file__).resolve().parent


def _syllable(rng: np.random.Generator, seconds: float, pitch: float) -> np.ndarray:
    n = int(seconds * RATE)
    t = np.arange(n) / RATE
    glide = pitch * (1 + 0.12 * np.sin(np.pi * t / seconds) + rng.uniform(-0.05, 0.05))
    phase = 2 * np.pi * np.cumsum(glide) / RATE
    formants = rng.uniform(500, 900), rng.uniform(1100, 2200)
    wave = np.zeros(n)
    for k in range(1, 12):
        freq = k * pitch
        weight = sum(np.exp(-(((freq - f) / 250) ** 2)) for f in formants) + 0.3 / k
        wave += weight * np.sin(k * phase)
    envelope = np.sin(np.pi * np.clip(t / seconds, 0, 1)) ** 1.5  # smooth edges: no clicks
    return wave * envelope


def utterance(seed: int, syllables: int, pitch: float) -> np.ndarray:
    """A run of syllables and pauses, normalised to -6 dBFS peak."""
    rng = np.random.default_rng(seed)
    parts = []
    for _ in range(syllables):
        parts.append(_syllable(rng, rng.uniform(0.12, 0.26), pitch * rng.uniform(0.9, 1.15)))
        parts.append(np.zeros(int(rng.uniform(0.02, 0.12) * RATE)))
    signal = np.concatenate(parts)
    return (0.5 * signal / np.max(np.abs(signal))).astype(np.float32)


def main() -> None:
    for name, seed, syllables, pitch in (("hello", 1, 7, 140.0), ("question", 2, 9, 180.0)):
        pcm = PcmData.from_numpy(utterance(seed, syllables, pitch), sample_rate=RATE)
        (HERE / f"{name}.wav").write_bytes(pcm.to_wav_bytes())
        print(f"{name}.wav: {pcm.duration:.2f} s")


if __name__ == "__main__":
    main()
