"""Start-up, restart and RSS of an actor in its own environment, next to the same
kind of actor in va-launch's own, measured in the same run.

    .venv/bin/python -m bench.environments [--runs N]

Pairs (each a one-actor pipeline, run ``--runs`` times, alternating):

* LLM client: ``openai.llm`` (ours, main environment) vs Vision Agents'
  ``vision_agents:openai.ChatCompletionsLLM`` in ``launch/envs/vision-agents``.
* The same Vision Agents LLM with ``warm_spares = 1``: a restart takes a
  spare the pool warmed on the environment's interpreter.
* Speaker model: ``local.wav_sink`` (main) vs the Stream edge
  ``getstream.edge`` in ``launch/envs/stream`` (the SDK double stands in for
  Stream's servers: nothing leaves the machine).

Start-up: supervisor start -> the instance ``running`` (spawn, interpreter,
imports, plugin constructed, handshake). Restart: SIGKILL -> ``running`` again
(the first restart is immediate by policy, so this is the re-spawn cost).
RSS: after 2 s idle, psutil. The environments are synced before timing
(a first sync is reported separately: it is a one-off download).

    .venv/bin/python -m bench.environments --first-sync

times what a fresh clone's first run pays instead: ``uv sync`` of each shipped
environment (the bootstrapped uv, as va-launch runs it) into a new
environment, once with an empty uv cache (every package downloaded from the
registry) and once from the shared cache, with the size of what was fetched
(unpacked, as uv caches it).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from bench.stats import median
from va_actors.runtime.config import parse_pipeline
from va_actors.testing import supervised, until

ROOT = Path(__file__).resolve().parents[1]
DOUBLE = ROOT / "plugins" / "getstream" / "tests" / "sdk_double"
MB = 1024 * 1024
IDLE_S = 2.0
IDLE_NODE = '''
import asyncio

from va_actors.core.node import Node


class Idle(Node):
    """A source that sends nothing (the measured actor only needs an input)."""

    async def run(self, ctx):
        await asyncio.Event().wait()
'''


@dataclass
class Case:
    label: str
    actor: str
    figures: dict[str, list[float]] = field(default_factory=lambda: {
        "startup_s": [], "restart_s": [], "rss_mb": []})


def cases(out: Path) -> list[Case]:
    llm = ('plugin = "{plugin}"\n{where}inputs = ["src.events"]\n[actor.params]\n'
           'model = "m"\nbase_url = "http://127.0.0.1:9/v1"\n{extra}')
    sink = ('plugin = "{plugin}"\n{where}inputs = ["src.events"]\n[actor.params]\n{extra}')
    stream_env = (f'environment = "{ROOT / "launch" / "envs" / "stream"}"\n'
                  f'env = {{ PYTHONPATH = "{DOUBLE}", STREAM_API_KEY = "k", '
                  f'STREAM_API_SECRET = "s" }}\n')
    return [
        Case("openai.llm (main env)", llm.format(plugin="openai.llm", where="", extra="")),
        Case("Vision Agents ChatCompletionsLLM (envs/vision-agents)", llm.format(
            plugin="vision_agents:openai.ChatCompletionsLLM",
            where=f'environment = "{ROOT / "launch" / "envs" / "vision-agents"}"\n',
            extra='api_key = "none"\n')),
        Case("Vision Agents ChatCompletionsLLM, warm_spares = 1", llm.format(
            plugin="vision_agents:openai.ChatCompletionsLLM",
            where=f'environment = "{ROOT / "launch" / "envs" / "vision-agents"}"\n'
                  "warm_spares = 1\n",
            extra='api_key = "none"\n')),
        Case("local.wav_sink (main env)", sink.format(
            plugin="local.wav_sink", where="", extra=f'path = "{out / "sink.wav"}"\n')),
        Case("getstream.edge (envs/stream, SDK double)", sink.format(
            plugin="getstream.edge", where=stream_env, extra='call_id = "bench"\n')),
    ]


def pipeline_text(case: Case) -> str:
    return f"""
[pipeline]
name = "envbench"
[supervisor]
backoff_initial_s = 0.0

[[actor]]
name = "src"
plugin = "idle_node:Idle"

[[actor]]
name = "actor"
{case.actor}
"""


async def measure(case: Case, work: Path) -> None:
    config = await asyncio.to_thread(parse_pipeline, pipeline_text(case), work / "p.toml")
    began = time.monotonic()
    async with supervised(config, work / "run", start_timeout_s=120) as (sup, log):
        case.figures["startup_s"].append(time.monotonic() - began)
        await asyncio.sleep(IDLE_S)
        pool = sup._launch.pool
        if pool is not None:  # the restart is to take a spare warmed in the environment
            pool.refill_cpu_percent = 101.0
            actor = sup.config.actor("actor")
            await until(lambda: pool.ready(actor) == 1, 120, "a warm spare")
        pid = sup.pid_of("actor")
        assert pid is not None
        case.figures["rss_mb"].append(psutil.Process(pid).memory_info().rss / MB)
        killed = time.time_ns()
        os.kill(pid, signal.SIGKILL)
        back = await log.wait("actor", "running", timeout=120, restarts=1)
        case.figures["restart_s"].append((back["ts_ns"] - killed) / 1e9)


SDK_IMPORTS = (
    ("getstream.video.rtc (real SDK, envs/stream)", "stream", "getstream.video.rtc"),
    ("vision_agents.plugins.openai (envs/vision-agents)", "vision-agents",
     "vision_agents.plugins.openai"),
)
_IMPORT = ("import resource, time; t = time.perf_counter(); import {module}; "
           "print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)")


def sdk_imports(runs: int) -> list[str]:
    """What importing each environment's SDK costs (the double stands in for it above)."""
    import subprocess

    lines = []
    for label, env, module in SDK_IMPORTS:
        python = ROOT / "launch" / "envs" / env / ".venv" / "bin" / "python"
        seconds, peaks = [], []
        for _ in range(runs):
            out = subprocess.run([str(python), "-c", _IMPORT.format(module=module)],
                                 capture_output=True, text=True, check=True, timeout=120)
            took, peak = out.stdout.split()
            seconds.append(float(took))
            peaks.append(int(peak) / 1024)
        lines.append(f"{'import ' + label:<56} {median(seconds):>8.2f} s   peak RSS "
                     f"{median(peaks):.0f} MB")
    return lines


ENVIRONMENTS = ("stream", "vision-agents")


def _tree_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink()
               ) / MB


def first_syncs() -> list[str]:
    """Seconds (and MB fetched) for a first ``uv sync`` of each shipped environment."""
    import subprocess
    import sys

    from va_actors.runtime.environments import find_uv

    uv = str(find_uv())
    lines = [f"{'first sync':<44} {'empty cache s':>14} {'unpacked MB':>11} "
             f"{'shared cache s':>15} {'env MB':>8}"]
    for name in ENVIRONMENTS:
        project = ROOT / "launch" / "envs" / name
        took: dict[str, float] = {}
        with tempfile.TemporaryDirectory(prefix="va-firstsync-") as tmp:
            work = Path(tmp)
            for cache in ("empty", "shared"):
                env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
                env["UV_PROJECT_ENVIRONMENT"] = str(work / f"venv-{cache}")
                if cache == "empty":
                    env["UV_CACHE_DIR"] = str(work / "cache")
                began = time.monotonic()
                subprocess.run([uv, "sync", "--project", str(project), "--no-dev",
                                "--python", sys.executable], env=env, check=True,
                               capture_output=True, timeout=900)
                took[cache] = time.monotonic() - began
            fetched, size = _tree_mb(work / "cache"), _tree_mb(work / "venv-shared")
        lines.append(f"{'launch/envs/' + name:<44} {took['empty']:>14.1f} {fetched:>11.0f} "
                     f"{took['shared']:>15.1f} {size:>8.0f}")
    return lines


def report(all_cases: list[Case], runs: int) -> str:
    lines = [f"environments ({runs} runs each, alternating; median [max]):", ""]
    lines.append(f"{'actor':<56} {'start-up s':>12} {'restart s':>12} {'RSS MB':>12}")
    for case in all_cases:
        cells = []
        for key in ("startup_s", "restart_s", "rss_mb"):
            values = case.figures[key]
            cells.append(f"{median(values):.2f} [{max(values):.2f}]" if values else "-")
        lines.append(f"{case.label:<56} {cells[0]:>12} {cells[1]:>12} {cells[2]:>12}")
    return "\n".join(lines)


async def main_async(runs: int) -> str:
    with tempfile.TemporaryDirectory(prefix="va-envbench-") as tmp:
        work = Path(tmp)
        (work / "idle_node.py").write_text(IDLE_NODE)
        all_cases = cases(work)
        # Sync (and probe) every environment once, untimed.
        for case in all_cases:
            await asyncio.to_thread(parse_pipeline, pipeline_text(case), work / "p.toml")
        for _ in range(runs):
            for case in all_cases:
                await measure(case, work)
        return report(all_cases, runs) + "\n\n" + "\n".join(sdk_imports(runs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--first-sync", action="store_true",
                        help="time a fresh clone's first sync of each environment instead")
    args = parser.parse_args()
    if args.first_sync:
        print("\n".join(first_syncs()))
        return
    print(asyncio.run(main_async(args.runs)))


if __name__ == "__main__":
    main()
