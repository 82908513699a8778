"""The suite's result rows, its table, and the RESULTS.md section it owns."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BEGIN = "<!-- bench-suite:begin (written by `python -m bench`; edit outside the markers) -->"
END = "<!-- bench-suite:end -->"
DESIGNS = ("actors", "in-process", "Vision Agents 0.6.9")


@dataclass
class Row:
    """One line of the table: a figure of one design in one scenario."""

    section: str
    scenario: str
    design: str
    figures: str
    target: str = ""
    met: bool | None = None
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def verdict(self) -> str:
        """``met`` / ``MISSED`` / blank (no target for this row)."""
        if self.met is None:
            return ""
        return "met" if self.met else "**MISSED**"


def fmt(value: float | None, digits: int = 1) -> str:
    """A number for the table; ``-`` for missing or NaN."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:,.{digits}f}"


def table(rows: list[Row]) -> str:
    """The markdown table of every row."""
    lines = ["| section | scenario | design | figures | target | verdict |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r.section} | {r.scenario} | {r.design} | {r.figures} "
                     f"| {r.target} | {r.verdict} |")
    return "\n".join(lines)


def section_text(rows: list[Row], *, command: str, machine: str, notes: list[str],
                 plots: list[Path], when: str, elapsed_s: float) -> str:
    """The RESULTS.md section the suite owns (between the markers)."""
    parts = [
        BEGIN,
        "## Suite: actors vs in-process, same run",
        "",
        "Command (from the repository root):",
        "",
        f"    {command}",
        "",
        f"Machine: {machine}. Run {when}, {elapsed_s:.0f} s.",
        "",
        table(rows),
        "",
    ]
    if plots:
        parts += ["Plots: " + ", ".join(f"[{p.stem}](plots/{p.name})" for p in plots), ""]
    if notes:
        parts += ["What each figure includes:", ""]
        parts += [f"- {note}" for note in notes]
        parts.append("")
    parts.append(END)
    return "\n".join(parts)


def write_results(path: Path, section: str, *, begin: str = BEGIN, end: str = END) -> None:
    """Put ``section`` (which starts with ``begin`` and ends with ``end``) between
    those markers of ``path``; everything else is kept.

    Without markers the section goes right after the file's first heading
    (or at the top of a new file).
    """
    text = path.read_text() if path.exists() else "# Benchmark results\n"
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.DOTALL)
    if pattern.search(text):
        text = pattern.sub(lambda _m: section, text, count=1)
    else:
        lines = text.splitlines()
        at = next((i + 1 for i, line in enumerate(lines) if line.startswith("# ")), 0)
        lines[at:at] = ["", section, ""]
        text = "\n".join(lines)
    path.write_text(text.rstrip("\n") + "\n")
