"""Section 2: barge-in, from the user's speech onset to the agent falling silent.

Pipeline (the same stages for both designs): ``user``
(:class:`bench.stages.UserScript`: a real-time microphone, quiet, with 300 ms
of loud speech at scripted onsets) -> ``turn`` (:class:`bench.stages.EnergyTurn`,
a turn detector firing on the first loud chunk); ``agent``
(:class:`bench.stages.Replier`, the LLM's role: a reply text every cycle) ->
``tts`` (:class:`bench.stages.ToneTTS`: 2 s of audio per reply, synthesised
at 10x real time, so the speaker holds over a second of it) -> ``speaker``
(:class:`bench.stages.PlayLog`, the local plugins' real-time
``PlaybackSink`` that reports playback and logs every piece it plays).
Each cycle the agent starts a reply and the user interrupts it 0.8-1.8 s later.
In the ``stt blocks`` scenario a :class:`bench.stages.BlockingSTT` also reads
the user's audio and sleeps 500 ms once a second.

Per interruption: **onset -> agent silent** (the user's first loud chunk due
at the microphone in real time -> the end of the last piece of the
interrupted reply the speaker played: a piece handed out at ``t`` sounds
until ``t`` + its duration),
**onset -> epoch bump** (the supervisor's, or the in-process runner's), and
**stale chunks** (pieces of the interrupted reply played after the speaker's
process had the new epoch: each piece logs the epoch its process knew when
it left; pieces that left in the < 1 ms while the bump was on its way are
counted apart as "in transit").
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from bench.pipeline import Stage, read_jsonl, run_inprocess, supervised, write_pipeline
from bench.report import Row, fmt
from bench.stages import RATE
from bench.stats import median, percentile

CYCLE_S = 3.0
REPLY_AT_S = 0.3
ONSET_AFTER_S = 0.8
TARGET_MS = 100.0
SCENARIOS = {"quiet": "none", "stt blocks 500 ms/s": "sleep"}


def schedule(trials: int) -> tuple[list[float], list[float], float]:
    """Reply times, onset times (shifted a little each cycle) and total duration."""
    replies = [REPLY_AT_S + k * CYCLE_S for k in range(trials)]
    # 0.8-1.8 s into each reply, spread over the phase of a once-a-second block.
    onsets = [round(r + ONSET_AFTER_S + (k * 0.37) % 1.0, 2) for k, r in enumerate(replies)]
    return replies, onsets, trials * CYCLE_S + 1.0


def stages(trials: int, stt_mode: str, user_log: Path, speaker_log: Path) -> list[Stage]:
    """The barge-in pipeline."""
    replies, onsets, duration = schedule(trials)
    out = [
        Stage("user", "bench.stages:UserScript",
              params={"onsets_s": onsets, "speech_ms": 300, "duration_s": duration,
                      "log": str(user_log)}),
        Stage("turn", "bench.stages:EnergyTurn", ["user.audio"]),
        Stage("agent", "bench.stages:Replier", params={"at_s": replies}),
        Stage("tts", "bench.stages:ToneTTS", ["agent.text"], {"reply_ms": 2000, "speed": 10}),
        Stage("speaker", "bench.stages:PlayLog", ["tts.audio"], {"log": str(speaker_log)}),
    ]
    if stt_mode != "none":
        out.append(Stage("stt", "bench.stages:BlockingSTT", ["user.audio"],
                         {"mode": stt_mode, "block_ms": 500, "every_s": 1.0}))
    return out


def trials_from_logs(onsets: list[int], bumps: dict[int, int],
                     played: list[dict[str, Any]]) -> list[dict[str, float]]:
    """One dict per interruption: onset -> last old audio, onset -> bump, stale pieces.

    Interruption ``k`` (0-based) cuts the reply of epoch ``k`` and bumps to ``k + 1``.
    """
    out = []
    for k, onset in enumerate(onsets):
        bump = bumps.get(k + 1)
        old = [p for p in played if "played_ns" in p and p["epoch"] <= k]
        if bump is None or not old:
            out.append({"missed": 1.0})
            continue
        # A piece handed to the output at played_ns sounds until its end.
        silent = max(p["played_ns"] + p["samples"] * 1e9 / RATE for p in old)
        after = [p for p in old if p["played_ns"] > bump]
        # Stale: played although the speaker's process already had the new
        # epoch. The rest left while the bump was still on its way (< 1 ms).
        stale = [p for p in after if p.get("known_epoch", k + 1) > k]
        out.append({"onset_to_silent_ms": (silent - onset) / 1e6,
                    "onset_to_bump_ms": (bump - onset) / 1e6,
                    "stale": float(len(stale)), "in_transit": float(len(after) - len(stale)),
                    "in_transit_ms": max(((p["played_ns"] - bump) / 1e6 for p in after
                                          if p not in stale), default=0.0)})
    return out


async def _ours(trials: int, stt_mode: str, work: Path, tag: str) -> list[dict[str, float]]:
    user_log, speaker_log = work / f"{tag}-user.jsonl", work / f"{tag}-speaker.jsonl"
    config = write_pipeline(work, tag, stages(trials, stt_mode, user_log, speaker_log),
                            {"hang_timeout_s": 5.0})
    _, _, duration = schedule(trials)
    async with supervised(config, work / f"run-{tag}") as (_sup, sys_listener):
        await asyncio.sleep(duration + 0.5)
        bumps = {int(e["epoch"]): int(e["ts_ns"]) for e in sys_listener.epochs}
    onsets = [r["onset_ns"] for r in read_jsonl(user_log)]
    return trials_from_logs(onsets, bumps, read_jsonl(speaker_log))


def _inprocess(trials: int, stt_mode: str, work: Path, tag: str) -> list[dict[str, float]]:
    user_log, speaker_log = work / f"{tag}-user.jsonl", work / f"{tag}-speaker.jsonl"
    _, _, duration = schedule(trials)
    run = run_inprocess(stages(trials, stt_mode, user_log, speaker_log), duration + 0.5,
                        work, tag)
    onsets = [r["onset_ns"] for r in read_jsonl(user_log)]
    return trials_from_logs(onsets, dict(run.bumps), read_jsonl(speaker_log))


def summary(trials: list[dict[str, float]]) -> dict[str, Any]:
    """Medians, worst cases and totals over the interruptions."""
    done = [t for t in trials if "missed" not in t]
    silent = [t["onset_to_silent_ms"] for t in done]
    bump = [t["onset_to_bump_ms"] for t in done]
    return {"trials": len(trials), "missed": len(trials) - len(done),
            "silent_p50_ms": median(silent), "silent_max_ms": max(silent, default=float("nan")),
            "bump_p50_ms": median(bump), "bump_p90_ms": percentile(bump, 0.9),
            "stale": int(sum(t["stale"] for t in done)),
            "in_transit": int(sum(t.get("in_transit", 0) for t in done)),
            "in_transit_max_ms": max((t.get("in_transit_ms", 0.0) for t in done), default=0.0),
            "per_trial": trials}


def _row(scenario: str, design: str, s: dict[str, Any]) -> Row:
    figures = (f"onset -> agent silent p50 {fmt(s['silent_p50_ms'], 0)} / max "
               f"{fmt(s['silent_max_ms'], 0)} ms; onset -> epoch bump p50 "
               f"{fmt(s['bump_p50_ms'], 0)} ms; stale chunks after the speaker had the bump "
               f"{s['stale']} (pieces that left while it was in transit: {s['in_transit']}, "
               f"<= {fmt(s['in_transit_max_ms'], 1)} ms after it was sent); "
               f"{s['trials'] - s['missed']}/{s['trials']} interruptions")
    ours = design == "actors"
    met = (s["missed"] == 0 and s["stale"] == 0 and s["silent_max_ms"] < TARGET_MS)
    return Row("2 barge-in", scenario, design, figures,
               f"< {TARGET_MS:.0f} ms, 0 stale" if ours else "", met if ours else None, s)


def run(quick: bool, work: Path, say: Any = print) -> list[Row]:
    """Both scenarios on both designs."""
    trials = 3 if quick else 10
    rows: list[Row] = []
    for scenario, stt_mode in SCENARIOS.items():
        tag = f"bargein-{stt_mode}"
        say(f"barge-in ({scenario}): actors, {trials} interruptions")
        rows.append(_row(scenario, "actors",
                         summary(asyncio.run(_ours(trials, stt_mode, work, tag + "-actors")))))
        say(f"barge-in ({scenario}): in-process")
        rows.append(_row(scenario, "in-process",
                         summary(_inprocess(trials, stt_mode, work, tag + "-inprocess"))))
        time.sleep(0.1)
    return rows
