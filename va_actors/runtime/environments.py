"""Per-actor Python environments: where an actor's host process runs.

An actor may run in its own environment instead of the supervisor's, so
plugins with conflicting or licence-bound dependencies (``getstream[webrtc]``
pins numpy < 2.3; ``vision-agents`` pins getstream < 5) live beside ours
without sharing a lock. A pipeline file says, per actor, one of::

    environment = "envs/stream"   # a uv project directory (pyproject.toml, uv.lock)
    python = "/opt/py/bin/python" # an interpreter that already has va-actors

A project environment is synced with the project's bootstrapped uv
(:func:`find_uv`) into ``<dir>/.venv`` the first time it is used (progress on
stderr) and checked again, quietly, each time the pipeline is loaded; its
interpreter then runs the actor's host. Either way va-actors itself must be
importable there (a project lists it as a path dependency on this
workspace); :mod:`va_actors.runtime.probe` checks that and the plugin.

Problems are :class:`EnvironmentProblem`: a missing directory or interpreter,
a sync that failed (the lines uv printed are kept), a requirement that clashes
with va-actors' own.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TextIO

__all__ = [
    "SYNC_TIMEOUT_S",
    "UV_ENV_VAR",
    "EnvKind",
    "Environment",
    "EnvironmentProblem",
    "find_uv",
    "prepare",
]

UV_ENV_VAR = "VA_ACTORS_UV"
"""Names the uv binary to sync environments with (default: the bootstrapped one)."""
SYNC_TIMEOUT_S = 900.0
"""A first sync downloads every package of the environment: minutes on a slow link."""
_TAIL_LINES = 25
_VENV = ".venv"


class EnvKind(StrEnum):
    """How an environment is given in the pipeline file."""

    PROJECT = "environment"
    """A uv project directory, synced by va-launch."""
    PYTHON = "python"
    """An interpreter, used as it is."""


@dataclass(frozen=True)
class Environment:
    """Where one actor's host runs.

    Attributes:
        kind: a uv project or a given interpreter.
        written: the value as written in the pipeline file (shown in messages).
        path: the project directory, or the interpreter, resolved against the
            pipeline file's directory.
    """

    kind: EnvKind
    written: str
    path: Path

    @property
    def python(self) -> Path:
        """The interpreter that runs the actor's host."""
        if self.kind is EnvKind.PYTHON:
            return self.path
        return self.path / _VENV / "bin" / "python"

    def describe(self) -> str:
        """``environment 'envs/stream'`` or ``python '/opt/py/bin/python'``."""
        return f"{self.kind.value} {self.written!r}"


class EnvironmentProblem(Exception):
    """An environment cannot be used; ``message`` says why, ``hint`` how to fix it."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


def find_uv(environ: Mapping[str, str] | None = None) -> Path:
    """The uv binary that syncs environments.

    In order: ``$VA_ACTORS_UV``; ``.tools/bin/uv`` of the project whose
    ``.venv`` runs this interpreter (what ``scripts/bootstrap.sh`` installs);
    ``uv`` on ``PATH``.

    Raises:
        EnvironmentProblem: none of them exists.
    """
    env = os.environ if environ is None else environ
    named = env.get(UV_ENV_VAR)
    if named:
        path = Path(named).expanduser()
        if path.is_file() and os.access(path, os.X_OK):
            return path
        raise EnvironmentProblem(f"${UV_ENV_VAR} names {named!r}, which is not an executable",
                                 f"unset {UV_ENV_VAR} or point it at a uv binary")
    bootstrapped = Path(sys.prefix).parent / ".tools" / "bin" / "uv"
    if bootstrapped.is_file():
        return bootstrapped
    found = shutil.which("uv")
    if found:
        return Path(found)
    raise EnvironmentProblem("no uv to sync the environment with",
                             f"run scripts/bootstrap.sh (installs .tools/bin/uv), install uv, "
                             f"or set {UV_ENV_VAR}=/path/to/uv")


def prepare(env: Environment, *, progress: TextIO | None = None) -> Path:
    """Make ``env`` ready and return its interpreter.

    A project is synced with uv (``uv sync``, which only installs what is
    missing: quick once done). The first sync shows uv's progress on
    ``progress`` (default stderr); later ones print only what they changed.

    Raises:
        EnvironmentProblem: missing directory, pyproject.toml or interpreter,
            no uv, or the sync failed (requirements that clash, a package not
            on the index, no network).
    """
    if env.kind is EnvKind.PYTHON:
        return _check_interpreter(env.path)
    _check_project(env.path)
    key = _fingerprint(env.path)
    if _SYNCED.get(env.path) != key or not env.python.exists():
        _sync(env, progress if progress is not None else sys.stderr)
        _SYNCED[env.path] = _fingerprint(env.path)
    return env.python


_SYNCED: dict[Path, tuple[float, ...]] = {}
"""Projects synced by this process, with the modification times they had then."""


def _fingerprint(project: Path) -> tuple[float, ...]:
    times = []
    for name in ("pyproject.toml", "uv.lock", f"{_VENV}/pyvenv.cfg"):
        try:
            times.append((project / name).stat().st_mtime)
        except OSError:
            times.append(0.0)
    return tuple(times)


def _check_interpreter(path: Path) -> Path:
    if not path.exists():
        raise EnvironmentProblem(f"interpreter {str(path)!r} does not exist",
                                 "give the path of a python that has va-actors installed, "
                                 "or use environment = \"<uv project dir>\" instead")
    if path.is_dir() or not os.access(path, os.X_OK):
        raise EnvironmentProblem(f"{str(path)!r} is not an executable interpreter",
                                 "point python at the interpreter itself, e.g. "
                                 "/opt/venv/bin/python")
    return path


def _check_project(project: Path) -> None:
    if not project.is_dir():
        raise EnvironmentProblem(
            f"directory {str(project)!r} does not exist",
            "create a uv project there (a pyproject.toml with va-actors as a path dependency "
            "on this workspace; see launch/envs/vision-agents), or fix the path: it is taken "
            "from the pipeline file's directory")
    if not (project / "pyproject.toml").is_file():
        raise EnvironmentProblem(f"{str(project)!r} has no pyproject.toml",
                                 "an environment is a uv project directory: add a "
                                 "pyproject.toml listing the plugin's dependencies and "
                                 "va-actors")


def _sync(env: Environment, progress: TextIO) -> None:
    uv = find_uv()
    project = env.path
    first = not env.python.exists()
    command = [str(uv), "sync", "--project", str(project), "--no-dev"]
    if not (project / ".python-version").exists():
        # The supervisor's own Python, unless the project pins one: uv would
        # otherwise look for (or try to download) another interpreter.
        command += ["--python", os.path.abspath(sys.executable)]
    child_env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    # Always the project's own .venv: an exported UV_PROJECT_ENVIRONMENT (the
    # workspace's .venv) must never be synced to an actor's requirements.
    child_env["UV_PROJECT_ENVIRONMENT"] = str(project / _VENV)
    label = f"va-launch: {env.describe()}"
    if first:
        print(f"{label}: first use, syncing {project} with {uv} (downloads its packages)",
              file=progress, flush=True)
    echo: Callable[[str], None] | None = (
        (lambda line: print(f"  uv: {line}", file=progress, flush=True)) if first else None)
    code, tail = _run(command, child_env, echo)
    if code != 0:
        raise _sync_problem(code, tail)
    if not first:
        changed = [line for line in tail if line.lstrip().startswith(("+ ", "- ", "~ "))]
        for line in changed:
            print(f"{label}: uv: {line}", file=progress, flush=True)
    else:
        print(f"{label}: ready ({env.python})", file=progress, flush=True)


def _run(command: list[str], env: Mapping[str, str],
         echo: Callable[[str], None] | None) -> tuple[int, list[str]]:
    """Run uv; return its exit code and its last lines (each echoed as it comes)."""
    tail: deque[str] = deque(maxlen=_TAIL_LINES)
    try:
        proc = subprocess.Popen(command, env=dict(env), stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                errors="replace")
    except OSError as exc:
        raise EnvironmentProblem(f"cannot run uv ({command[0]}): {exc.strerror or exc}",
                                 f"rerun scripts/bootstrap.sh or set {UV_ENV_VAR}") from None
    assert proc.stdout is not None
    timer = threading.Timer(SYNC_TIMEOUT_S, proc.kill)
    timer.start()
    try:
        for raw in proc.stdout:
            line = raw.rstrip()
            if line:
                tail.append(line)
                if echo is not None:
                    echo(line)
        code = proc.wait()
    finally:
        timer.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return code, list(tail)


def _sync_problem(code: int, tail: list[str]) -> EnvironmentProblem:
    said = " | ".join(line.strip() for line in tail[-8:]) or f"uv exited with code {code}"
    text = " ".join(" ".join(tail).split())  # uv wraps long lines to the terminal's width
    if "not found in the package registry" in text:
        return EnvironmentProblem(
            f"uv sync failed: a requirement is not on the package index: {said}",
            "check the spelling in its pyproject.toml; without network only packages in "
            "uv's cache can be installed")
    if "No solution found" in text:
        return EnvironmentProblem(
            f"uv sync failed: its requirements clash (with each other or with va-actors'): "
            f"{said}",
            "relax the pin named above in the environment's pyproject.toml; va-actors' own "
            "requirements are in the workspace's pyproject.toml")
    if any(word in text for word in ("Failed to fetch", "failed to lookup", "dns error",
                                     "Could not connect", "connection")):
        return EnvironmentProblem(f"uv sync failed: no network for a package not in the "
                                  f"cache: {said}",
                                  "connect once to sync it; later runs use the environment "
                                  "as synced")
    return EnvironmentProblem(f"uv sync failed (exit code {code}): {said}",
                              "run the sync by hand to see the whole output: uv sync --project "
                              "<dir>")
