"""Chaos: a 10-turn voice conversation with the real models while stages are killed.

    .venv/bin/python -m bench.chaos [--runs R] [--kills K] [--seed S] [--json PATH]

The voice agent's stack (launch/voice_agent.toml: Silero + Smart-Turn,
Whisper tiny.en, SmolLM2 on the llama.cpp service, Piper, a simulated
speaker) hears a scripted user (tests/actors/conversant.py) who asks ten
short questions of recorded speech (the demo's two and eight of
bench/assets/speech), each once the answer to the previous one has played.
One run goes without kills (the reference); each chaos run SIGKILLs ``K``
times a random one of stt / llm / tts / turn at a random moment (seeded).

Per run it reports: the kills (and how many landed mid-reply), questions
asked, user turns in the stored history and how many got an answer, agent
sentences played twice, replies re-run or re-sent after a crash, user input
replayed to restarted consumers, and for kills that landed mid-reply the time
from the kill to the next agent audio. :func:`check` says what a user would
notice: a question lost or split, one left unanswered, a sentence twice.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import random
import re
import signal
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from va_actors.cli.history import session_history
from va_actors.runtime.config import load_pipeline
from va_actors.runtime.session_vars import RUN_SESSION
from va_actors.testing import free_port, pipeline_copy_text, read_jsonl, supervised, until

REPO = Path(__file__).resolve().parents[1]
LAUNCH = REPO / "launch" / "voice_agent.toml"
SPEECH = REPO / "bench" / "assets" / "speech"
QUESTIONS = [REPO / "launch/assets/voice/weather.wav", REPO / "launch/assets/voice/joke.wav",
             *(SPEECH / f"{name}.wav" for name in (
                 "arctic_axb_a0005", "vctk_p226_001", "sphinx_go_forward", "vctk_p225_002",
                 "arctic_axb_a0004", "arctic_a0010", "arctic_aew_a0003", "arctic_axb_a0006"))]
TARGETS = ("stt", "llm", "tts", "turn")
REFERENCE_TURNS = (
    "What is the weather usually like in the summer?", "Can you tell me a short joke?",
    "will be ever forget it.", "Please call Stella.", "Go forward 10 meters.",
    "Ask her to bring these things with her from the store.",
    "Lord, wait, I am glad to see you again, sir.",
    "I'm playing a single hand in what looks like a losing game.",
    "For the 20th time that evening the two men shook hands.",
    "God bless them. I hope I'll go on seeing them forever.")
"""The user turns of a run without kills (Whisper tiny.en on these files, this
stack): ``python -m bench.chaos --runs 0`` prints them again. The test
compares chaos runs with these; ``main`` runs its own reference each time."""
RECORDED = ("stt.transcript", "llm.text", "tts.audio", "speaker.playback", "turn.turn")
SEED = 7
"""The LLM's sampling seed (as bench/voice.py): the same history gets the same reply."""
RUN_TIMEOUT_S = 240.0


@dataclass
class Kill:
    """One SIGKILL and what followed it."""

    target: str
    at_s: float
    """Seconds from the first question."""
    mid_reply: bool
    """Agent audio was being published or played when it landed."""
    next_audio_ms: float | None = None
    """Kill -> the next agent audio chunk published (any reply)."""


@dataclass
class RunResult:
    """What one run did, as a user would tell it."""

    label: str
    kills: list[Kill] = field(default_factory=list)
    asked: int = 0
    user_turns: list[str] = field(default_factory=list)
    answered: int = 0
    sentences_twice: list[str] = field(default_factory=list)
    reruns: int = 0
    resent: int = 0
    replayed: int = 0
    too_old: int = 0
    replayed_to: dict[str, int] = field(default_factory=dict)
    """Messages replayed into each restarted consumer (instance -> count)."""
    seconds: float = 0.0


def pipeline(work: Path, label: str, *, keep_state: bool = True) -> Path:
    """The voice agent with the conversant user, a recorder, and its own store and port."""
    text = pipeline_copy_text(LAUNCH)
    user = re.search(r'\[\[actor\]\]\nname = "user"\n.*?(?=\n\[\[actor\]\])', text, flags=re.S)
    if user is None or "18765" not in text or "max_tokens = 60\n" not in text:
        raise SystemExit(f"{LAUNCH} changed shape: update bench/chaos.py")
    questions = ", ".join(f'"{q}"' for q in QUESTIONS)
    text = text.replace(user.group(0), f"""[[actor]]
name = "user"
plugin = "tests.actors.conversant:Conversant"
inputs = ["speaker.playback", "llm.text"]
[actor.params]
utterances = [{questions}]
gap_s = 0.8
reply_timeout_s = 25.0
tail_s = 3.0
log = "{work / f'{label}-user.jsonl'}"
""")
    text = text.replace("18765", str(free_port()))
    text = text.replace("max_tokens = 60\n", f"max_tokens = 24\nextra_body = {{ seed = {SEED} }}\n")
    text = text.replace("Answer in one or two short sentences.", "Answer in one short sentence.")
    text = text.replace(str(REPO / "out" / "voice_agent.wav"), str(work / f"{label}.wav"))
    state = "false" if not keep_state else f'"{work / f"{label}-state.db"}"'
    text = text.replace('name = "voice-agent"\n', f'name = "chaos-{label}"\nstate = {state}\n')
    text += f"""
[supervisor]
# Every kill is a one-off crash: restarted at once, never given up.
restart_window_s = 3.0
max_restarts = 100
{"" if keep_state else "replay_s = 0  # the behaviour before issue 15: no replay either"}

[[actor]]
name = "rec"
plugin = "tests.actors.record:RecordingSink"
inputs = {json.dumps(list(RECORDED))}
params = {{ path = "{work / f'{label}-rec.jsonl'}" }}
"""
    path = work / f"{label}.toml"
    path.write_text(text)
    return path


def _agent_busy(rec: Path, within_s: float = 0.6) -> bool:
    """Agent audio published or playing in the last ``within_s``."""
    now = time.time_ns()
    recent = [r for r in read_jsonl(rec)[-200:] if now - r.get("recv_ns", 0) < within_s * 1e9]
    return any(r.get("topic") == "tts.audio" or r.get("playing") for r in recent)


def _next_audio(rec: Path, after_ns: int) -> int | None:
    for r in read_jsonl(rec):
        if r.get("topic") == "tts.audio" and r.get("recv_ns", 0) > after_ns:
            return int(r["recv_ns"])
    return None


async def run_once(work: Path, label: str, kills: int, rng: random.Random,
                   keep_state: bool = True, targets: tuple[str, ...] = TARGETS,
                   aim: bool = False) -> RunResult:
    """One conversation; ``kills`` SIGKILLs at random moments of it.

    ``keep_state`` False: no conversation store and no replay (the behaviour
    before issue 15). ``aim``: each kill waits for the moment that hurts most
    for its target: mid-reply for llm / tts, mid-question for stt / turn.
    """
    config = load_pipeline(pipeline(work, label, keep_state=keep_state))
    rec, user_log = work / f"{label}-rec.jsonl", work / f"{label}-user.jsonl"
    result = RunResult(label)
    started = time.monotonic()
    kill_times: list[int] = []
    async with supervised(config, work / f"run-{label}", start_timeout_s=90) as (sup, log):
        await until(lambda: user_log.exists(), 60, "the first question")
        first = time.monotonic()
        done = asyncio.ensure_future(until(lambda: _user_done(user_log), RUN_TIMEOUT_S,
                                           "the conversation to end"))
        for _ in range(kills):
            await asyncio.sleep(rng.uniform(2.0, 7.0))
            target = rng.choice(targets)
            if aim:
                await _aim(target, rec, user_log, done)
            pid = sup.pid_of(target)
            if done.done() or pid is None:
                break
            restarts = _restarts(sup.status(), target)
            kill_times.append(time.time_ns())
            busy = _agent_busy(rec)
            os.kill(pid, signal.SIGKILL)
            result.kills.append(Kill(target, round(time.monotonic() - first, 2), busy))
            await log.wait(target, "running", restarts=restarts + 1)
        await done
        result.seconds = round(time.monotonic() - started, 1)
        _counters(sup.status(), result)
    for kill, kill_ns in zip(result.kills, kill_times, strict=True):
        audio = _next_audio(rec, kill_ns)
        kill.next_audio_ms = None if audio is None else round((audio - kill_ns) / 1e6, 1)
    _analyse(result, rec, user_log, work / f"{label}-state.db" if keep_state else None)
    return result


async def _aim(target: str, rec: Path, user_log: Path, done: asyncio.Future[Any]) -> None:
    """Wait for agent audio (llm, tts) or for the user speaking (stt, turn)."""
    def moment() -> bool:
        if done.done():
            return True
        if target in ("llm", "tts"):
            return _agent_busy(rec, within_s=0.2)
        lines = read_jsonl(user_log)
        return bool(lines) and "start" in lines[-1] and \
            time.time() - float(lines[-1]["start"]) > 0.6  # well into the question
    await until(moment, RUN_TIMEOUT_S, f"a moment to kill {target}")


def _user_done(user_log: Path) -> bool:
    """The conversant heard the answer to its last question (or gave up waiting)."""
    return any("done" in line for line in read_jsonl(user_log))


def _restarts(status: Any, instance: str) -> int:
    return int(next(i.restarts for i in status.instances if i.instance == instance))


def _counters(status: Any, result: RunResult) -> None:
    for instance in status.instances:
        counters = getattr(instance, "replay", None) or {}
        replayed = int(counters.get("replayed_in", 0) or 0)
        result.replayed += replayed
        result.too_old += int(counters.get("too_old_in", 0) or 0)
        if replayed:
            result.replayed_to[instance.instance] = replayed


def _analyse(result: RunResult, rec: Path, user_log: Path, state: Path | None) -> None:
    records = read_jsonl(rec)
    result.asked = sum(1 for line in read_jsonl(user_log) if "start" in line)
    text = [r for r in records if r.get("topic") == "llm.text"]
    result.reruns = len({r.get("response_id") for r in text if r.get("rerun")})
    result.resent = len({r.get("response_id") for r in text if r.get("resent")})
    result.sentences_twice = sentences_twice(records)
    if state is not None and state.exists():
        history = session_history(state, RUN_SESSION)["messages"]
        result.user_turns = [m["content"] for m in history if m["role"] == "user"]
        result.answered = sum(1 for a, b in itertools.pairwise(history)
                              if a["role"] == "user" and b["role"] == "assistant"
                              and b["content"].strip())
    else:
        finals = [r for r in text if r.get("final") and r.get("user_text")]
        result.user_turns = [str(r["user_text"]) for r in finals]
        result.answered = sum(1 for r in finals if str(r.get("text") or "").strip())


def sentences_twice(records: list[dict[str, Any]]) -> list[str]:
    """Agent sentences synthesised more than once for the same reply.

    Consecutive audio chunks of one (reply, sentence) from one TTS process are
    one synthesis; a new process (its sequence numbers start again) or another
    sentence in between starts a new one.
    """
    seen: dict[tuple[str, str], int] = {}
    last: tuple[str, str] | None = None
    last_seq = -1
    for r in records:
        if r.get("topic") != "tts.audio" or not r.get("sentence"):
            continue
        key = (str(r.get("response_id")), str(r["sentence"]))
        seq = int(r.get("seq", 0))
        if key != last or seq < last_seq:
            seen[key] = seen.get(key, 0) + 1
        last, last_seq = key, seq
    return [sentence for (_, sentence), n in seen.items() if n > 1]


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z']+", text.lower()))


def same_turn(a: str, b: str) -> bool:
    """Two transcripts of the same question (Whisper may differ by a word)."""
    wa, wb = _words(a), _words(b)
    return bool(wa | wb) and len(wa & wb) / len(wa | wb) >= 0.6


def check(reference: RunResult | tuple[str, ...], run: RunResult) -> list[str]:
    """What a user would notice in ``run`` next to the run without kills.

    ``reference``: that run, or its user turns (:data:`REFERENCE_TURNS`).
    """
    turns = list(reference if isinstance(reference, tuple) else reference.user_turns)
    problems = []
    if run.asked != len(QUESTIONS):
        problems.append(f"{run.label}: the user asked {run.asked} of {len(QUESTIONS)} questions")
    if len(run.user_turns) != len(turns) or not all(
            same_turn(a, b) for a, b in zip(turns, run.user_turns, strict=False)):
        problems.append(f"{run.label}: user turns {run.user_turns} differ from the run without "
                        f"kills {turns}")
    if run.answered != len(run.user_turns):
        problems.append(f"{run.label}: {run.answered} of {len(run.user_turns)} turns answered")
    if run.sentences_twice:
        problems.append(f"{run.label}: sentences said twice: {run.sentences_twice}")
    return problems


def summary(results: list[RunResult]) -> dict[str, Any]:
    """Totals over the chaos runs (the reference run left out)."""
    chaos = [r for r in results if r.kills]
    kills = [k for r in chaos for k in r.kills]
    mid = [k.next_audio_ms for k in kills if k.mid_reply and k.next_audio_ms is not None]
    return {
        "runs": len(chaos), "kills": len(kills),
        "by_target": {t: sum(k.target == t for k in kills) for t in TARGETS},
        "mid_reply": sum(k.mid_reply for k in kills),
        "questions": sum(r.asked for r in chaos),
        "answered": sum(r.answered for r in chaos),
        "sentences_twice": sum(len(r.sentences_twice) for r in chaos),
        "reruns": sum(r.reruns for r in chaos), "resent": sum(r.resent for r in chaos),
        "replayed": sum(r.replayed for r in chaos), "too_old": sum(r.too_old for r in chaos),
        "mid_reply_next_audio_ms_median": round(statistics.median(mid), 1) if mid else None,
        "mid_reply_next_audio_ms_max": max(mid) if mid else None,
    }


async def chaos(work: Path, runs: int, kills: int, seed: int) -> list[RunResult]:
    """The reference run, then ``runs`` chaos runs."""
    rng = random.Random(seed)
    results = [await run_once(work, "reference", 0, rng)]
    for i in range(runs):
        results.append(await run_once(work, f"chaos{i}", kills, rng))
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.chaos", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--kills", type=int, default=10, help="kills per chaos run")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="va-chaos-") as tmp:
        results = asyncio.run(chaos(Path(tmp), args.runs, args.kills, args.seed))
    problems = [p for r in results[1:] for p in check(results[0], r)]
    report = {"seed": args.seed, "summary": summary(results),
              "runs": [asdict(r) for r in results], "problems": problems}
    print("reference user turns:", json.dumps(results[0].user_turns))
    print(json.dumps(report["summary"], indent=2))
    for problem in problems:
        print("PROBLEM:", problem)
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=2))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
