"""The bench suite: the actor design next to in-process pipelines, in one run.

    .venv/bin/python -m bench [--quick] [--only jitter,bargein,crash,startup,transport]

Prints one table and rewrites the suite's section of bench/RESULTS.md (between
its markers; the other sections are kept), with the figures of every section
from bench/results.json (sections not run now keep their last figures and
command), and PNG plots in bench/plots/.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import bargein, crash, hop, jitter, plots, startup, transport, va069
from bench.report import Row, section_text, table, write_results

HERE = Path(__file__).resolve().parent
SECTIONS: dict[str, Callable[..., list[Row]]] = {
    "jitter": jitter.run, "bargein": bargein.run, "crash": crash.run,
    "startup": startup.run, "transport": transport.run,
}
NOTES = [
    "**jitter**: " + (jitter.__doc__ or "").split("\n\n", 1)[1].replace("\n", " ").strip()
    + " In-process runs the same plugin classes on one asyncio loop (`bench/inprocess.py`);"
    " Vision Agents 0.6.9 runs stub plugins on its own base classes, wired as its Agent wires"
    " them (`bench/va069_flow.py`, its own venv in `.bench/va069`). Its input loop polls"
    " every 20 ms, so its chunks also arrive in pairs when not stalled.",
    "**barge-in**: onset = the user's first loud chunk due at the microphone in real time;"
    " agent silent = end of the last piece of the interrupted reply the speaker"
    " (the local plugins' real-time PlaybackSink) played; stale = pieces of that reply played"
    " after the epoch bump. The turn detector fires on level (no VAD model), so the figure is"
    " the pipeline's reaction, not a VAD's decision time.",
    "**crash**: kill -9 of the middle stage of mic -> echo -> sink; recovery ends at the sink's"
    " first output from the new process. The supervisor restarts a one-off crash at once"
    " (restart_window_s = 2.5 here so a 3 s run counts as stable). In-process: the whole"
    " process is killed and started again at once, as a service manager would.",
    "**start-up / RSS**: `va-launch run` of 6 actors until every instance is running; RSS and"
    " USS after 2 s idle (psutil). In-process: the same six stages in one process.",
    "**transport**: `bench/hop.py` and `bench/resample.py` re-run; their sections below"
    " describe the method.",
]


def _strip(row: Row) -> dict[str, Any]:
    data = {k: v for k, v in row.data.items() if k != "gaps_ms"}
    return {**dataclasses.asdict(row), "data": data}


def _load(store: Path) -> dict[str, Any]:
    return json.loads(store.read_text()) if store.exists() else {}


def machine() -> str:
    """CPU, OS and library versions, including the Vision Agents environment."""
    text = hop.versions()
    other = va069.version()
    return f"{text}; baseline env: {other}" if other else text


def main(argv: list[str] | None = None) -> int:
    """Run the chosen sections, print the table, write RESULTS.md and plots."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="short runs (validation only)")
    parser.add_argument("--only", default=",".join(SECTIONS),
                        help=f"comma-separated sections: {','.join(SECTIONS)}")
    parser.add_argument("--results", type=Path, default=HERE / "RESULTS.md")
    parser.add_argument("--store", type=Path, default=HERE / "results.json")
    parser.add_argument("--no-plots", action="store_true")
    args = parser.parse_args(argv)
    chosen = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = [s for s in chosen if s not in SECTIONS]
    if unknown:
        parser.error(f"--only: unknown section(s) {', '.join(unknown)}; "
                     f"choose from {', '.join(SECTIONS)}")
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda signum, _frame: sys.exit(128 + signum))
    command = ".venv/bin/python -m bench" + (" --quick" if args.quick else "")
    if chosen != list(SECTIONS):
        command += f" --only {','.join(chosen)}"
    started = time.monotonic()
    when = dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    fresh: list[Row] = []
    store = _load(args.store)
    with tempfile.TemporaryDirectory(prefix="va-bench-") as tmp:
        for name in chosen:
            rows = SECTIONS[name](args.quick, Path(tmp),
                                  lambda m: print(f"  {m}", file=sys.stderr, flush=True))
            fresh += rows
            store[name] = {"command": command, "when": when, "quick": args.quick,
                           "rows": [_strip(r) for r in rows]}
    elapsed = time.monotonic() - started
    all_rows = [Row(**r) for name in SECTIONS if name in store for r in store[name]["rows"]]
    print(table(fresh))
    made = [] if args.no_plots else plots.all_plots(fresh)
    existing = sorted(plots.PLOTS.glob("*.png")) if not args.no_plots else made
    runs = sorted({(v["command"], v["when"]) for v in store.values()}, key=lambda c: c[1])
    notes = NOTES + [f"Sections last run by `{c}` at {w}." for c, w in runs if c != command]
    args.store.write_text(json.dumps(store, indent=1) + "\n")
    write_results(args.results, section_text(all_rows, command=command, machine=machine(),
                                             notes=notes, plots=existing, when=when,
                                             elapsed_s=elapsed))
    print(f"\nwrote {args.results} and {args.store}" + (f"; plots: {len(made)}" if made else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
