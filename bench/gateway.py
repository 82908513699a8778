"""Voice-to-voice through the realtime gateway, next to the same models as a plain pipeline.

    .venv/bin/python -m bench.gateway [--turns N] [--gap S] [--rounds R] [--log DIR]

Each round runs, one after the other, the plain pipeline of bench/voice.py
(launch/voice_agent.toml: the scripted user inside the pipeline, the
console's voice-to-voice per turn) and launch/realtime_gateway.toml with the
same models and settings (same questions, same gap, same LLM seed) behind the
gateway, asked by a scripted OpenAI Realtime client over the WebSocket: the
bundled questions as 24 kHz PCM16, appended in 20 ms pieces at the pace of
real time, silence in between.

Through the gateway, voice-to-voice is measured at the client: from the
moment it appended the end of the user's speech to the arrival of the
reply's first ``response.output_audio.delta``. The end of speech is Silero's
(``speech_end_ms`` of the turn detector's TurnEndedEvent, logged by a small
node added to the pipeline), the same point the console's figure starts
from, so both variants start the clock at the same place. The plain
pipeline's figure ends when its simulated speaker starts playing (first TTS
audio plus a 20 ms tick at most). Prints median and p90 of both, the
gateway's overhead (difference of the medians / p90s, and their ratio), and,
within the gateway runs, the same turn's console figure next to the client's
(what the WebSocket hops and the gateway's own resampling add to that turn).
Rounds alternate the variants so that load from other work falls on both.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from bench import voice
from va_actors.core.latency import median_p90
from va_actors.core.node import Inbound, Node, NodeContext
from va_actors.core.turn_detection import TurnEndedEvent
from va_actors.plugins.gateway.scripted_client import ScriptedRealtimeClient, load_wav
from va_actors.testing import free_port, read_jsonl

REPO = voice.REPO
LAUNCH = REPO / "launch" / "realtime_gateway.toml"
START_TIMEOUT_S = 180


class TurnLog(Node):
    """Bench-only node: one JSON line per TurnEndedEvent (``path`` param), with Silero's times."""

    _out: TextIO

    async def start(self, ctx: NodeContext) -> None:
        self._out = open(self.params["path"], "a", encoding="utf-8")  # noqa: SIM115, ASYNC230

    async def on_message(self, msg: Inbound) -> None:
        if isinstance(msg.value, TurnEndedEvent):
            custom = msg.value.custom
            self._out.write(json.dumps({"ts_ns": msg.ts_ns,
                                        "speech_end_ms": custom.get("speech_end_ms"),
                                        "detected_ms": custom.get("detected_ms")}) + "\n")
            self._out.flush()

    async def close(self) -> None:
        self._out.close()


def gateway_pipeline(out_dir: Path, port: int, llm_port: int) -> Path:
    """launch/realtime_gateway.toml on free ports, with the bench's LLM seed and the turn log."""
    text = LAUNCH.read_text()
    for old, new in (("port = 8790", f"port = {port}"), ("18767", str(llm_port)),
                     ("max_tokens = 60\n",
                      f"max_tokens = 60\nextra_body = {{ seed = {voice.SEED} }}\n")):
        if old not in text:
            raise SystemExit(f"{LAUNCH} no longer has {old.strip()!r}: update bench/gateway.py")
        text = text.replace(old, new)
    text += f"""
[[actor]]
name = "turn_log"
plugin = "bench.gateway:TurnLog"
inputs = ["turn.turn"]
params = {{ path = "{out_dir / 'turns.jsonl'}" }}
"""
    path = out_dir / "gateway_bench.toml"
    path.write_text(text)
    return path


@dataclass
class GatewayTurns:
    """Per-turn figures of the gateway runs (ms)."""

    client: list[float] = field(default_factory=list)
    """Voice-to-voice at the client."""
    console: list[float] = field(default_factory=list)
    """The same turns as the gateway pipeline's console measured them."""
    misheard: int = 0
    asked: int = 0
    unmatched: int = 0

    def add(self, other: GatewayTurns) -> None:
        self.client += other.client
        self.console += other.console
        self.misheard += other.misheard
        self.asked += other.asked
        self.unmatched += other.unmatched


async def _ask(url: str, asked: list[voice.Question], gap_s: float, turns_log: Path,
               ) -> tuple[list[float], int]:
    """Ask the questions through the gateway; voice-to-voice per answered turn (ms)."""
    async with ScriptedRealtimeClient(url) as client:
        await client.next("session.created")
        client.start_microphone()
        await asyncio.sleep(1.0)  # as the script's at_s = 1.0
        for i, question in enumerate(asked):
            await client.say(load_wav(REPO / question.path))
            if i + 1 < len(asked):
                await asyncio.sleep(gap_s)
        await asyncio.sleep(gap_s)
        ends = [r["speech_end_ms"] for r in await asyncio.to_thread(read_jsonl, turns_log)]
        firsts: dict[str, float] = {}
        for received in client.received:
            if received.type == "response.output_audio.delta":
                firsts.setdefault(received.event["response_id"], received.at)
        created = [e["response"]["id"] for e in client.of("response.created")]
        latencies = [(firsts[rid] - client.appended_at(end)) * 1000
                     for end, rid in zip(ends, created, strict=False)
                     if rid in firsts and isinstance(end, int | float)]
        return latencies, abs(len(ends) - len(created))


def _wait_healthy(port: int, proc: subprocess.Popen[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the gateway pipeline exited with {proc.returncode} before it "
                             "was healthy")
        with contextlib.suppress(OSError), urllib.request.urlopen(
                f"http://127.0.0.1:{port}/health", timeout=1) as reply:
            if reply.status == 200:
                return
        time.sleep(0.2)
    raise SystemExit(f"the gateway pipeline was not healthy within {timeout:g} s")


def run_gateway(asked: list[voice.Question], gap_s: float, log: Path | None = None,
                ) -> GatewayTurns:
    """Run the gateway pipeline once, ask through it, collect both views of each turn."""
    with tempfile.TemporaryDirectory() as tmp:
        out_dir = Path(tmp)
        port = free_port()
        path = gateway_pipeline(out_dir, port, free_port())
        proc = subprocess.Popen([sys.executable, "-m", "va_actors.cli.main", "run", "--quiet",
                                 str(path)], cwd=REPO, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, start_new_session=True)
        try:
            _wait_healthy(port, proc, START_TIMEOUT_S)
            latencies, unmatched = asyncio.run(_ask(f"ws://127.0.0.1:{port}/v1/realtime",
                                                    asked, gap_s, out_dir / "turns.jsonl"))
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
            try:
                stdout, _ = proc.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                stdout, _ = proc.communicate()
    if log is not None:
        log.write_text(stdout)
    console = [float(m.group(1)) for m in voice.LINE.finditer(stdout)]
    return GatewayTurns(latencies, console, voice.misheard(asked, stdout), len(asked), unmatched)


def _row(label: str, values: list[float]) -> str:
    if not values:
        return f"  {label:<46} (no turns)"
    median, p90 = median_p90(values)
    return f"  {label:<46} {median:>8.0f} {p90:>8.0f} {len(values):>5}"


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--turns", type=int, default=10)
    parser.add_argument("--gap", type=float, default=9.0, help="seconds between questions")
    parser.add_argument("--rounds", type=int, default=1,
                        help="runs of each variant, alternated, turns pooled")
    parser.add_argument("--log", type=Path, default=None,
                        help="directory for each run's console output")
    args = parser.parse_args()
    asked = voice.questions(args.turns, with_pause=False)
    if args.log is not None:
        args.log.mkdir(parents=True, exist_ok=True)
    plain, gateway = voice.Turns([]), GatewayTurns()
    for r in range(args.rounds):
        log = args.log
        plain.add(voice.run(asked, args.gap, baseline=False,
                            log=log / f"plain-{r}.log" if log else None, llm_port=free_port()))
        gateway.add(run_gateway(asked, args.gap, log / f"gateway-{r}.log" if log else None))
    plain_totals = [float(row[0]) for row in plain.rows]
    print(f"voice-to-voice, ms  ({args.turns} questions x {args.rounds} round(s), "
          f"gap {args.gap:g} s)")
    print(f"  {'':<46} {'median':>8} {'p90':>8} {'turns':>5}")
    print(_row("plain pipeline (console, voice_agent.toml)", plain_totals))
    print(_row("through the gateway (at the client)", gateway.client))
    print(_row("  same turns, the gateway pipeline's console", gateway.console))
    if plain_totals and gateway.client:
        (pm, p9), (gm, g9) = median_p90(plain_totals), median_p90(gateway.client)
        print(f"  gateway overhead: median {gm - pm:+.0f} ms ({gm / pm:.2f}x), "
              f"p90 {g9 - p9:+.0f} ms ({g9 / p9:.2f}x)")
    if gateway.console and len(gateway.console) == len(gateway.client):
        hops = [c - k for c, k in zip(gateway.client, gateway.console, strict=True)]
        median, p90 = median_p90(hops)
        print(f"  client minus console, same turn: median {median:+.0f} ms, p90 {p90:+.0f} ms")
    print(f"  questions not heard whole: plain {plain.misheard} of {plain.asked}, "
          f"gateway {gateway.misheard} of {gateway.asked}; turns without a matching "
          f"response: {gateway.unmatched}")


if __name__ == "__main__":
    main()
