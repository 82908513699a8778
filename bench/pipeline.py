"""A pipeline described once, run either as actors or in one process.

:class:`Stage` lists are turned into a pipeline file for the actor runtime
(:func:`supervised`, a real :class:`~va_actors.runtime.supervisor.Supervisor`
with one OS process per stage) or handed to :mod:`bench.inprocess` (every
stage on one asyncio loop). Both run the same plugin classes with the same
parameters.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from va_actors import testing
from va_actors.runtime.config import load_pipeline
from va_actors.runtime.supervisor import Supervisor
from va_actors.testing import SysLog, read_jsonl, until

__all__ = ["ROOT", "InProcessRun", "Stage", "inprocess_command", "parse_inprocess",
           "pipeline_toml", "read_jsonl", "run_inprocess", "supervised", "until",
           "write_pipeline"]

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Stage:
    """One plugin instance: ``plugin`` is ``module:Class``; inputs are ``<stage>.<stream>``."""

    name: str
    plugin: str
    inputs: list[str] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (for the in-process runner's spec file)."""
        return asdict(self)


def _toml_value(value: Any) -> str:
    # JSON literals of str / number / bool / list are valid TOML values.
    return json.dumps(value)


def pipeline_toml(name: str, stages: list[Stage], supervisor: dict[str, Any] | None = None) -> str:
    """The pipeline file for ``stages`` (``supervisor``: the ``[supervisor]`` table)."""
    lines = ["[pipeline]", f"name = {_toml_value(name)}", ""]
    if supervisor:
        lines.append("[supervisor]")
        lines += [f"{key} = {_toml_value(value)}" for key, value in supervisor.items()]
        lines.append("")
    for stage in stages:
        lines += ["[[actor]]", f"name = {_toml_value(stage.name)}",
                  f"plugin = {_toml_value(stage.plugin)}"]
        if stage.inputs:
            lines.append(f"inputs = {_toml_value(stage.inputs)}")
        if stage.params:
            body = ", ".join(f"{k} = {_toml_value(v)}" for k, v in stage.params.items())
            lines.append(f"params = {{ {body} }}")
        lines.append("")
    return "\n".join(lines)


def write_pipeline(directory: Path, name: str, stages: list[Stage],
                   supervisor: dict[str, Any] | None = None) -> Path:
    """Write ``<directory>/<name>.toml`` and return its path."""
    path = directory / f"{name}.toml"
    path.write_text(pipeline_toml(name, stages, supervisor))
    return path


def supervised(config_path: Path, run_dir: Path, start_timeout_s: float = 30.0,
               ) -> contextlib.AbstractAsyncContextManager[tuple[Supervisor, SysLog]]:
    """:func:`va_actors.testing.supervised` for a pipeline file, as the benches run it."""
    return testing.supervised(load_pipeline(config_path), run_dir,
                              start_timeout_s=start_timeout_s, metrics_interval_s=0.5)


@dataclass
class InProcessRun:
    """What ``python -m bench.inprocess`` printed: start time, epoch bumps, drops."""

    started_ns: int
    bumps: list[tuple[int, int]]  # (epoch, time_ns)
    output: str
    returncode: int


def inprocess_command(stages: list[Stage], duration_s: float, workdir: Path,
                      name: str) -> list[str]:
    """The command that runs ``stages`` in one process for ``duration_s``."""
    spec = workdir / f"{name}.inprocess.json"
    spec.write_text(json.dumps({"stages": [s.to_dict() for s in stages],
                                "duration_s": duration_s}))
    return [sys.executable, "-m", "bench.inprocess", str(spec)]


def parse_inprocess(output: str, returncode: int) -> InProcessRun:
    """Read the runner's ``started`` and ``epoch`` lines."""
    started, bumps = 0, []
    for line in output.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == "started":
            started = int(parts[1])
        elif len(parts) == 3 and parts[0] == "epoch":
            bumps.append((int(parts[1]), int(parts[2])))
    return InProcessRun(started, bumps, output, returncode)


def run_inprocess(stages: list[Stage], duration_s: float, workdir: Path,
                  name: str) -> InProcessRun:
    """Run ``stages`` on one asyncio loop in a child process, to the end."""
    cmd = inprocess_command(stages, duration_s, workdir, name)
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True,
                          timeout=duration_s + 60, check=False)
    result = parse_inprocess(proc.stdout, proc.returncode)
    if proc.returncode != 0 or not result.started_ns:
        raise RuntimeError(f"in-process runner failed ({proc.returncode}): "
                           f"{proc.stderr.strip()[-800:]}")
    return result
