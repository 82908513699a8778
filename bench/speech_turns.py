"""Turn-taking and transcription on human speech, in one process, in real time.

    .venv/bin/python -m bench.speech_turns [--variants NAME,NAME] [--only ID,ID]
        [--json PATH]

Feeds every utterance of bench/assets/speech (real recorded speech), at real
time in 20 ms chunks with 3 s of silence after it, to the voice agent's turn
detector (Silero VAD + Smart-Turn v3, ``silero.turn``'s settings in
launch/voice_agent.toml) and Whisper tiny.en (``whisper.stt``), and flushes
the STT at each end of turn as the pipeline's STT actor does. No LLM, TTS or
processes: this measures the two user-side rules of issue 17 on their own,
for each variant of the STT's settings:

* ``whole``: the speculative transcript at the first pause, as before:
  every transcription covers the whole utterance so far;
* ``incremental``: the transcript of each stretch up to a pause the user
  spoke on after is kept (``incremental = true``);
* ``hold``: incremental, plus the final held while its words sound
  unfinished (``unfinished_hold_ms``).

Reported per variant and by utterance length (under 3 s, 3-8 s, over 8 s):
word error rate of the finals (bench/wer.py); *STT splits*, utterances that
gave more than one final (each one a reply the LLM would start); *detector
turns*, utterances the turn detector ended more than once; *held*, finals
kept back; *false waits*, utterances whose last final came more than 1.5 s
after their speech ended; and the end of turn -> final transcript time
(median, p90): the "transcript" segment of the voice agent's latency.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
import wave
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bench.corpus import LENGTH_GROUPS, Utterance, load
from bench.wer import normalise, word_errors
from va_actors.core.audio import PcmData
from va_actors.core.events import BaseEvent
from va_actors.core.stt import STTTranscriptEvent
from va_actors.core.turn_detection import TurnEndedEvent, TurnStartedEvent

CHUNK_MS = 20
TAIL_S = 3.0
HOLD_LIMIT_MS = 1500.0
DETECTOR = {"smart_turn": True, "score_ms": 100, "pause_ms": 200, "silence_ms": 600}
"""launch/voice_agent.toml's ``turn`` params."""
STT = {"speculate_ms": 100, "partial_interval_ms": 0, "window_s": 15, "silence_ms": 1000}
"""launch/voice_agent.toml's ``stt`` params, without the two under test."""
VARIANTS: dict[str, dict[str, Any]] = {
    "whole": {},
    "incremental": {"incremental": True},
    "hold": {"incremental": True, "unfinished_hold_ms": 1000},
}


@dataclass
class Result:
    """What one variant made of one utterance."""

    id: str
    group: str
    finals: list[str] = field(default_factory=list)
    detector_turns: int = 0
    held: int = 0
    final_ms: list[float] = field(default_factory=list)
    """End of turn (the flush) -> its final transcript, wall clock, per final that a
    flush ended (the STT's own silence rule ends the others)."""
    reasons: list[str] = field(default_factory=list)
    last_final_after_speech_ms: float | None = None
    word_errors: int = 0
    reference_words: int = 0


def _samples(utt: Utterance) -> np.ndarray[Any, np.dtype[np.int16]]:
    with wave.open(str(utt.path)) as wav:
        return np.frombuffer(wav.readframes(wav.getnframes()), np.int16)


async def play(utt: Utterance, stt_params: dict[str, Any]) -> Result:
    """Feed one utterance in real time to a fresh detector and STT; collect what they did."""
    from va_actors.plugins.silero import SileroTurnDetection
    from va_actors.plugins.whisper import WhisperSTT

    result = Result(utt.id, utt.length_group)
    detector = SileroTurnDetection(**DETECTOR)
    stt = WhisperSTT(**{**STT, **stt_params})
    flushes: list[asyncio.Task[None]] = []
    flushed_at: list[float] = []
    started = 0.0

    def on_turn(event: BaseEvent) -> None:
        if isinstance(event, TurnEndedEvent):
            result.detector_turns += 1
            flushed_at.append(time.perf_counter())
            flushes.append(asyncio.ensure_future(stt.flush(event.participant)))
        elif isinstance(event, TurnStartedEvent):
            stt.resume(event.participant)

    def on_transcript(event: BaseEvent) -> None:
        if isinstance(event, STTTranscriptEvent) and event.mode == "final":
            now = time.perf_counter()
            result.finals.append(event.text)
            reason = str((event.response.other or {}).get("reason", "")) if event.response \
                else ""
            result.reasons.append(reason)
            if flushed_at and reason in ("flush", "hold"):
                result.final_ms.append((now - flushed_at[-1]) * 1000)
            speech_end = started + utt.speech_s[1]
            result.last_final_after_speech_ms = (now - speech_end) * 1000

    detector.events.subscribe(prefix="")(on_turn)
    stt.events.subscribe(prefix="")(on_transcript)
    await detector.start()
    await stt.start()
    samples = np.concatenate([_samples(utt), np.zeros(int(TAIL_S * 16000), np.int16)])
    step = 16000 * CHUNK_MS // 1000
    started = time.perf_counter()
    for i, at in enumerate(range(0, samples.size, step)):
        chunk = PcmData(16000, "s16", samples[at:at + step])
        await detector.process_audio(chunk)
        await stt.process_audio(chunk)
        # Real time: each chunk when a microphone would deliver it.
        await asyncio.sleep(max(0.0, started + (i + 1) * CHUNK_MS / 1000
                                - time.perf_counter()))
    await asyncio.gather(*flushes)
    result.held = stt.stats["held"]
    await stt.close()
    await detector.close()
    joined = " ".join(result.finals)
    result.word_errors = word_errors(utt.text, joined)
    result.reference_words = len(normalise(utt.text))
    return result


def _p90(values: Sequence[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]


def summary(results: Sequence[Result]) -> dict[str, dict[str, Any]]:
    """Figures per length group (and "all")."""
    out: dict[str, dict[str, Any]] = {}
    for group in ("all", *LENGTH_GROUPS):
        rows = [r for r in results if group in ("all", r.group)]
        if not rows:
            continue
        words = sum(r.reference_words for r in rows)
        # The transcript segment: the final that ends the utterance (its last).
        last = [r.final_ms[-1] for r in rows if r.final_ms]
        out[group] = {
            "n": len(rows), "wer": sum(r.word_errors for r in rows) / words if words else None,
            "stt_splits": sum(len(r.finals) > 1 for r in rows),
            "detector_splits": sum(r.detector_turns > 1 for r in rows),
            "lost": sum(not r.finals for r in rows),
            "held": sum(r.held for r in rows),
            "false_waits": sum((r.last_final_after_speech_ms or 0) > HOLD_LIMIT_MS
                               for r in rows),
            "final_ms_median": statistics.median(last) if last else None,
            "final_ms_p90": _p90(last) if last else None}
    return out


def print_summary(name: str, results: Sequence[Result]) -> None:
    """One table for one variant, then the utterances it did not hear as one final."""
    print(f"\n{name}: {VARIANTS[name] or 'speculative transcript of the whole utterance'}")
    print(f"  {'length':<10} {'n':>3} {'WER':>6} {'STT splits':>10} {'detector':>9} "
          f"{'held':>5} {'waits>1.5s':>10} {'lost':>5} {'turn end -> final ms':>22}")
    for group, c in summary(results).items():
        wer = "-" if c["wer"] is None else f"{100 * c['wer']:.1f}%"
        ms = ("-" if c["final_ms_median"] is None
              else f"{c['final_ms_median']:.0f} / {c['final_ms_p90']:.0f}")
        print(f"  {group:<10} {c['n']:>3} {wer:>6} {c['stt_splits']:>10} "
              f"{c['detector_splits']:>9} {c['held']:>5} {c['false_waits']:>10} "
              f"{c['lost']:>5} {ms:>22}")
    for r in results:
        if len(r.finals) != 1:
            said = list(zip(r.reasons, r.finals, strict=True))
            print(f"    {r.id}: {len(r.finals)} finals {said}")


async def run(variants: Sequence[str], corpus: Sequence[Utterance]) -> dict[str, list[Result]]:
    """Every utterance through every variant, alternating, so load falls on all alike."""
    results: dict[str, list[Result]] = {name: [] for name in variants}
    for utt in corpus:
        for name in variants:
            results[name].append(await play(utt, VARIANTS[name]))
        print(f"{utt.id}: " + "; ".join(f"{n} {results[n][-1].finals}" for n in variants),
              file=sys.stderr, flush=True)
    return results


def main(argv: list[str] | None = None) -> int:
    """Command line."""
    parser = argparse.ArgumentParser(prog="python -m bench.speech_turns",
                                     description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--variants", default=",".join(VARIANTS),
                        help=f"comma-separated, of {', '.join(VARIANTS)}")
    parser.add_argument("--only", default="", help="comma-separated utterance ids")
    parser.add_argument("--json", type=Path, help="write every result to this file")
    args = parser.parse_args(argv)
    names = [n for n in args.variants.split(",") if n]
    if unknown := set(names) - set(VARIANTS):
        raise SystemExit(f"unknown variant(s): {', '.join(sorted(unknown))}")
    corpus = load()
    if args.only:
        wanted = set(args.only.split(","))
        corpus = [u for u in corpus if u.id in wanted]
    results = asyncio.run(run(names, corpus))
    for name in names:
        print_summary(name, results[name])
    if args.json:
        args.json.write_text(json.dumps(
            {name: {"summary": summary(rs), "utterances": [asdict(r) for r in rs]}
             for name, rs in results.items()}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
