"""Crash state: kill -9 mid-reply / mid-question, with the conversation kept and without.

    .venv/bin/python -m bench.crash_state [--kills K] [--seed S] [--json PATH]

bench/chaos.py's conversation (the voice agent's real models, a user who
waits for each answer), twice in the same run: as it is now (conversation
store, replay of missed input, the interrupted turn re-run) and as it was
before issue 15 (``state = false``, ``replay_s = 0``). In each, ``K`` kills
aimed at the worst moment: llm / tts while agent audio is going out, stt /
turn while the user is asking. Reported per design: kill -> the next agent
audio (median, max) for the kills that landed mid-reply, questions answered,
user turns lost, replies re-run or re-sent, and the messages replayed into
each restarted consumer (a 20 ms audio chunk each for stt and turn).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench import chaos, hop


def figures(result: chaos.RunResult) -> dict[str, Any]:
    """One design's row."""
    mid = [k.next_audio_ms for k in result.kills
           if k.target in ("llm", "tts") and k.next_audio_ms is not None]
    lost = len(chaos.REFERENCE_TURNS) - sum(
        any(chaos.same_turn(ref, got) for got in result.user_turns)
        for ref in chaos.REFERENCE_TURNS)
    audio_ms = 20 * sum(n for name, n in result.replayed_to.items() if name in ("stt", "turn"))
    return {
        "kills": len(result.kills), "mid_reply_kills": len(mid),
        "next_audio_ms_median": round(statistics.median(mid), 1) if mid else None,
        "next_audio_ms_max": max(mid) if mid else None,
        "asked": result.asked, "answered": result.answered, "user_turns_lost": lost,
        "sentences_twice": len(result.sentences_twice), "reruns": result.reruns,
        "resent": result.resent, "replayed_to": result.replayed_to,
        "user_audio_replayed_ms": audio_ms, "seconds": result.seconds,
    }


async def both(work: Path, kills: int, seed: int) -> dict[str, Any]:
    """Today's design and the one before, same kills (same seed)."""
    ours = await chaos.run_once(work, "kept", kills, random.Random(seed), aim=True)
    before = await chaos.run_once(work, "lost", kills, random.Random(seed), keep_state=False,
                                  aim=True)
    return {"kept": figures(ours), "before": figures(before),
            "runs": {"kept": asdict(ours), "before": asdict(before)}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.crash_state", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kills", type=int, default=6)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    calibration = hop.calibration()
    with tempfile.TemporaryDirectory(prefix="va-crash-state-") as tmp:
        report = asyncio.run(both(Path(tmp), args.kills, args.seed))
    report["calibration_raw_hop"] = calibration
    for design in ("kept", "before"):
        print(design, json.dumps(report[design]))
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
