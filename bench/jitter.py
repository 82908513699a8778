"""Section 1: sink jitter of a 20 ms audio stream while another stage blocks.

Pipeline (the same stages for every design): ``mic`` (20 ms 16 kHz mono
chunks in real time) -> ``echo`` (republishes each chunk) -> ``sink`` (logs
each arrival); ``stt`` (:class:`bench.stages.BlockingSTT`) reads the same mic
audio and blocks for 500 ms once a second, by CPU work (``cpu``) or a blocking
sleep (``sleep``). Jitter = |inter-arrival gap - 20 ms| at the sink, after a
0.5 s warm-up.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from pathlib import Path
from typing import Any

from bench import va069
from bench.pipeline import Stage, read_jsonl, run_inprocess, supervised, until, write_pipeline
from bench.report import Row, fmt
from bench.stats import percentile

MODES = ("cpu", "sleep")
WARMUP_NS = 500_000_000
TARGET_P99_MS = 5.0


def stages(mode: str, sink_log: Path) -> list[Stage]:
    """mic -> echo -> sink, plus the blocking STT on the mic."""
    return [
        Stage("mic", "tests.actors.tone:ToneSource"),
        Stage("echo", "tests.actors.echo:Echo", ["mic.audio"]),
        Stage("stt", "bench.stages:BlockingSTT", ["mic.audio"],
              {"mode": mode, "block_ms": 500, "every_s": 1.0}),
        Stage("sink", "tests.actors.record:RecordingSink", ["echo.out"], {"path": str(sink_log)}),
    ]


def jitter_stats(arrivals_ns: list[int], start_ns: int) -> dict[str, Any]:
    """Gaps and jitter (ms) of the arrivals after the warm-up."""
    kept = [t for t in arrivals_ns if t >= start_ns + WARMUP_NS]
    gaps = [(b - a) / 1e6 for a, b in itertools.pairwise(kept)]
    jitter = [abs(g - 20.0) for g in gaps]
    return {"chunks": len(kept), "p50_ms": percentile(jitter, 0.5),
            "p99_ms": percentile(jitter, 0.99), "max_ms": max(jitter, default=float("nan")),
            "max_gap_ms": max(gaps, default=float("nan")),
            "gaps_ms": [round(g, 3) for g in gaps]}


async def _ours(mode: str, seconds: float, work: Path) -> dict[str, Any]:
    sink_log = work / f"jitter-{mode}-actors.jsonl"
    config = write_pipeline(work, f"jitter-{mode}", stages(mode, sink_log),
                            {"hang_timeout_s": 5.0})
    async with supervised(config, work / f"run-jitter-{mode}") as (sup, _sys):
        start = time.time_ns()
        await until(lambda: read_jsonl(sink_log), 10, "audio at the sink")
        await asyncio.sleep(seconds + 0.5)
        blocks = next(i.msgs_out for i in sup.status().instances if i.instance == "stt")
    arrivals = [r["recv_ns"] for r in read_jsonl(sink_log) if "recv_ns" in r and "topic" in r]
    return {**jitter_stats(arrivals, max(start, arrivals[0] if arrivals else start)),
            "stt_transcripts": blocks}


def _inprocess(mode: str, seconds: float, work: Path) -> dict[str, Any]:
    sink_log = work / f"jitter-{mode}-inprocess.jsonl"
    run = run_inprocess(stages(mode, sink_log), seconds + 0.5, work, f"jitter-{mode}")
    arrivals = [r["recv_ns"] for r in read_jsonl(sink_log) if "topic" in r]
    return jitter_stats(arrivals, run.started_ns)


def _va069(mode: str, seconds: float, work: Path) -> dict[str, Any]:
    out = work / f"jitter-{mode}-va069.jsonl"
    started = va069.run_flow(out, mode, seconds + 0.5)
    arrivals = [r["recv_ns"] for r in read_jsonl(out)]
    return jitter_stats(arrivals, started)


def _row(mode: str, design: str, s: dict[str, Any]) -> Row:
    figures = (f"jitter p50 {fmt(s['p50_ms'], 2)} / p99 {fmt(s['p99_ms'], 2)} / max "
               f"{fmt(s['max_ms'], 1)} ms; longest gap {fmt(s['max_gap_ms'], 0)} ms; "
               f"{s['chunks']} chunks")
    ours = design == "actors"
    return Row("1 jitter", f"stage blocks 500 ms/s ({mode})", design, figures,
               f"p99 < {TARGET_P99_MS:.0f} ms" if ours else "",
               (s["p99_ms"] < TARGET_P99_MS) if ours else None, s)


def run(quick: bool, work: Path, say: Any = print) -> list[Row]:
    """Every mode on every design; rows in table order."""
    seconds = 3.0 if quick else 10.0
    rows: list[Row] = []
    for mode in MODES:
        say(f"jitter ({mode}): actors")
        rows.append(_row(mode, "actors", asyncio.run(_ours(mode, seconds, work))))
        say(f"jitter ({mode}): in-process")
        rows.append(_row(mode, "in-process", _inprocess(mode, seconds, work)))
        say(f"jitter ({mode}): Vision Agents 0.6.9")
        try:
            rows.append(_row(mode, "Vision Agents 0.6.9", _va069(mode, seconds, work)))
        except va069.Unavailable as exc:
            rows.append(Row("1 jitter", f"stage blocks 500 ms/s ({mode})",
                            "Vision Agents 0.6.9", f"not run: {exc}"))
    return rows
