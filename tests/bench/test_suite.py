"""The bench suite's entry point, table and RESULTS.md writer.

One real quick section (start-up and RSS of a 6-actor pipeline next to the
in-process runner) runs through ``python -m bench``; the writer is checked to
replace only its own section and keep the others.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.report import BEGIN, END, Row, section_text, table, write_results

ROOT = Path(__file__).resolve().parents[2]
OTHER = "# Benchmark results\n\n## Voice-to-voice latency\n\nkept as is: 1274 ms\n"


def _section(figure: str) -> str:
    rows = [Row("1 jitter", "stage blocks", "actors", figure, "p99 < 5 ms", True)]
    return section_text(rows, command="python -m bench", machine="test machine", notes=["n"],
                        plots=[Path("plots/x.png")], when="now", elapsed_s=1.0)


def test_write_results_replaces_only_its_section(tmp_path: Path) -> None:
    path = tmp_path / "RESULTS.md"
    path.write_text(OTHER)
    write_results(path, _section("first figure"))
    write_results(path, _section("second figure"))
    text = path.read_text()
    assert text.count(BEGIN) == 1 and text.count(END) == 1
    assert "second figure" in text and "first figure" not in text
    assert "## Voice-to-voice latency\n\nkept as is: 1274 ms" in text
    assert text.index(BEGIN) > text.index("# Benchmark results")
    assert "[x](plots/x.png)" in text


def test_table_shows_verdicts() -> None:
    rows = [Row("s", "a", "actors", "f", "t", True), Row("s", "a", "actors", "f", "t", False),
            Row("s", "a", "in-process", "f")]
    lines = table(rows).splitlines()
    assert lines[2].endswith("| met |") and lines[3].endswith("| **MISSED** |")
    assert lines[4].endswith("|  |  |")


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_quick_startup_section_end_to_end(tmp_path: Path) -> None:
    results, store = tmp_path / "RESULTS.md", tmp_path / "results.json"
    results.write_text(OTHER)
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--only", "startup", "--no-plots",
         "--results", str(results), "--store", str(store)],
        cwd=ROOT, capture_output=True, text=True, timeout=110, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = [line for line in proc.stdout.splitlines() if line.startswith("| 4 start-up")]
    assert [r.split("|")[3].strip() for r in rows] == ["actors", "in-process"], proc.stdout
    saved = json.loads(store.read_text())["startup"]
    ours = next(r for r in saved["rows"] if r["design"] == "actors")["data"]
    assert len(ours["actors"]) == 6  # one RSS reading per actor host
    assert all(20 < rss < 500 for rss, _uss in ours["actors"].values())
    text = results.read_text()
    assert "kept as is: 1274 ms" in text
    assert "--quick --only startup" in text and "| 4 start-up | 6-actor pipeline |" in text
