"""Voice-to-voice latency of the offline voice agent over many turns.

    .venv/bin/python bench/voice.py [--turns N] [--gap S] [--with-pause] [--baseline]

Runs launch/voice_agent.toml with a scripted user asking N questions (the two
bundled ones, alternating; with ``--with-pause`` every third one is the
weather question with a 450 ms hesitation in mid-sentence), each ``gap``
seconds after the previous one ended so that most replies finish first, and
collects the console actor's per-turn breakdown (end of user speech -> turn
detected -> final transcript -> first LLM token -> first TTS audio -> audio
out). Prints median and p90 of the total and of each segment, and how many
questions were not heard as one turn with the right words (split by a turn
that ended too early, lost, or mis-transcribed): the latency only counts when
that is 0.

``--baseline`` also runs the same questions with the settings of before
(600 ms silence only, no speculative transcript, Whisper's full 30 s window,
partials every 500 ms, no LLM warm-up, one llama thread for the prompt too), for a comparison on the
same machine at the same time; the TTS's first-clause start is in the TTS
driver and is on in both. ``--rounds R``
alternates baseline and current R times and pools the turns, so that load
from other work on a shared machine falls on both alike. ``--log DIR`` keeps
each run's console output. The target (median under 800 ms) is absolute.
"""

from __future__ import annotations

import argparse
import difflib
import re
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from va_actors.testing import pipeline_copy_text

REPO = Path(__file__).resolve().parents[1]
LAUNCH = REPO / "launch" / "voice_agent.toml"


@dataclass(frozen=True)
class Question:
    path: str
    said: str


WEATHER = Question(str(REPO / "launch/assets/voice/weather.wav"),
                   "What is the weather usually like in the summer?")
JOKE = Question(str(REPO / "launch/assets/voice/joke.wav"), "Can you tell me a short joke?")
PAUSED = Question(str(REPO / "launch/assets/voice/weather_pause.wav"), WEATHER.said)
"""See launch/assets/voice/make_voice.py for how each was made."""

LINE = re.compile(r"voice-to-voice (\d+) ms = turn (-?\d+) \+ transcript (-?\d+) \+ "
                  r"first token (-?\d+) \+ first audio (-?\d+) \+ audio out (-?\d+)")
SEGMENTS = ("total", "turn", "transcript", "first token", "first audio", "audio out")
BASELINE = (("smart_turn = true", "smart_turn = false"),
            ("speculate_ms = 100", "speculate_ms = 0"),
            ("window_s = 15", "window_s = 30"),
            ("partial_interval_ms = 0", "partial_interval_ms = 500"),
            ("warm_up = true", "warm_up = false"),
            ("keep_warm = true", "keep_warm = false"),
            ('"--batch-threads", "2"', '"--batch-threads", "1"'),
            ("incremental = true", "incremental = false"),
            ("unfinished_hold_ms = 800", "unfinished_hold_ms = 0"))
"""The settings of the agent before the latency work (bench/RESULTS.md, Voice)."""
SEED = 7


def questions(turns: int, with_pause: bool) -> list[Question]:
    """The questions in the order they are asked."""
    cycle = [WEATHER, JOKE, PAUSED] if with_pause else [WEATHER, JOKE]
    return [cycle[i % len(cycle)] for i in range(turns)]


def pipeline(asked: list[Question], gap_s: float, out_dir: Path, baseline: bool,
             llm_port: int | None = None) -> Path:
    """A copy of the voice agent asking ``asked`` (with the old settings if ``baseline``).

    ``llm_port``: serve the LLM there instead of the launch file's port (which
    another run on the machine may hold).
    """
    items = ", ".join(
        f'{{ path = "{q.path}", ' + ("at_s = 1.0" if i == 0 else f"gap_s = {gap_s}") + " }"
        for i, q in enumerate(asked))
    text = re.sub(r"utterances = \[.*?\]\ntail_s = [0-9.]+",
                  f"utterances = [{items}]\ntail_s = 10.0", pipeline_copy_text(LAUNCH), flags=re.S)
    text = text.replace(str(REPO / "out" / "voice_agent.wav"), str(out_dir / "agent.wav"))
    # A fixed sampling seed: the same question and history get the same reply in
    # every run, so "first audio" (which grows with the reply's first clause)
    # compares like with like.
    if "max_tokens = 60\n" not in text:
        raise SystemExit(f"{LAUNCH} no longer has 'max_tokens = 60': update bench/voice.py")
    text = text.replace("max_tokens = 60\n",
                        f"max_tokens = 60\nextra_body = {{ seed = {SEED} }}\n")
    if baseline:
        for new, old in BASELINE:
            if new not in text:
                raise SystemExit(f"{LAUNCH} no longer has {new!r}: update BASELINE")
            text = text.replace(new, old)
    if llm_port is not None:
        if "18765" not in text:
            raise SystemExit(f"{LAUNCH} no longer serves the LLM on 18765: update bench/voice.py")
        text = text.replace("18765", str(llm_port))
    path = out_dir / "voice_bench.toml"
    path.write_text(text)
    return path


def _words(text: str) -> tuple[str, ...]:
    return tuple(re.findall(r"[a-z']+", text.lower()))


def misheard(asked: list[Question], log: str) -> int:
    """Questions not transcribed as exactly one user turn with the right words."""
    expected = [_words(q.said) for q in asked]
    heard = [_words(line[len("user:"):]) for line in log.splitlines()
             if line.startswith("user:")]
    blocks = difflib.SequenceMatcher(None, expected, heard, autojunk=False).get_matching_blocks()
    return len(asked) - sum(block.size for block in blocks)


@dataclass
class Turns:
    """Per-turn breakdowns (ms, in SEGMENTS order) and questions not heard whole."""

    rows: list[tuple[int, ...]]
    misheard: int = 0
    asked: int = 0

    def add(self, other: Turns) -> None:
        self.rows += other.rows
        self.misheard += other.misheard
        self.asked += other.asked

    def stats(self) -> dict[str, dict[str, float]]:
        """{segment: {median, p90, n}}."""
        return {name: _stats([row[i] for row in self.rows]) for i, name in enumerate(SEGMENTS)}


def run(asked: list[Question], gap_s: float = 9.0, baseline: bool = False,
        log: Path | None = None, llm_port: int | None = None) -> Turns:
    """Run the agent once and collect its turns."""
    with tempfile.TemporaryDirectory() as tmp:
        path = pipeline(asked, gap_s, Path(tmp), baseline, llm_port)
        done = subprocess.run([sys.executable, "-m", "va_actors.cli.main", "run", str(path)],
                              cwd=REPO, capture_output=True, text=True,
                              timeout=60 + len(asked) * 20, check=False)
    if log is not None:
        log.write_text(done.stdout)
    if done.returncode != 0:
        raise SystemExit(f"voice agent failed (exit {done.returncode}):\n{done.stdout[-3000:]}")
    rows = [tuple(int(v) for v in m.groups()) for m in LINE.finditer(done.stdout)]
    if not rows:
        raise SystemExit("no latency lines in the console output:\n" + done.stdout[-3000:])
    return Turns(rows, misheard(asked, done.stdout), len(asked))


def _stats(values: list[int]) -> dict[str, float]:
    ordered = sorted(values)
    p90 = ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]
    return {"median": statistics.median(ordered), "p90": p90, "n": len(ordered)}


def _table(label: str, turns: Turns) -> None:
    stats = turns.stats()
    print(f"{label}  (n = {stats['total']['n']:.0f} turns)")
    print(f"  {'segment':<12} {'median ms':>10} {'p90 ms':>8}")
    for name in SEGMENTS:
        print(f"  {name:<12} {stats[name]['median']:>10.0f} {stats[name]['p90']:>8.0f}")
    print(f"  questions split, lost or mis-transcribed: {turns.misheard} of {turns.asked}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=10)
    parser.add_argument("--gap", type=float, default=9.0, help="seconds between questions")
    parser.add_argument("--with-pause", action="store_true",
                        help="every third question hesitates 450 ms in mid-sentence")
    parser.add_argument("--baseline", action="store_true",
                        help="also run the settings of before (silence-only turns)")
    parser.add_argument("--rounds", type=int, default=1,
                        help="runs of each variant, alternated, turns pooled")
    parser.add_argument("--log", type=Path, default=None,
                        help="directory for each run's console output")
    args = parser.parse_args()
    asked = questions(args.turns, args.with_pause)
    if args.log is not None:
        args.log.mkdir(parents=True, exist_ok=True)
    before, now = Turns([]), Turns([])
    for r in range(args.rounds):
        for variant, pooled in ((True, before), (False, now)):
            if variant and not args.baseline:
                continue
            name = f"{'baseline' if variant else 'current'}-{r}.log"
            pooled.add(run(asked, args.gap, variant, args.log / name if args.log else None))
    if args.baseline:
        _table("baseline (600 ms silence, no speculation, 30 s window, partials, no warm-up)",
               before)
    _table("voice_agent.toml (Smart-Turn, speculative transcript, warm-up)", now)
    result = now.stats()
    ok = result["total"]["median"] < 800 and now.misheard == 0
    print(f"target median < 800 ms with every question heard whole: "
          f"{'met' if ok else 'NOT met'}")


if __name__ == "__main__":
    main()
