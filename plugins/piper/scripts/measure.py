"""Measure load time, time to first audio and real-time factor of PiperTTS and EspeakTTS.

Run from the repository root: ``.venv/bin/python plugins/piper/scripts/measure.py``.
Timings go through the TTS base's ``send_iter`` (16 kHz output), as a pipeline
would use the plugins; the median of ``--runs`` runs after one warm-up is printed.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from va_actors.core.tts import TTS
from va_actors.plugins.piper import EspeakTTS, PiperTTS

TEXTS = {
    "2 sentences": "The quick brown fox jumps over the lazy dog. Then it runs into the forest.",
    "paragraph": (
        "Good morning, and thank you for calling. Your order shipped yesterday and should "
        "arrive on Thursday. If anything is missing, reply to the confirmation email. "
        "You can also track the parcel on our website. Is there anything else I can help "
        "you with today?"
    ),
}


async def one_run(tts: TTS, text: str) -> tuple[float, float, float]:
    """Return (first audio s, total s, audio s) of one synthesis."""
    started = time.perf_counter()
    first: float | None = None
    audio_s = 0.0
    async for chunk in tts.send_iter(text):
        if chunk.data is not None and chunk.data.samples.size:
            first = first if first is not None else time.perf_counter() - started
            audio_s += chunk.data.duration
    return first or 0.0, time.perf_counter() - started, audio_s


async def measure(name: str, tts: TTS, runs: int) -> None:
    for label, text in TEXTS.items():
        await one_run(tts, text)  # warm-up: first-call allocations
        results = [await one_run(tts, text) for _ in range(runs)]
        first = statistics.median(r[0] for r in results) * 1000
        total = statistics.median(r[1] for r in results) * 1000
        audio = statistics.median(r[2] for r in results)
        print(f"{name:6} {label:12} audio {audio:5.2f} s  first audio {first:6.1f} ms  "
              f"total {total:6.1f} ms  RTF {total / 1000 / audio:.3f} "
              f"({audio * 1000 / total:.0f}x real time)")


async def main(runs: int) -> None:
    started = time.perf_counter()
    espeak = EspeakTTS()
    print(f"espeak init (library + voice): {(time.perf_counter() - started) * 1000:.1f} ms")
    started = time.perf_counter()
    piper = PiperTTS()
    await piper.start()
    print(f"piper start (import + load voice): {time.perf_counter() - started:.2f} s "
          f"(PiperVoice.load {piper.load_time_s:.2f} s)")
    await measure("piper", piper, runs)
    await measure("espeak", espeak, runs)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    asyncio.run(main(parser.parse_args().runs))
