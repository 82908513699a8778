"""The browser edge: mouth-to-ear voice-to-voice through WebRTC next to the file transport,
and the CPU the edge costs per peer.

    .venv/bin/python -m bench.browser [--turns 6] [--gap 14] [--cpu-s 10] [--no-write]

Voice-to-voice, the same questions in the same run, two transports:

- **browser**: launch/browser_agent.toml; headless Chromium's fake microphone
  plays the questions (a WAV file), the page taps its own microphone and the
  agent's audio it receives over WebRTC (an AudioWorklet level per 128
  samples, on the page's clock). Per turn: the end of the question in the
  page's microphone tap -> the first agent sound in the page's tap.
- **file**: the same pipeline with the edge replaced by ``local.script`` (the
  same questions at the same times) and ``local.wav_sink``. Per turn: the
  end of the question in the script's timeline (its first chunk's publish
  time + the offset in the file) -> the sink starting to play the reply.

The difference of the two is what the edge costs: Opus both ways, the
network hop, both jitter buffers, the browser's audio path. The LLM is
seeded so both transports get the same replies. Turns where no reply was
heard before the next question are left out (and counted).

CPU: the edge alone with N peers (one Chromium, N pages, each sending its
fake microphone and a 640x480 camera at 15 fps), an agent voice playing all
the time (a tone) and the camera looped back to every peer as video, so each
peer costs Opus decode + encode and VP8 decode + encode. Measured as the edge
process's CPU time over ``--cpu-s`` seconds (100 % = one core), N = 0, 1, 4.

Writes the "Browser edge" section of bench/RESULTS.md (between its markers).
Figures taken on a shared machine are preliminary.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import re
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import psutil

from bench.hop import versions
from bench.report import write_results
from tests.integration.chromium import (
    Speech,
    chromium,
    connect_page,
    levels,
    mic_file,
    read_wav,
    y4m_file,
)
from tests.integration.harness import REPO, free_port, launched

HERE = Path(__file__).resolve().parent
LAUNCH = REPO / "launch" / "browser_agent.toml"
VOICE = REPO / "launch" / "assets" / "voice"
QUESTIONS = (VOICE / "weather.wav", VOICE / "joke.wav")
BEGIN = "<!-- bench-browser:begin (written by `python -m bench.browser`) -->"
END = "<!-- bench-browser:end -->"
SEED = 7
SPEECH_RMS = 0.01
"""A tap block this loud is sound (page levels are RMS of float samples, full scale 1)."""
QUIET_S = 0.4
"""Silence this long ends an utterance (the questions' word gaps are shorter)."""


# -- the questions ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Asked:
    path: Path
    at_s: float
    speech_end_s: float
    """When the question's last sound ends, on the microphone's timeline."""


def speech_end(path: Path) -> float:
    """Seconds from the file's start to its last sample above -40 dBFS."""
    pcm = read_wav(path)
    loud = np.flatnonzero(np.abs(pcm.samples.astype(np.int32)) > 328)
    return float(loud[-1] + 1) / pcm.sample_rate if loud.size else 0.0


def schedule(turns: int, gap_s: float) -> list[Asked]:
    """Questions alternating, the i-th at 1 + i * gap seconds."""
    asked = []
    for i in range(turns):
        path = QUESTIONS[i % len(QUESTIONS)]
        at = 1.0 + i * gap_s
        asked.append(Asked(path, at, at + speech_end(path)))
    return asked


def seeded(text: str) -> str:
    """The launch file with a fixed sampling seed (both transports get the same replies)."""
    if "max_tokens = 60\n" not in text:
        raise SystemExit(f"{LAUNCH} no longer has 'max_tokens = 60': update bench/browser.py")
    return text.replace("max_tokens = 60\n", f"max_tokens = 60\nextra_body = {{ seed = {SEED} }}\n")


# -- the file transport ------------------------------------------------------------------------
def file_pipeline(asked: list[Asked], tmp: Path) -> Path:
    """browser_agent.toml with the browser replaced by a script and a WAV sink."""
    text = seeded(LAUNCH.read_text())
    start = text.index('[[actor]]\nname = "browser"')
    end = text.index("[[actor]]", start + 1)
    utterances = ", ".join(f'{{ path = "{a.path}", at_s = {a.at_s} }}' for a in asked)
    replacement = f'''[[actor]]
name = "user"
plugin = "local.script"
[actor.params]
utterances = [{utterances}]
tail_s = 12.0

[[actor]]
name = "speaker"
plugin = "local.wav_sink"
inputs = ["tts.audio"]
[actor.params]
path = "{tmp / 'agent.wav'}"

[[actor]]
name = "probe"
plugin = "tests.actors.record:RecordingSink"
inputs = ["speaker.playback", "user.audio"]
[actor.params]
path = "{tmp / 'probe.jsonl'}"

'''
    text = text[:start] + replacement + text[end:]
    text = text.replace('name = "browser-agent"', 'name = "browser-bench-file"\n'
                        "stop_when_sources_finish = true")
    text = text.replace('"browser.audio"', '"user.audio"').replace('"browser.playback"',
                                                                    '"speaker.playback"')
    path = tmp / "file.toml"
    path.write_text(text)
    return path


def file_turns(asked: list[Asked], probe: Path) -> list[float | None]:
    """Per question: ms from its end of speech to the sink playing the reply."""
    records = [json.loads(line) for line in probe.read_text().splitlines() if line.endswith("}")]
    first = next(r for r in records if r.get("topic") == "user.audio" and r.get("pts") == 0)
    origin_ns = first["ts_ns"]
    starts = [r["ts_ns"] for r in records if r.get("topic") == "speaker.playback"
              and r.get("playing") and not r.get("interrupted")]
    onsets = _first_starts(starts)
    ends = [origin_ns + a.speech_end_s * 1e9 for a in asked]
    return _match(ends, onsets, scale=1e6)


def _first_starts(playing_ns: list[int]) -> list[int]:
    """Playback-start times from a stream of 'playing' reports (new run after a 300 ms gap)."""
    out: list[int] = []
    last = None
    for ts in sorted(playing_ns):
        if last is None or ts - last > 300e6:
            out.append(ts)
        last = ts
    return out


def _match(ends: list[float], onsets: list[float], scale: float) -> list[float | None]:
    """For each end, the first onset after it and before the next end (in ms)."""
    out: list[float | None] = []
    for i, end in enumerate(ends):
        limit = ends[i + 1] if i + 1 < len(ends) else float("inf")
        found = next((o for o in onsets if end < o < limit), None)
        out.append(None if found is None else (found - end) / scale)
    return out


def run_file(asked: list[Asked]) -> list[float | None]:
    with tempfile.TemporaryDirectory() as tmp, launched(file_pipeline(asked, Path(tmp))) as run:
        deadline = time.monotonic() + 90 + asked[-1].at_s + 30
        while run.proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.5)
        if run.proc.returncode != 0:
            raise SystemExit(f"the file pipeline failed:\n{run.output[-3000:]}")
        return file_turns(asked, Path(tmp) / "probe.jsonl")


# -- the browser ---------------------------------------------------------------------------------
@dataclass
class BrowserRun:
    turns: list[float | None]
    edge: list[dict[str, Any]] = field(default_factory=list)
    """The edge's own per-turn breakdowns (TurnLatencyEvent, plus the page's to_ear)."""
    receiving: dict[str, Any] = field(default_factory=dict)
    """The browser's statistics of the agent's audio (jitter buffer, loss)."""
    inbound: list[float] = field(default_factory=list)
    """Per turn, ms from the end of speech in the page's microphone to the end of speech
    as the pipeline saw it (the turn detector's estimate: the question's audio arriving
    late at the edge shows here)."""


def segments(rows: np.ndarray, threshold: float) -> list[tuple[float, float]]:
    """(start, end) ms of the sound in a tap's (time ms, rms) rows."""
    out: list[tuple[float, float]] = []
    for t, rms in rows:
        if rms <= threshold:
            continue
        if out and t - out[-1][1] <= QUIET_S * 1000:
            out[-1] = (out[-1][0], t)
        else:
            out.append((t, t))
    return [(a, b + 128 / 48) for a, b in out if b - a > 300]  # + one block; words, not clicks


async def run_browser(asked: list[Asked], tmp: Path) -> BrowserRun:
    port = free_port()
    pipeline = tmp / "browser.toml"
    pipeline.write_text(seeded(LAUNCH.read_text()).replace("port = 8780", f"port = {port}"))
    total = asked[-1].at_s + 16.0
    mic = mic_file(tmp / "mic.wav", [Speech(a.path, a.at_s) for a in asked], total)
    with launched(pipeline) as run:
        run.wait_for(r"talk to the agent at", 90)
        async with chromium(mic) as browser:
            page = await _open(browser, f"http://127.0.0.1:{port}/")
            await asyncio.sleep(total + 2)
            mic_rows = await levels(page, "mic")
            agent_rows = await levels(page, "agent")
            edge = await page.evaluate(
                "window.vaEdge.latencies.map(l => ({...l.segments_ms, at_ms: l.at_ms, "
                "total_ms: l.total_ms}))")
            receiving = await page.evaluate("window.vaEdge.audioStats()")
    spoken = segments(mic_rows, SPEECH_RMS)
    if len(spoken) != len(asked):
        raise SystemExit(f"found {len(spoken)} utterances in the page's microphone tap, "
                         f"expected {len(asked)}: {spoken}")
    heard = [a for a, _ in segments(agent_rows, SPEECH_RMS)]
    ends = [b for _, b in spoken]
    inbound = []
    for row in edge:  # the edge's end of speech (reply start - total) vs the page's
        seen = row["at_ms"] - row["total_ms"]
        before = [e for e in ends if e < seen + 300]
        if before:
            inbound.append(seen - before[-1])
    return BrowserRun(_match(ends, heard, scale=1.0), edge, receiving or {}, inbound)


async def _open(browser: Any, url: str) -> Any:
    deadline = time.monotonic() + 60
    while True:
        try:
            return await connect_page(browser, url)
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            for page in browser.pages:
                await page.close()
            await asyncio.sleep(0.5)


# -- CPU per peer ------------------------------------------------------------------------------
CPU_PIPELINE = """
[pipeline]
name = "browser-bench-cpu"

[[actor]]
name = "voice"
plugin = "tests.actors.tone:ToneSource"
[actor.params]
freq = 300.0

[[actor]]
name = "loop"
plugin = "tests.actors.echo:Echo"
inputs = ["browser.video"]

[[actor]]
name = "browser"
plugin = "webrtc.edge"
inputs = ["voice.audio", "loop.out"]
[actor.params]
port = {port}
video_fps = 15
max_peers = 8
"""


def _edge_process() -> psutil.Process:
    for proc in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):
            if "browser.spec.json" in " ".join(proc.cmdline()):
                return proc
    raise SystemExit("no edge process found")


def _cpu_percent(proc: psutil.Process, seconds: float) -> float:
    before = proc.cpu_times()
    time.sleep(seconds)
    after = proc.cpu_times()
    used = (after.user - before.user) + (after.system - before.system)
    return 100.0 * used / seconds


async def run_cpu(tmp: Path, seconds: float, counts: tuple[int, ...],
                  video: bool) -> dict[int, float]:
    """Edge CPU (% of one core) with each number of peers in ``counts``."""
    port = free_port()
    pipeline = tmp / "cpu.toml"
    pipeline.write_text(CPU_PIPELINE.format(port=port))
    mic = mic_file(tmp / "cpu-mic.wav", [Speech(QUESTIONS[0], 0.5)], 4.0)
    camera = y4m_file(REPO / "launch/assets/video/faces.mp4", tmp / "camera.y4m",
                      width=640, height=480, fps=15, seconds=4) if video else None
    results: dict[int, float] = {}
    with launched(pipeline) as run:
        run.wait_for(r"talk to the agent at", 60)
        await asyncio.sleep(2.0)
        edge = _edge_process()
        async with chromium(mic, camera, loop_audio=True) as browser:
            pages: list[Any] = []
            for n in counts:
                while len(pages) < n:
                    page = await browser.new_page()
                    await page.goto(f"http://127.0.0.1:{port}/")
                    if not video:
                        await page.select_option("#camera", "off")
                    await page.click("#connect")
                    await page.wait_for_function("window.vaEdge.connected", timeout=30000)
                    pages.append(page)
                await asyncio.sleep(3.0)  # codecs settle (VP8 ramps its bitrate)
                results[n] = await asyncio.to_thread(_cpu_percent, edge, seconds)
                what = "audio + video" if video else "audio only"
                print(f"edge CPU with {n} peer(s), {what}: {results[n]:.1f} %", flush=True)
    return results


# -- the hop alone: edge -> browser, nothing else running ------------------------------------
class _Context:
    """The edge's context in this process: what it publishes goes nowhere."""

    name = "browser"
    epoch = 0

    def publish(self, stream: str, value: Any, **fields: Any) -> None:
        pass

    async def wait_started(self) -> None:
        return None

    def count_drop(self, reason: str, n: int = 1) -> None:
        pass


async def run_hop(bursts: int) -> tuple[list[float], dict[str, Any]]:
    """ms from a reply's first frame handed to the edge to its first sound in the page.

    The edge runs in this process (no pipeline), the page in Chromium; each
    burst is 0.5 s of a tone after 1 s of silence.
    """
    from va_actors.core.audio import PcmData
    from va_actors.core.node import Inbound
    from va_actors.plugins.webrtc import WebRTCEdge

    ctx = _Context()
    edge = WebRTCEdge(port=0)
    await edge.start(ctx)
    task = asyncio.create_task(edge.run(ctx))
    delays: list[float] = []
    try:
        async with chromium() as browser:
            page = await connect_page(browser, edge.server.url)
            await asyncio.sleep(2.0)
            n = 8000
            tone = (0.5 * 32767 * np.sin(2 * np.pi * 440 * np.arange(n) / 16000)).astype(np.int16)
            for k in range(bursts):
                pushed = time.time() * 1000
                for i in range(0, n, 320):
                    await edge.on_message(Inbound("tts.audio", PcmData(16000, "s16",
                                                                       tone[i:i + 320].copy()),
                                                  fields={"response_id": f"r{k}"}))
                await asyncio.sleep(1.5)
                onset = await page.evaluate(
                    f"(() => {{ const r = vaEdge.levels.agent.find(([t, v]) => t > {pushed} "
                    f"&& v > {SPEECH_RMS}); return r ? r[0] : null; }})()")
                if onset is not None:
                    delays.append(onset - pushed)
            receiving = await page.evaluate("window.vaEdge.audioStats()")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await edge.close()
    return delays, receiving or {}


# -- report --------------------------------------------------------------------------------------
def stats(values: list[float]) -> tuple[float, float]:
    ordered = sorted(values)
    return statistics.median(ordered), ordered[min(len(ordered) - 1,
                                                   round(0.9 * (len(ordered) - 1)))]


def section(command: str, browser: BrowserRun | None, file: list[float | None] | None,
            hop: tuple[list[float], dict[str, Any]] | None, cpu: dict[int, float] | None,
            cpu_audio: dict[int, float] | None, elapsed_s: float) -> str:
    lines = [BEGIN, "## Browser edge (WebRTC): mouth-to-ear and CPU per peer (preliminary)", "",
             "Command (from the repository root):", "", f"    {command}", "",
             f"Machine: {versions()}; aiortc {_version('aiortc')}, Chromium "
             f"{_chromium_version()}. Run {time.strftime('%Y-%m-%d %H:%M')}, "
             f"{elapsed_s:.0f} s.", ""]
    if browser is not None and file is not None:
        got_b = [v for v in browser.turns if v is not None]
        got_f = [v for v in file if v is not None]
        lines += ["| transport | turns | median ms | p90 ms |", "|---|---|---|---|"]
        for label, got, asked in (("file (local.script + local.wav_sink)", got_f, file),
                                  ("browser (Chromium, WebRTC)", got_b, browser.turns)):
            med, p90 = stats(got) if got else (float("nan"), float("nan"))
            lines.append(f"| {label} | {len(got)} of {len(asked)} | {med:.0f} | {p90:.0f} |")
        ear = [row["to_ear"] for row in browser.edge if "to_ear" in row]
        if browser.inbound and ear:
            (mi, pi), (me, pe) = stats(browser.inbound), stats(ear)
            lines += ["", f"**Edge overhead, measured hop by hop in the browser run: median "
                      f"{mi + me:.0f} ms** = in {mi:.0f} (page microphone -> the pipeline's "
                      f"end of speech; p90 {pi:.0f}) + out {me:.0f} (the edge's first frame "
                      f"of a reply -> its first sound in the page; p90 {pe:.0f})."]
        if got_b and got_f:
            (mb, pb), (mf, pf) = stats(got_b), stats(got_f)
            lines += ["", f"End to end, browser minus file: median {mb - mf:+.0f} ms, "
                      f"p90 {pb - pf:+.0f} ms. The two runs follow each other, so this "
                      "difference also holds the LLM's and the TTS's run-to-run spread "
                      "(the first token alone varied by seconds on a loaded machine); the "
                      "hop-by-hop figure above does not."]
        if browser.edge:
            names = ["turn_detected", "final_transcript", "first_token", "first_audio",
                     "audio_out", "to_ear"]
            lines += ["", "The edge's own breakdown of the browser turns (the console's "
                      "segments, from what reached the edge; to_ear from the page), median ms: "
                      + ", ".join(f"{n} {stats([r[n] for r in browser.edge if n in r])[0]:.0f}"
                                  for n in names if any(n in r for r in browser.edge)) + "."]
        lines += ["", _receiving(browser.receiving)]
        lines += ["", "Browser: end of the question in the page's own microphone tap -> first "
                  "agent sound in the page's tap of the received track (AudioWorklet, "
                  "the page's clock). File: end of the question on the script's timeline -> "
                  "the WAV sink starting the reply. Same launch file, same questions at the "
                  "same times, seeded LLM."]
    if hop is not None and hop[0]:
        med, p90 = stats(hop[0])
        lines += ["", f"The hop alone (the edge in the bench's process, no pipeline; "
                  f"{len(hop[0])} tone bursts): first frame handed to the edge -> first sound "
                  f"in the page, median {med:.0f} ms, p90 {p90:.0f} ms. "
                  + _receiving(hop[1])]
    if cpu:
        idle = cpu.get(0, 0.0)
        lines += ["", "| peers | media | edge CPU (% of one core) | per peer |",
                  "|---|---|---|---|", f"| 0 | (agent voice playing) | {idle:.1f} | - |"]
        for label, figures in (("Opus both ways", cpu_audio or {}),
                               ("Opus + VP8 640x480 15 fps both ways", cpu)):
            for n, value in sorted(figures.items()):
                if n:
                    lines.append(f"| {n} | {label} | {value:.1f} | {(value - idle) / n:.1f} |")
        lines += ["", "Each peer: Opus decode (its microphone) and encode (the agent's voice, "
                  "a tone playing all the time); with video also VP8 decode of its camera and "
                  "VP8 encode of the first peer's camera looped back to it. The browser (one "
                  "Chromium, one page per peer) runs on the same 2 cores: with 4 peers it "
                  "cannot send every frame, so the per-peer video figure at 4 is a floor."]
    lines += ["", "Figures measured on a shared 2-core machine with other work running: "
              "preliminary; re-run on a quiet machine.", END]
    return "\n".join(lines)


def _receiving(rx: dict[str, Any]) -> str:
    if rx.get("jitter_buffer_ms") is None:
        return ""
    return (f"The browser's jitter buffer held the agent's voice {rx['jitter_buffer_ms']:.0f} ms "
            f"on average (target {rx['jitter_buffer_target_ms']:.0f} ms; interarrival jitter "
            f"{rx['jitter_ms']:.0f} ms; {rx['packets_lost']} of {rx['packets_received']} "
            f"packets lost; {100 * (rx['concealed_share'] or 0):.1f} % of samples concealed).")


def _version(name: str) -> str:
    from importlib.metadata import version

    return version(name)


def _chromium_version() -> str:
    import subprocess

    out = subprocess.run(["/usr/bin/chromium", "--version"], capture_output=True, text=True,
                         check=False).stdout
    found = re.search(r"[\d.]+", out)
    return found.group(0) if found else "?"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.browser", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--turns", type=int, default=6)
    parser.add_argument("--gap", type=float, default=14.0, help="seconds between questions")
    parser.add_argument("--cpu-s", type=float, default=10.0, help="CPU window per point")
    parser.add_argument("--no-voice", action="store_true", help="skip voice-to-voice")
    parser.add_argument("--no-cpu", action="store_true", help="skip CPU per peer")
    parser.add_argument("--no-hop", action="store_true", help="skip the edge -> page hop alone")
    parser.add_argument("--bursts", type=int, default=10, help="tone bursts for the hop")
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument("--results", type=Path, default=HERE / "RESULTS.md")
    args = parser.parse_args(argv)
    started = time.monotonic()
    browser = file = cpu = cpu_audio = None
    hop: tuple[list[float], dict[str, Any]] | None = None
    with tempfile.TemporaryDirectory() as tmp:
        if not args.no_voice:
            asked = schedule(args.turns, args.gap)
            file = run_file(asked)
            print("file turns (ms):", [None if v is None else round(v) for v in file], flush=True)
            browser = asyncio.run(run_browser(asked, Path(tmp)))
            print("browser turns (ms):", [None if v is None else round(v)
                                          for v in browser.turns], flush=True)
            for row in browser.edge:
                print("  edge breakdown:", {k: round(v) for k, v in row.items()}, flush=True)
        if not args.no_hop:
            hop = asyncio.run(run_hop(args.bursts))
            print("edge -> page (ms):", [round(v) for v in hop[0]], flush=True)
        if not args.no_cpu:
            cpu = asyncio.run(run_cpu(Path(tmp), args.cpu_s, (0, 1, 4), video=True))
            cpu_audio = asyncio.run(run_cpu(Path(tmp), args.cpu_s, (1, 4), video=False))
    command = " ".join([".venv/bin/python -m bench.browser",
                        *(argv if argv is not None else sys.argv[1:])])
    text = section(command, browser, file, hop, cpu, cpu_audio, time.monotonic() - started)
    print(text)
    if not args.no_write:
        write_results(args.results, text, begin=BEGIN, end=END)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
