"""Replay of missed input: a consumer killed mid-stream, with replay on and off, same run.

    .venv/bin/python -m bench.replay            # 5 kills per setting
    .venv/bin/python -m bench.replay --kills 2  # shorter

Pipeline: ``mic`` (20 ms tone chunks in real time) -> ``sink`` (records
every message it gets, across incarnations). The bench SIGKILLs the sink
mid-stream, 3 s apart; the supervisor restarts it at once (a one-off crash,
``restart_window_s = 2.5`` as in bench/crash.py). Per kill:

* **missed**: chunks the sink never got (ms of audio = chunks x 20 ms);
* **replayed**: chunks the restarted sink got as a replay (its ``replayed_in``);
* **ready -> replay delivered**: from the restart's ``ready`` (sys.actor) to
  the sink's receipt of the last replayed chunk;
* **ready -> first input**: from ``ready`` to the first chunk of the new incarnation.

"off" is today's behaviour (``replay_s = 0``): what was published during the
restart is gone. Writes the Replay section of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.hop import versions
from bench.pipeline import Stage, read_jsonl, supervised, until, write_pipeline
from bench.report import write_results
from bench.stats import median

HERE = Path(__file__).resolve().parent
BEGIN = "<!-- bench-replay:begin (written by `python -m bench.replay`) -->"
END = "<!-- bench-replay:end -->"
CHUNK_MS = 20
SPACING_S = 3.0


def _records(log: Path) -> list[dict[str, Any]]:
    return [r for r in read_jsonl(log) if "topic" in r]


def _replay(sup: Any, instance: str) -> dict[str, int]:
    return next(dict(i.replay) for i in sup.status().instances if i.instance == instance)


def _ready_after(states: list[dict[str, Any]], after_ns: int) -> int | None:
    return next((int(s["ts_ns"]) for s in states if s["instance"] == "sink"
                 and s["state"] == "ready" and s["ts_ns"] > after_ns), None)


async def _one_kill(sup: Any, listener: Any, log: Path) -> dict[str, float]:
    before = _replay(sup, "sink")
    pid = sup.pid_of("sink")
    kill_ns = time.time_ns()
    os.kill(pid, signal.SIGKILL)
    last = max(r["seq"] for r in _records(log))
    await until(lambda: _ready_after(listener.states, kill_ns), 15, "the sink ready again")
    await until(lambda: any(r["recv_ns"] > kill_ns for r in _records(log)), 15, "input again")
    await asyncio.sleep(1.0)  # the replay's counters reach a heartbeat
    after = _replay(sup, "sink")
    replayed = after.get("replayed_in", 0) - before.get("replayed_in", 0)
    too_old = after.get("too_old_in", 0) - before.get("too_old_in", 0)
    ready = _ready_after(listener.states, kill_ns)
    assert ready is not None
    records = _records(log)
    new = [r for r in records if r["recv_ns"] > kill_ns]
    seqs = {r["seq"] for r in records}
    horizon = new[0]["seq"] if not replayed else last + too_old + replayed
    missed = sum(1 for s in range(last + 1, max(horizon, new[0]["seq"])) if s not in seqs)
    delivered = next((r["recv_ns"] for r in new if r["seq"] == last + too_old + replayed),
                     None) if replayed else None
    return {"missed": missed, "replayed": replayed, "too_old": too_old,
            "ready_to_first_ms": (new[0]["recv_ns"] - ready) / 1e6,
            "ready_to_replayed_ms": (delivered - ready) / 1e6 if delivered else float("nan"),
            "kill_to_ready_ms": (ready - kill_ns) / 1e6}


async def _run(kills: int, work: Path, replay: bool) -> list[dict[str, float]]:
    name = "replay-on" if replay else "replay-off"
    log = work / f"{name}.jsonl"
    stages = [Stage("mic", "tests.actors.tone:ToneSource"),
              Stage("sink", "tests.actors.record:RecordingSink", ["mic.audio"],
                    {"path": str(log)})]
    settings: dict[str, Any] = {"restart_window_s": 2.5, "replay_s": 5.0 if replay else 0.0}
    config = write_pipeline(work, name, stages, settings)
    out = []
    async with supervised(config, work / f"run-{name}") as (sup, listener):
        await until(lambda: len(_records(log)) >= 10, 10, "audio at the sink")
        for _ in range(kills):
            await asyncio.sleep(SPACING_S)
            out.append(await _one_kill(sup, listener, log))
    return out


def _summary(trials: list[dict[str, float]]) -> dict[str, float]:
    keys = ("missed", "replayed", "too_old", "ready_to_first_ms", "ready_to_replayed_ms",
            "kill_to_ready_ms")
    return {k: median([t[k] for t in trials]) for k in keys} | {"kills": len(trials)}


def _section(on: dict[str, float], off: dict[str, float], command: str) -> str:
    when = dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    rows = []
    for label, s in (("replay on (`replay_s = 5`)", on), ("replay off (`replay_s = 0`, before)",
                                                          off)):
        replayed_ms = s["replayed"] * CHUNK_MS
        rows.append(f"| {label} | {s['kills']:.0f} | {s['kill_to_ready_ms']:.0f} | "
                    f"{s['missed']:.0f} ({s['missed'] * CHUNK_MS:.0f} ms) | "
                    f"{s['replayed']:.0f} ({replayed_ms:.0f} ms) | {s['too_old']:.0f} | "
                    f"{s['ready_to_first_ms']:.0f} | "
                    + ("-" if s["replayed"] == 0 else f"{s['ready_to_replayed_ms']:.0f}")
                    + " |")
    return "\n".join([
        BEGIN, "## Replay of missed input: a consumer killed mid-stream (preliminary)", "",
        "Command (from the repository root):", "", f"    {command}", "",
        f"Machine: this one, 2 cores; {versions()}. {when}. Medians over the kills; "
        "mic (20 ms chunks, real time) -> recording sink, the sink SIGKILLed 3 s apart, "
        "both settings in the same run.", "",
        "| setting | kills | kill -> ready (ms) | missed chunks | replayed chunks | "
        "too old | ready -> first input (ms) | ready -> replay delivered (ms) |",
        "|---|---|---|---|---|---|---|---|", *rows, "",
        "Missed = chunks of the stream the sink never got. With replay on, the chunks "
        "published while the sink was down come to its next incarnation first, in order, "
        "none twice (tests/runtime/test_replay_recovery.py checks this on every run); "
        "\"ready -> replay delivered\" is to the receipt of the last replayed chunk. With "
        "replay on, the first input waits for the replay: the host asks 20 ms after its "
        "inputs are connected (which is before its ready), then one round trip through the "
        "supervisor, while live input is held; without replay, live input flows before ready "
        "(negative).", END])


def main(argv: list[str] | None = None) -> int:
    """Run both settings, print the figures, write the RESULTS.md section."""
    parser = argparse.ArgumentParser(prog="python -m bench.replay", description=__doc__)
    parser.add_argument("--kills", type=int, default=5)
    parser.add_argument("--results", type=Path, default=HERE / "RESULTS.md")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="va-bench-replay-") as tmp:
        work = Path(tmp)
        on = _summary(asyncio.run(_run(args.kills, work, replay=True)))
        off = _summary(asyncio.run(_run(args.kills, work, replay=False)))
    print("replay on: ", on)
    print("replay off:", off)
    command = ".venv/bin/python -m bench.replay" + (
        f" --kills {args.kills}" if args.kills != 5 else "")
    write_results(args.results, _section(on, off, command), begin=BEGIN, end=END)
    return 0


if __name__ == "__main__":
    sys.exit(main())
