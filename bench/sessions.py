"""Sessions on one machine: session start cold vs warm, and N concurrent voice sessions.

    .venv/bin/python -m bench.sessions [--starts 3] [--max 4]

1. **Start.** The voice agent (launch/voice_agent.toml: Silero + Smart-Turn,
   Whisper, SmolLM2 on the shared llama.cpp service, Piper) as the template of
   a :class:`~va_actors.runtime.sessions.SessionServer`: ``POST /sessions``
   until every actor is running, with no warm pool (every process starts
   Python, imports and loads its model) and with a warm pool of one per
   actor (the bench waits for the pool to refill before each start). Target:
   warm < 500 ms.
2. **Concurrency.** 1, 2, 4, ... sessions at once (each the scripted user's
   two questions, started 2 s apart), until admission refuses: per-session
   voice-to-voice median/p90 (from the turn-latency events), and the audio
   jitter of the first session (inter-arrival of the scripted microphone's
   20 ms chunks at a recorder, |gap - 20 ms| p99) while the others start and
   talk. Admission uses its defaults (90 % CPU, 25 % per new session), so the
   step it refuses is the machine's limit.

3. **In one process.** The same N sessions as tasks of ONE process
   (:mod:`bench.one_loop`: the same plugins and drivers on one asyncio loop,
   what an in-process framework runs), in the same run: the same figures,
   and their ratio to the actor path.

The raw pyzmq hop of the same run (bench/hop.py's calibration) is printed
beside the figures, so a slow machine tells itself from a regression.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import statistics
import tempfile
from pathlib import Path
from typing import Any

from bench.hop import calibration
from bench.one_loop import run_sessions
from bench.stats import percentile
from va_actors.runtime.config import load_pipeline
from va_actors.runtime.sessions import AdmissionRefused, Limits, ServeSettings, SessionServer
from va_actors.testing import pipeline_copy_text, read_jsonl, until

REPO = Path(__file__).resolve().parents[1]
LAUNCH = REPO / "launch" / "voice_agent.toml"
START_TARGET_MS = 500.0


def template(directory: Path) -> Path:
    """The voice agent, with a recorder of the microphone for the jitter figure."""
    text = pipeline_copy_text(LAUNCH).replace(str(REPO / "out" / "voice_agent.wav"),
                                              str(directory / "agent-${VA_SESSION_ID}.wav"))
    text += f"""
[[actor]]
name = "mic_log"
plugin = "tests.actors.record:RecordingSink"
inputs = ["user.audio"]
params = {{ path = "{directory}/mic-${{VA_SESSION_ID}}.jsonl" }}
"""
    path = directory / "sessions_template.toml"
    path.write_text(text)
    return path


async def starts(path: Path, pool: int, count: int) -> list[float]:
    """``count`` session starts (ms, POST to running) with ``pool`` warm processes per actor."""
    server = SessionServer(load_pipeline(path), ServeSettings(
        port=0, pool=pool, limits=Limits(max_sessions=1, max_cpu_percent=100,
                                         max_memory_percent=100, session_cpu_percent=0)))
    await server.start()
    took = []
    try:
        warm = server.pool
        for _ in range(count):
            if warm is not None:
                await until(lambda: warm.size >= warm.target, 180, "a full warm pool")
            session = await server.create_session()
            assert session.start_ms is not None
            took.append(session.start_ms)
            await server.stop_session(session.id)
    finally:
        await server.close()
    return took


def jitter_p99_ms(log: Path) -> float:
    """|inter-arrival - 20 ms| p99 of the chunks a recorder logged."""
    arrivals = [r["recv_ns"] for r in read_jsonl(log) if r.get("topic") == "user.audio"]
    gaps = [abs((b - a) / 1e6 - 20.0) for a, b in itertools.pairwise(arrivals)]
    return percentile(gaps, 0.99) if gaps else float("nan")


async def concurrent(path: Path, directory: Path, count: int,
                     limits: Limits | None = None) -> dict[str, Any]:
    """``count`` sessions at once; their latency, the first one's jitter, refusals."""
    server = SessionServer(load_pipeline(path), ServeSettings(
        port=0, pool=1, limits=limits or Limits(max_sessions=0)))
    records: dict[str, list[float]] = {}
    observe = server.metrics.observe_turn

    def keep(session: str, record: Any) -> None:
        records.setdefault(session, []).append(float(record["total_ms"]))
        observe(session, record)

    server.metrics.observe_turn = keep  # type: ignore[method-assign]
    await server.start()
    started: list[str] = []
    refused = ""
    try:
        for _ in range(count):
            try:
                started.append((await server.create_session()).id)
            except AdmissionRefused as exc:
                refused = exc.reason
                break
            await asyncio.sleep(2.0)
        await until(lambda: not server.sessions, 120, "every session's script played out")
    finally:
        await server.close()
    per_session = {sid: {"median_ms": statistics.median(v), "p90_ms": percentile(v, 0.9),
                         "turns": len(v)} for sid, v in records.items() if v}
    first = started[0] if started else ""
    return {"asked": count, "started": len(started), "refused": refused,
            "per_session": per_session,
            "first_jitter_p99_ms": jitter_p99_ms(directory / f"mic-{first}.jsonl")}


def in_one_process(path: Path, directory: Path, count: int) -> dict[str, Any]:
    """``count`` sessions of the template as tasks of this process, 2 s apart."""
    text = path.read_text()

    def session_file(sid: str) -> Path:
        own = directory / f"{sid}.toml"
        own.write_text(text.replace("${VA_SESSION_ID}", sid))
        return own

    records = asyncio.run(run_sessions(path, count, 2.0, session_file))
    per_session = {sid: {"median_ms": statistics.median(v), "p90_ms": percentile(v, 0.9),
                         "turns": len(v)} for sid, v in records.items() if v}
    return {"sessions": count, "per_session": per_session,
            "first_jitter_p99_ms": jitter_p99_ms(directory / "mic-loop0.jsonl")}


def pooled(result: dict[str, Any]) -> float:
    """The median of the sessions' medians (nan when no turn was measured)."""
    medians = [s["median_ms"] for s in result["per_session"].values()]
    return statistics.median(medians) if medians else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--starts", type=int, default=3, help="session starts per variant")
    parser.add_argument("--max", type=int, default=4, help="most concurrent sessions to try")
    parser.add_argument("--force", action="store_true",
                        help="admit past the load thresholds (to see what admission prevents)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        path = template(directory)
        hop = calibration()
        print(f"calibration, one hop of paced 20 ms PCM: raw pyzmq p50 {hop['raw_p50_us']:.0f} / "
              f"p99 {hop['raw_p99_us']:.0f} us, actor runtime p50 {hop['ours_p50_us']:.0f} / "
              f"p99 {hop['ours_p99_us']:.0f} us")
        cold = asyncio.run(starts(path, 0, args.starts))
        warm = asyncio.run(starts(path, 1, args.starts))
        print(f"session start, cold: median {statistics.median(cold):.0f} ms  {cold}")
        print(f"session start, warm pool: median {statistics.median(warm):.0f} ms  {warm}  "
              f"(target < {START_TARGET_MS:.0f} ms: "
              f"{'met' if statistics.median(warm) < START_TARGET_MS else 'NOT met'})")
        n = 1
        while n <= args.max:
            forced = Limits(max_sessions=0, max_cpu_percent=100, max_memory_percent=100,
                            session_cpu_percent=0) if args.force else None
            result = asyncio.run(concurrent(path, directory, n, forced))
            print(json.dumps(result))
            started = result["started"]
            if started:
                loop = in_one_process(path, directory, started)
                print("in one process: " + json.dumps(loop))
                print(f"{started} session(s): median of session medians, actors "
                      f"{pooled(result):.0f} ms, one process {pooled(loop):.0f} ms "
                      f"(one process / actors {pooled(loop) / pooled(result):.2f}); "
                      f"first session's mic jitter p99 actors "
                      f"{result['first_jitter_p99_ms']:.1f} ms, one process "
                      f"{loop['first_jitter_p99_ms']:.1f} ms")
            if result["refused"]:
                break
            n *= 2


if __name__ == "__main__":
    main()
