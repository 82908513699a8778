"""Voice-to-voice latency of the offline voice agent over many turns.

    .venv/bin/python bench/voice.py [--turns N] [--gap S]

Runs launch/voice_agent.toml with a scripted user asking N questions (the two
bundled ones, alternating), each ``gap`` seconds after the previous one ended
so that most replies finish first, and collects the console actor's per-turn
breakdown (end of user speech -> turn detected -> final transcript -> first
LLM token -> first TTS audio -> audio out). Prints median and p90 of the total
and of each segment, and how many questions were not heard as one turn with
the right words (split by a turn that ended too early, lost, or
mis-transcribed): the latency only counts when that is 0. There is no
in-process baseline here: the target
(median under 800 ms) is absolute; bench/ comparisons with in-process
pipelines are a separate benchmark.
"""

from __future__ import annotations

import argparse
import difflib
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LAUNCH = REPO / "launch" / "voice_agent.toml"
QUESTIONS = ["launch/assets/voice/weather.wav", "launch/assets/voice/joke.wav"]
SAID = ["What is the weather usually like in the summer?", "Can you tell me a short joke?"]
"""What each of QUESTIONS says (see launch/assets/voice/make_voice.py)."""
LINE = re.compile(r"voice-to-voice (\d+) ms = turn (-?\d+) \+ transcript (-?\d+) \+ "
                  r"first token (-?\d+) \+ first audio (-?\d+) \+ audio out (-?\d+)")
SEGMENTS = ("total", "turn", "transcript", "first token", "first audio", "audio out")


def pipeline(turns: int, gap_s: float, out_dir: Path) -> Path:
    """A copy of the voice agent with ``turns`` scripted questions."""
    items = ", ".join(
        f'{{ path = "{QUESTIONS[i % 2]}", ' + ("at_s = 1.0" if i == 0 else f"gap_s = {gap_s}")
        + " }" for i in range(turns))
    text = re.sub(r"utterances = \[.*?\]\ntail_s = [0-9.]+",
                  f"utterances = [{items}]\ntail_s = 10.0", LAUNCH.read_text(), flags=re.S)
    text = text.replace('path = "out/voice_agent.wav"', f'path = "{out_dir / "agent.wav"}"')
    path = out_dir / "voice_bench.toml"
    path.write_text(text)
    return path


def _words(text: str) -> tuple[str, ...]:
    return tuple(re.findall(r"[a-z']+", text.lower()))


def misheard(turns: int, log: str) -> int:
    """Questions not transcribed as exactly one user turn with the right words."""
    expected = [_words(SAID[i % 2]) for i in range(turns)]
    heard = [_words(line[len("user:"):]) for line in log.splitlines()
             if line.startswith("user:")]
    blocks = difflib.SequenceMatcher(None, expected, heard, autojunk=False).get_matching_blocks()
    return turns - sum(block.size for block in blocks)


def run(turns: int = 10, gap_s: float = 9.0) -> dict[str, dict[str, float]]:
    """Run the agent: {segment: {median, p90, n}} in ms, plus {"misheard": {"n": k}}."""
    with tempfile.TemporaryDirectory() as tmp:
        path = pipeline(turns, gap_s, Path(tmp))
        done = subprocess.run([sys.executable, "-m", "va_actors.cli.main", "run", str(path)],
                              cwd=REPO, capture_output=True, text=True, timeout=60 + turns * 20,
                              check=False)
    if done.returncode != 0:
        raise SystemExit(f"voice agent failed (exit {done.returncode}):\n{done.stdout[-3000:]}")
    rows = [tuple(int(v) for v in m.groups()) for m in LINE.finditer(done.stdout)]
    if not rows:
        raise SystemExit("no latency lines in the console output:\n" + done.stdout[-3000:])
    result = {name: _stats([row[i] for row in rows]) for i, name in enumerate(SEGMENTS)}
    result["misheard"] = {"n": misheard(turns, done.stdout)}
    return result


def _stats(values: list[int]) -> dict[str, float]:
    ordered = sorted(values)
    p90 = ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]
    return {"median": statistics.median(ordered), "p90": p90, "n": len(ordered)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=10)
    parser.add_argument("--gap", type=float, default=9.0, help="seconds between questions")
    args = parser.parse_args()
    result = run(args.turns, args.gap)
    print(f"{'segment':<12} {'median ms':>10} {'p90 ms':>8}   (n = {result['total']['n']:.0f})")
    for name in SEGMENTS:
        print(f"{name:<12} {result[name]['median']:>10.0f} {result[name]['p90']:>8.0f}")
    bad = int(result["misheard"]["n"])
    print(f"questions split, lost or mis-transcribed: {bad} of {args.turns}")
    verdict = "met" if result["total"]["median"] < 800 and bad == 0 else "NOT met"
    print(f"target median < 800 ms with every question heard whole: {verdict}")


if __name__ == "__main__":
    main()
