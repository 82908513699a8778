"""Voice-to-voice on human speech: the corpus through the real voice agent.

    .venv/bin/python -m bench.voice_corpus [--gap S] [--baseline] [--rounds R]
        [--only ID,ID] [--log DIR] [--json PATH] [--hop-seconds S] [--from-log DIR]

Plays every utterance of bench/assets/speech (real recorded speech, see its
LICENSES.md) as one user turn of launch/voice_agent.toml's stack (Silero +
Smart-Turn, Whisper tiny.en, SmolLM2 on the llama.cpp service, Piper), ``gap``
seconds of silence after each so the reply has finished, and reports:

* voice-to-voice median and p90 with the breakdown (turn, transcript, first
  token, first audio, audio out), overall and by utterance length (under
  3 s, 3-8 s, over 8 s), from the console's ``metrics.turn_latency`` events;
  for an utterance heard as several turns, the reply to its last turn;
* what the first audio waited for: the words of the reply's first chunk as
  the TTS driver cuts it (``first_clause_end``) and how long after the first
  token the LLM had written them (the rest of first audio is synthesis), so
  two runs whose LLM happened to open its replies differently can be told
  apart from a slower pipeline;
* word error rate of the final transcripts (all turns of an utterance
  joined) against the references (bench/wer.py);
* splits (an utterance that became more than one user turn: final
  transcripts, less those the LLM took as the same turn going on), false "still
  talking" waits (the utterance's turn ended more than 1.5 s after its
  speech did, measured against the corpus's own speech end), utterances lost
  (no turn at all) and utterances that got other than exactly one reply;
* the raw pyzmq one-hop calibration of the same run (bench/hop.py), since
  machines here differ.

The pipeline is bench/voice.py's (same TOML rewrite, fixed sampling seed), so
``--baseline`` runs the same utterances with bench/voice.py's settings of
before (voice.BASELINE) for the ratio, and ``--rounds`` alternates the two as
voice.py does. Turns are matched to utterances in the audio time of the
user's stream: the turn detector reports each turn's start in it, and the
script places every utterance at a known position.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import re
import socket
import statistics
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench import hop, voice
from bench.corpus import LENGTH_GROUPS, Utterance, load
from bench.wer import normalise, word_errors
from va_actors.core.latency import SEGMENTS
from va_actors.core.tts.sentences import first_clause_end
from va_actors.testing import read_jsonl, run_launch

REPO = Path(__file__).resolve().parents[1]
RECORDER = "tests.actors.record:RecordingSink"
RECORDED = ("turn.turn", "stt.transcript", "llm.text", "console.metrics")
FIRST_AT_MS = 1000
"""bench/voice.py places the first utterance at 1.0 s."""
CHUNK_MS = 20
LLM_PORT = "18765"
"""The llama.cpp service's port in launch/voice_agent.toml (replaced by a free one)."""
HOLD_LIMIT_MS = 1500.0
"""A turn that ends later than this after the speech did is a false "still talking" wait."""
LABELS = {"total": "total", "turn_detected": "turn", "final_transcript": "transcript",
          "first_token": "first token", "first_audio": "first audio", "audio_out": "audio out"}


@dataclass
class Heard:
    """What the agent made of one corpus utterance in one run."""

    id: str
    group: str
    duration_s: float
    turns: int = 0
    """User turns the agent took: final transcripts, less those the LLM took as the
    same turn going on (the user resumed before the reply was heard)."""
    detector_turns: int = 0
    """Ends of turn the turn detector reported (the STT may hold one, the LLM merge it)."""
    transcript: str = ""
    word_errors: int = 0
    reference_words: int = 0
    replies: int = 0
    """Replies the LLM started in this utterance's time, less those a continuation of
    the same turn replaced before any was heard."""
    merged: int = 0
    """Transcripts that continued the turn before them (one user turn)."""
    superseded: int = 0
    """Of those, replies cut short (by a newer transcript or barge-in)."""
    hold_ms: float | None = None
    """End of speech (the corpus's) -> the utterance's last turn end, in audio time."""
    latency: dict[str, float] | None = None
    """The last turn's total and segments (ms), if its reply played."""
    all_totals_ms: list[float] = field(default_factory=list)
    first_chunk_words: int | None = None
    """Words of that reply's first chunk for the TTS (``first_clause_end``)."""
    first_chunk_ms: float | None = None
    """First token -> the LLM delta that completed that chunk (ms, wall clock)."""

    @property
    def split(self) -> bool:
        """Heard as more than one user turn."""
        return self.turns > 1

    @property
    def held(self) -> bool:
        """The turn ended more than HOLD_LIMIT_MS after the speech did."""
        return self.hold_ms is not None and self.hold_ms > HOLD_LIMIT_MS


@dataclass
class Run:
    """One run of the agent over a list of utterances."""

    variant: str
    heard: list[Heard]
    drops: int
    """Messages dropped for any reason but ``stale`` (the launcher's stop line): a
    stage fell behind (user audio lost), which makes the run's figures suspect.
    Stale drops are agent output of an epoch a barge-in or resume ended."""


# -- the pipeline -------------------------------------------------------------------------
def schedule_ms(utterances: Sequence[Utterance], gap_s: float) -> list[float]:
    """Where each utterance starts in the user's audio stream (ms), as the script places it."""
    starts, at = [], float(FIRST_AT_MS)
    for utt in utterances:
        starts.append(at)
        at += math.ceil(utt.duration_s * 1000 / CHUNK_MS) * CHUNK_MS
        at += round(gap_s * 1000 / CHUNK_MS) * CHUNK_MS
    return starts


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pipeline(utterances: Sequence[Utterance], gap_s: float, out_dir: Path,
             baseline: bool) -> Path:
    """bench/voice.py's pipeline asking ``utterances``, plus a recorder of what we read."""
    asked = [voice.Question(str(u.path.resolve()), u.text) for u in utterances]
    path = voice.pipeline(asked, gap_s, out_dir, baseline)
    text = path.read_text()
    if LLM_PORT not in text:
        raise RuntimeError(f"{voice.LAUNCH} no longer serves the LLM on {LLM_PORT}: "
                           "update bench/voice_corpus.py")
    # Another agent on a shared machine may hold the launch file's port.
    text = text.replace(LLM_PORT, str(free_port()))
    inputs = ", ".join(f'"{topic}"' for topic in RECORDED)
    path.write_text(text + f"""
[[actor]]
name = "corpus_log"
plugin = "{RECORDER}"
inputs = [{inputs}]
params = {{ path = "{out_dir / 'record.jsonl'}" }}
""")
    return path


def run(utterances: Sequence[Utterance], gap_s: float = 9.0, baseline: bool = False,
        log: Path | None = None) -> Run:
    """Play ``utterances`` through the agent once and say what it heard of each."""
    if not utterances:
        raise ValueError("no utterances to play")
    with tempfile.TemporaryDirectory(prefix="voice-corpus-") as tmp:
        out = Path(tmp)
        path = pipeline(utterances, gap_s, out, baseline)
        audio_s = sum(u.duration_s for u in utterances) + gap_s * len(utterances)
        code, output = run_launch(path, timeout=120 + 1.5 * audio_s, cwd=REPO)
        records = read_jsonl(out / "record.jsonl")
    if log is not None:
        log.write_text(output)
        log.with_suffix(".jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    if code != 0:
        raise RuntimeError(f"voice agent failed (exit {code}):\n{output[-3000:]}")
    variant = "baseline" if baseline else "current"
    return Run(variant, analyse(utterances, schedule_ms(utterances, gap_s), records),
               lost_drops(output))


STOP_DROPS = re.compile(r"stopped \(.*\): .*\bdrops (\d+)(?: \(([^)]*)\))?")


def lost_drops(output: str) -> int:
    """Drops other than ``stale`` in the launcher's stop line (all of them if it has no
    breakdown; 0 if there is no such line)."""
    found = STOP_DROPS.findall(output)
    if not found:
        return 0
    total, reasons = found[-1]
    counts = {name: int(n) for name, n in re.findall(r"([a-z_]+) (\d+)", reasons)}
    return int(total) - counts.get("stale", 0) - counts.get("stale_out", 0)


# -- reading the record -------------------------------------------------------------------
def analyse(utterances: Sequence[Utterance], starts_ms: Sequence[float],
            records: list[dict[str, Any]]) -> list[Heard]:
    """Match the recorded turns, transcripts, replies and latencies to the utterances."""
    heard = [Heard(u.id, u.length_group, u.duration_s) for u in utterances]
    ends = [r for r in records if r.get("type") == "plugin.turn_ended"
            and isinstance(r.get("custom"), dict)]
    if not ends:
        return heard
    # Audio time -> wall clock: the least delayed turn event gives the offset.
    offset_ms = float(min(r["ts_ns"] / 1e6 - float(r["custom"]["detected_ms"]) for r in ends))

    def slot(stream_ms: float) -> int | None:
        # Each utterance owns the audio from just before its start to just before the next.
        index = None
        for i, start in enumerate(starts_ms):
            if stream_ms >= start - 300:
                index = i
        return index

    def at(r: dict[str, Any]) -> float:
        # Wall clock -> position in the user's stream. Not the detector's own audio
        # time: that falls behind when its input queue drops audio under load.
        return float(r["ts_ns"]) / 1e6 - offset_ms

    detected_ms: dict[int, float] = {}
    for r in ends:
        custom = r["custom"]
        i = slot(at(r) - (float(custom["detected_ms"]) - float(custom["start_ms"])))
        if i is not None:
            heard[i].detector_turns += 1
            detected_ms[i] = at(r)
    texts: dict[int, list[str]] = {}
    started: dict[str, int] = {}
    finished: dict[str, bool] = {}
    latencies: list[tuple[int | None, dict[str, Any]]] = []
    deltas: dict[str, list[tuple[float, str]]] = {}
    last_transcript: int | None = None
    transcripts: dict[int, int] = {}
    replaced: set[str] = set()
    last_reply: str | None = None
    for r in sorted((r for r in records if "ts_ns" in r), key=lambda r: int(r["ts_ns"])):
        i = slot(at(r))
        if r.get("type") == "plugin.stt_transcript" and i is not None:
            texts.setdefault(i, []).append(str(r.get("text", "")))
            transcripts[i] = transcripts.get(i, 0) + 1
            last_transcript = i
        elif r.get("topic") == "llm.text" and r.get("response_id"):
            # A reply answers the latest transcript, however long its first token took.
            reply = str(r["response_id"])
            deltas.setdefault(reply, []).append((float(r["ts_ns"]) / 1e6, str(r.get("text", ""))))
            if reply not in started and last_transcript is not None:
                started[reply] = last_transcript
                if r.get("continues"):
                    heard[last_transcript].merged += 1
                    # Never heard: the turn went on. (A cut reply's own chunks may be
                    # missing: the recorder drops agent text of an older epoch.)
                    if last_reply is not None and started[last_reply] == last_transcript:
                        replaced.add(last_reply)
            last_reply = reply
            if r.get("final"):
                finished[reply] = not r.get("interrupted")
        elif r.get("type") == "metrics.turn_latency":
            latencies.append((i, r))
    for i, r in latencies:
        owner = started.get(str(r.get("response_id")), i)
        if owner is not None:
            heard[owner].latency = {"total": float(r["total_ms"]), **r.get("segments_ms", {})}
            heard[owner].all_totals_ms.append(float(r["total_ms"]))
            chunk = first_chunk(deltas.get(str(r.get("response_id")), []))
            if chunk is not None:
                heard[owner].first_chunk_words, heard[owner].first_chunk_ms = chunk
    for reply, i in started.items():
        if reply in replaced:
            continue
        heard[i].replies += 1
        heard[i].superseded += not finished.get(reply, False)
    for i, (utt, h) in enumerate(zip(utterances, heard, strict=True)):
        h.turns = max(0, transcripts.get(i, 0) - h.merged)
        h.transcript = " ".join(t.strip() for t in texts.get(i, []) if t.strip())
        h.word_errors = word_errors(utt.text, h.transcript)
        h.reference_words = len(normalise(utt.text))
        if i in detected_ms:
            h.hold_ms = detected_ms[i] - (starts_ms[i] + utt.speech_s[1] * 1000)
    return heard


def first_chunk(deltas: Sequence[tuple[float, str]]) -> tuple[int, float] | None:
    """(words, ms after the first token) of the first text the TTS could speak.

    A reply that ended before any cut is spoken whole at its last delta.
    """
    text = ""
    for at_ms, delta in deltas:
        text += delta
        if cut := first_clause_end(text):
            return len(normalise(text[:cut])), at_ms - deltas[0][0]
    return (len(normalise(text)), deltas[-1][0] - deltas[0][0]) if text.strip() else None


# -- figures ------------------------------------------------------------------------------
def _p90(values: Sequence[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]


def latency_table(heard: Sequence[Heard]) -> dict[str, dict[str, dict[str, float]]]:
    """{group or "all": {segment: {median, p90, n}}} over utterances whose reply played."""
    groups: dict[str, dict[str, dict[str, float]]] = {}
    for name in ("all", *LENGTH_GROUPS):
        rows = [h.latency for h in heard
                if h.latency is not None and name in ("all", h.group)]
        if not rows:
            continue
        groups[name] = {seg: {"median": statistics.median(r.get(seg, 0.0) for r in rows),
                              "p90": _p90([r.get(seg, 0.0) for r in rows]), "n": len(rows)}
                        for seg in ("total", *SEGMENTS)}
    return groups


def summary(heard: Sequence[Heard]) -> dict[str, Any]:
    """WER, splits, false waits, lost and reply counts, overall and by length group."""
    def counts(items: Sequence[Heard]) -> dict[str, Any]:
        words = sum(h.reference_words for h in items)
        return {"n": len(items),
                "wer": sum(h.word_errors for h in items) / words if words else None,
                "splits": sum(h.split for h in items),
                "false_waits": sum(h.held for h in items),
                "lost": sum(h.turns == 0 for h in items),
                "not_one_reply": sum(h.replies != 1 for h in items),
                "superseded": sum(h.superseded for h in items)}
    return {"all": counts(heard),
            **{g: counts([h for h in heard if h.group == g]) for g in LENGTH_GROUPS
               if any(h.group == g for h in heard)}}


PIPELINE_SEGMENTS = ("turn_detected", "final_transcript", "first_token")
"""The segments the pipeline's settings decide; first audio also follows what the LLM
happens to write first (bench/RESULTS.md, runs 6-7), and audio out is the sink."""


def pipeline_ms(table: dict[str, dict[str, dict[str, float]]]) -> float | None:
    """The medians of PIPELINE_SEGMENTS over all utterances, summed (None: no figures)."""
    segments = table.get("all")
    if segments is None:
        return None
    return sum(segments[s]["median"] for s in PIPELINE_SEGMENTS)


def print_report(label: str, heard: Sequence[Heard]) -> None:
    """The latency table and the turn-taking and WER figures of one variant."""
    table = latency_table(heard)
    counted = summary(heard)
    print(f"\n{label}")
    header = "".join(f" {LABELS[s]:>15}" for s in ("total", *SEGMENTS))
    print(f"  {'length':<10} {'n':>3}{header}   (median / p90 ms)")
    for group, segs in table.items():
        cells = "".join(f" {segs[s]['median']:>8.0f} /{segs[s]['p90']:>6.0f}"
                        for s in ("total", *SEGMENTS))
        print(f"  {group:<10} {segs['total']['n']:>3.0f}{cells}")
    chunks = [h for h in heard if h.latency is not None and h.first_chunk_ms is not None]
    if chunks:
        words = statistics.median(h.first_chunk_words or 0 for h in chunks)
        ms = [h.first_chunk_ms or 0.0 for h in chunks]
        print(f"  first audio waited for the reply's first {words:.0f} words (median): "
              f"written {statistics.median(ms):.0f} / {_p90(ms):.0f} ms after the first "
              "token, the rest is synthesis")
    print(f"  {'length':<10} {'n':>3} {'WER':>6} {'splits':>7} {'waits>1.5s':>10} "
          f"{'lost':>5} {'replies!=1':>10}")
    for group, c in counted.items():
        wer = "-" if c["wer"] is None else f"{100 * c['wer']:.1f}%"
        print(f"  {group:<10} {c['n']:>3} {wer:>6} {c['splits']:>7} {c['false_waits']:>10} "
              f"{c['lost']:>5} {c['not_one_reply']:>10}")
    for h in heard:
        if h.split or h.held or h.turns == 0 or h.replies != 1:
            hold = "-" if h.hold_ms is None else f"{h.hold_ms:.0f}"
            print(f"    {h.id}: {h.turns} turn(s) ({h.detector_turns} detector ends, "
                  f"{h.merged} merged), {h.replies} repl(ies) "
                  f"({h.superseded} superseded), turn end {hold} ms after speech")


def hop_calibration(seconds: float) -> dict[str, float]:
    """One-hop p50 / p99 (µs) of raw pyzmq and the actor runtime, from bench/hop.py."""
    rows = hop.run(seconds, bursts=5, rounds=1)
    found: dict[str, float] = {}
    for row in rows:
        if row["scenario"] in ("pcm-paced", "pcm-pingpong"):
            key = f"{row['scenario']} {'raw' if row['path'] == hop.RAW else 'ours'}"
            found[f"{key} p50"] = row["hop_p50_us"]
            found[f"{key} p99"] = row["hop_p99_us"]
    return found


def main(argv: list[str] | None = None) -> int:
    """Command line: run, print, optionally write JSON."""
    parser = argparse.ArgumentParser(prog="python -m bench.voice_corpus",
                                     description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--gap", type=float, default=9.0,
                        help="seconds of silence after each utterance (default 9)")
    parser.add_argument("--baseline", action="store_true",
                        help="also run bench/voice.py's settings of before")
    parser.add_argument("--rounds", type=int, default=1,
                        help="runs of each variant, alternated, utterances pooled")
    parser.add_argument("--only", default="", help="comma-separated utterance ids")
    parser.add_argument("--log", type=Path, help="directory for each run's console output")
    parser.add_argument("--json", type=Path, help="write every figure to this file")
    parser.add_argument("--from-log", type=Path,
                        help="re-read the records a --log run kept instead of running")
    parser.add_argument("--hop-seconds", type=float, default=2.0,
                        help="length of each bench/hop.py stream (0: skip the calibration)")
    args = parser.parse_args(argv)
    corpus = load()
    if args.only:
        wanted = set(args.only.split(","))
        corpus = [u for u in corpus if u.id in wanted]
        if missing := wanted - {u.id for u in corpus}:
            raise SystemExit(f"no such utterance: {', '.join(sorted(missing))}")
    if args.log:
        args.log.mkdir(parents=True, exist_ok=True)
    started = dt.datetime.now().astimezone()
    print(hop.versions(), flush=True)
    calibration = (hop_calibration(args.hop_seconds)
                   if args.hop_seconds > 0 and not args.from_log else {})
    pooled: dict[str, list[Heard]] = {"baseline": [], "current": []}
    drops: dict[str, list[int]] = {"baseline": [], "current": []}
    for r in range(args.rounds):
        for baseline in ((True, False) if args.baseline else (False,)):
            name = "baseline" if baseline else "current"
            print(f"round {r + 1}: {name}, {len(corpus)} utterances ...", file=sys.stderr,
                  flush=True)
            if args.from_log:
                records = read_jsonl(args.from_log / f"{name}-{r}.jsonl")
                pooled[name] += analyse(corpus, schedule_ms(corpus, args.gap), records)
                continue
            log = args.log / f"{name}-{r}.log" if args.log else None
            done = run(corpus, args.gap, baseline, log)
            pooled[name] += done.heard
            drops[name].append(done.drops)
    print(f"\n{len(corpus)} utterances x {args.rounds} round(s), gap {args.gap:g} s, "
          f"started {started:%Y-%m-%d %H:%M}")
    if calibration:
        print("raw pyzmq one hop (bench/hop.py, same run): " + ", ".join(
            f"{k} {v:.0f} µs" for k, v in calibration.items()))
    if args.baseline:
        print_report("baseline (bench/voice.py's settings of before)", pooled["baseline"])
    print_report("voice_agent.toml (current settings)", pooled["current"])
    for name, counts in drops.items():
        if any(counts):
            print(f"WARNING: {name} run(s) dropped {counts} messages other than stale agent "
                  "output (a stage fell behind): those figures are suspect")
    if args.baseline and pooled["baseline"] and pooled["current"]:
        before_table = latency_table(pooled["baseline"])
        now_table = latency_table(pooled["current"])
        before, now = before_table.get("all"), now_table.get("all")
        if before and now:
            print(f"\nmedian total: {now['total']['median']:.0f} ms vs baseline "
                  f"{before['total']['median']:.0f} ms = "
                  f"{now['total']['median'] / before['total']['median']:.2f}x")
        ours, theirs = pipeline_ms(now_table), pipeline_ms(before_table)
        if ours is not None and theirs:
            print(f"turn + transcript + first token (medians summed): {ours:.0f} ms vs "
                  f"baseline {theirs:.0f} ms = {ours / theirs:.2f}x")
    if args.json:
        args.json.write_text(json.dumps({
            "started": started.isoformat(timespec="seconds"), "gap_s": args.gap,
            "rounds": args.rounds, "hop_us": calibration, "drops": drops,
            **{name: {"latency": latency_table(h), "summary": summary(h),
                      "utterances": [asdict(x) for x in h]}
               for name, h in pooled.items() if h}}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
