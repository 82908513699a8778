"""Section 5: the hop and resampling figures, re-measured in the suite's run.

Runs ``bench/hop.py`` (one hop through a real actor host next to raw pyzmq)
and ``bench/resample.py`` (streaming resample next to PyAV) through their
``run()`` functions; their own sections of RESULTS.md explain the method.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench import hop, resample
from bench.report import Row, fmt


def _hop_rows(quick: bool) -> list[Row]:
    seconds, bursts = (2.0, 5) if quick else (10.0, 20)
    rows = hop.run(seconds, bursts=bursts)
    by = {(r["scenario"], r["path"]): r for r in rows}
    verdicts = {name: (met, evidence) for name, met, evidence in hop.targets(rows)}
    out = []
    for scenario, target in (("pcm-paced", "PCM (paced) p99 under 2 ms"),
                             ("video-720p", "720p rgb24 at 30 fps sustained, p99 under 10 ms")):
        ours, raw = by[(scenario, hop.OURS)], by[(scenario, hop.RAW)]
        worse = max(ours["in_hop_p99_us"], ours["out_hop_p99_us"])
        ratio = ours["hop_p50_us"] / raw["hop_p50_us"]
        figures = (f"one hop p50 {fmt(ours['hop_p50_us'], 0)} µs vs raw pyzmq "
                   f"{fmt(raw['hop_p50_us'], 0)} µs ({fmt(ratio, 2)}x);"
                   f" worse one-way p99 {fmt(worse, 0)} µs; lost {ours['lost']}/{ours['sent']}")
        met, _evidence = verdicts[target]
        out.append(Row("5 transport", f"one hop, {scenario}", "actors vs raw pyzmq", figures,
                       target.replace("PCM (paced) ", "").replace("720p rgb24 at 30 fps ", ""),
                       met, {"ours": ours, "raw": raw}))
    ratio_target = "PCM (paced) p50 within 3x raw pyzmq"
    met, evidence = verdicts[ratio_target]
    out.append(Row("5 transport", "one hop, pcm-paced", "actors vs raw pyzmq", evidence,
                   "p50 within 3x raw", met))
    return out


def _resample_rows(quick: bool) -> list[Row]:
    rows = resample.run(500 if quick else 2000)
    out = []
    for r in rows:
        out.append(Row("5 transport", "resample 48k stereo -> 16k mono, 20 ms", r["method"],
                       f"median {fmt(r['median_us'])} / p99 {fmt(r['p99_us'])} µs per chunk; "
                       f"alias {fmt(r['alias_db'])} dB", data=r))
    return out


def run(quick: bool, work: Path, say: Any = print) -> list[Row]:
    """Hop and resample rows."""
    say("transport: one hop (bench/hop.py)")
    rows = _hop_rows(quick)
    say("transport: resample (bench/resample.py)")
    return rows + _resample_rows(quick)
