"""PNG plots where a distribution says more than a number (matplotlib, Agg backend)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.report import Row

PLOTS = Path(__file__).resolve().parent / "plots"


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def jitter(rows: list[Row]) -> Path | None:
    """Sink inter-arrival gaps over the run, one panel per blocking mode."""
    rows = [r for r in rows if r.section.startswith("1") and "gaps_ms" in r.data]
    if not rows:
        return None
    plt = _pyplot()
    scenarios = list(dict.fromkeys(r.scenario for r in rows))
    fig, axes = plt.subplots(len(scenarios), 1, figsize=(9, 3.2 * len(scenarios)), squeeze=False)
    for ax, scenario in zip(axes[:, 0], scenarios, strict=True):
        for r in rows:
            if r.scenario == scenario:
                ax.plot(r.data["gaps_ms"], label=r.design, linewidth=0.9)
        ax.set_yscale("log")
        ax.set_ylabel("gap between chunks (ms)")
        ax.set_title(f"sink inter-arrival, {scenario} (20 ms expected)")
        ax.legend(loc="upper right")
    axes[-1, 0].set_xlabel("chunk at the sink")
    fig.tight_layout()
    return _save(fig, "jitter_gaps.png")


def bargein(rows: list[Row]) -> Path | None:
    """Onset -> agent silent per interruption, per design and scenario."""
    rows = [r for r in rows if r.section.startswith("2") and r.data.get("per_trial")]
    if not rows:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(9, 3.5))
    labels = []
    for i, r in enumerate(rows):
        values = [t["onset_to_silent_ms"] for t in r.data["per_trial"] if "missed" not in t]
        ax.scatter([i] * len(values), values, s=18)
        labels.append(f"{r.design}\n{r.scenario}")
    ax.set_xticks(range(len(rows)), labels, fontsize=8)
    ax.axhline(100, linestyle="--", linewidth=0.8, color="grey")
    ax.set_ylabel("onset -> agent silent (ms)")
    ax.set_title("barge-in, one dot per interruption (dashed: 100 ms target)")
    fig.tight_layout()
    return _save(fig, "bargein.png")


def memory(rows: list[Row]) -> Path | None:
    """Idle RSS per actor and of the supervisor, next to the in-process total."""
    ours = next((r for r in rows if r.section.startswith("4") and r.design == "actors"), None)
    base = next((r for r in rows if r.section.startswith("4") and r.design == "in-process"), None)
    if ours is None or base is None or "actors" not in ours.data:
        return None
    plt = _pyplot()
    names = [*sorted(ours.data["actors"]), "supervisor"]
    values = [ours.data["actors"][n] for n in names[:-1]] + [ours.data["supervisor"]]
    fig, ax = plt.subplots(figsize=(9, 3.5))
    ax.bar(names, [v[0] for v in values], label="RSS")
    ax.bar(names, [v[1] for v in values], label="USS (own pages)")
    ax.bar(["in-process\n(all six)"], [base.data["rss_mb"]], color="tab:green",
           label="in-process RSS")
    ax.axhline(60, linestyle="--", linewidth=0.8, color="grey")
    ax.set_ylabel("MB after 2 s idle")
    ax.set_title("memory of a 6-actor pipeline (dashed: 60 MB per actor target)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, "memory.png")


def _save(fig: Any, name: str) -> Path:
    PLOTS.mkdir(exist_ok=True)
    path = PLOTS / name
    fig.savefig(path, dpi=110)
    _pyplot().close(fig)
    return path


def all_plots(rows: list[Row]) -> list[Path]:
    """Every plot the rows allow."""
    made = [jitter(rows), bargein(rows), memory(rows)]
    return [p for p in made if p is not None]
