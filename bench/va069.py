"""Vision Agents 0.6.9 in its own virtual environment (it pins getstream<5, never in ours).

On first use the environment is created under ``.bench/va069`` (git-ignored)
with ``uv venv`` and ``uv pip install vision-agents==0.6.9`` from the package
registry (about 540 MB, 81 distributions). ``bench/va069_flow.py`` then runs
with that environment's python.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VENV = ROOT / ".bench" / "va069"
PYTHON = VENV / "bin" / "python"
FLOW = ROOT / "bench" / "va069_flow.py"
REQUIREMENT = "vision-agents==0.6.9"


class Unavailable(RuntimeError):
    """The Vision Agents environment could not be made or the flow failed."""


def _uv() -> str:
    for candidate in (ROOT / ".tools" / "bin" / "uv", shutil.which("uv")):
        if candidate and Path(candidate).exists():
            return str(candidate)
    raise Unavailable("uv not found (.tools/bin/uv or PATH); needed to create .bench/va069")


def ensure_env() -> Path:
    """The environment's python, creating the environment if needed."""
    check = [str(PYTHON), "-c", "import vision_agents.core.stt"]
    if PYTHON.exists() and subprocess.run(check, capture_output=True, check=False).returncode == 0:
        return PYTHON
    uv = _uv()
    steps = [[uv, "venv", "--python", "3.11", str(VENV)],
             [uv, "pip", "install", "--python", str(PYTHON), REQUIREMENT]]
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    for cmd in steps:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False,
                              timeout=1800)
        if proc.returncode != 0:
            raise Unavailable(f"`{' '.join(cmd[1:3])}` failed: {proc.stderr.strip()[-400:]}")
    return PYTHON


def version() -> str:
    """``vision-agents X, getstream Y`` of the environment (empty if missing)."""
    if not PYTHON.exists():
        return ""
    code = ("import importlib.metadata as m; print('vision-agents', m.version('vision-agents')"
            " + ', getstream', m.version('getstream'))")
    proc = subprocess.run([str(PYTHON), "-c", code], capture_output=True, text=True, check=False)
    return proc.stdout.strip()


def run_flow(out: Path, mode: str, seconds: float) -> int:
    """Run the Vision Agents flow; return its start time (ns). Arrivals go to ``out``."""
    python = ensure_env()
    proc = subprocess.run([str(python), str(FLOW), str(out), mode, str(seconds)], cwd=ROOT,
                          capture_output=True, text=True, timeout=seconds + 120, check=False)
    started = [line.split()[1] for line in proc.stdout.splitlines() if line.startswith("started ")]
    if proc.returncode != 0 or not started:
        raise Unavailable(f"va069_flow.py exited {proc.returncode}: {proc.stderr.strip()[-400:]}")
    return int(started[0])
