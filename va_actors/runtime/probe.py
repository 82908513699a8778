"""The plugin probe: check an actor's plugin inside the environment it runs in.

``va-launch check`` runs in the supervisor's environment, where a plugin that
lives in another one (``environment = "envs/stream"``) cannot be imported.
So the checker asks that environment's interpreter::

    <env python> -m va_actors.runtime.probe      # a JSON request on stdin

and the probe, running there, does what the checker does in-process: resolve
the reference (entry point, ``module:Class`` or an adapter such as
``vision_agents:openai.ChatCompletionsLLM``), find its category, refuse an
abstract class, match the params against the constructor's signature, and
run the plugin's own ``check_params``. It answers with one JSON line after
:data:`MARKER` (a plugin printing at import cannot garble it).

What it cannot check: anything the plugin only finds out when it runs
(credentials, a server it calls, a model it loads lazily), and values of
``$NAME`` references (it sees the references, as the checker does).

:func:`run_probe` is the caller's side; :func:`main` the probe's.
"""

from __future__ import annotations

import importlib.metadata
import inspect
import json
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["MARKER", "PROBE_TIMEOUT_S", "ProbeIssue", "ProbeReport", "main", "run_probe"]

MARKER = "VA-ACTORS-PROBE "
PROBE_TIMEOUT_S = 120.0
"""Importing a large SDK the first time (compiling .pyc files) takes a while."""
_DISTRIBUTION = "va-actors"


@dataclass(frozen=True)
class ProbeIssue:
    """A problem the probe found; ``at`` is the key path under the actor's table."""

    at: tuple[str | int, ...]
    message: str
    hint: str | None = None


@dataclass(frozen=True)
class ProbeReport:
    """What the probe learnt about a plugin in its environment.

    Attributes:
        category: the plugin's category (``llm``, ``node``, ...), or None when
            the reference could not be resolved (then ``error`` says why).
        outputs: streams a node declares, or None.
        issues: problems with the plugin or its params.
        error: why the reference could not be resolved (with ``hint``).
        va_actors: version of va-actors installed there.
        protocol: its wire protocol version.
        requirements: va-actors' requirements that the environment does not meet.
    """

    category: str | None = None
    outputs: tuple[str, ...] | None = None
    issues: tuple[ProbeIssue, ...] = ()
    error: str | None = None
    hint: str | None = None
    va_actors: str | None = None
    protocol: int | None = None
    requirements: tuple[str, ...] = field(default_factory=tuple)


class ProbeFailed(Exception):
    """The probe could not run or gave no answer; the message says what happened."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


# -- the caller's side --------------------------------------------------------------------


def run_probe(python: Path, plugin: str, params: Mapping[str, Any], base_dir: Path, what: str,
              env: Mapping[str, str]) -> ProbeReport:
    """Ask ``python`` about ``plugin``; ``env`` is the actor's whole environment.

    Raises:
        ProbeFailed: the interpreter did not start, va-actors is not installed
            there, or the probe crashed or timed out.
    """
    # default=str: a TOML date in params was already reported; it must not crash the check.
    request = json.dumps({"plugin": plugin, "params": dict(params), "base_dir": str(base_dir),
                          "what": what}, default=str)
    try:
        done = subprocess.run([str(python), "-m", "va_actors.runtime.probe"], input=request,
                              capture_output=True, text=True, errors="replace",
                              cwd=base_dir, env=dict(env), timeout=PROBE_TIMEOUT_S, check=False)
    except OSError as exc:
        raise ProbeFailed(f"cannot run {str(python)!r}: {exc.strerror or exc}") from None
    except subprocess.TimeoutExpired:
        raise ProbeFailed(f"the plugin probe did not answer within {PROBE_TIMEOUT_S:g} s",
                          "importing the plugin hangs there; try: <env python> -c 'import ...'"
                          ) from None
    for line in reversed(done.stdout.splitlines()):
        if line.startswith(MARKER):
            return _report(json.loads(line[len(MARKER):]))
    stderr = done.stderr.strip().splitlines()
    if any("No module named 'va_actors'" in line or "No module named va_actors" in line
           for line in stderr):
        raise ProbeFailed("va-actors is not installed there, so no actor host can run in it",
                          "add va-actors as a path dependency on this workspace to the "
                          "environment's pyproject.toml (see launch/envs/vision-agents), or "
                          "pip install it into that interpreter")
    last = stderr[-1] if stderr else f"exit code {done.returncode}"
    raise ProbeFailed(f"the plugin probe failed there: {last}")


def _report(data: Mapping[str, Any]) -> ProbeReport:
    outputs = data.get("outputs")
    return ProbeReport(
        category=data.get("category"),
        outputs=tuple(outputs) if outputs is not None else None,
        issues=tuple(ProbeIssue(tuple(i["at"]), i["message"], i.get("hint"))
                     for i in data.get("issues", ())),
        error=data.get("error"), hint=data.get("hint"), va_actors=data.get("va_actors"),
        protocol=data.get("protocol"), requirements=tuple(data.get("requirements", ())),
    )


# -- the probe's side ----------------------------------------------------------------------


def _installed_version() -> str | None:
    try:
        return importlib.metadata.version(_DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        return None


def unmet_requirements() -> list[str]:
    """va-actors' requirements this environment does not satisfy (``numpy>=1.26: 1.24.4``).

    Needs ``packaging`` to compare versions; without it nothing is reported.
    """
    try:
        from packaging.requirements import Requirement
    except ImportError:
        return []
    unmet: list[str] = []
    for text in importlib.metadata.requires(_DISTRIBUTION) or []:
        requirement = Requirement(text)
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
            continue
        try:
            installed = importlib.metadata.version(requirement.name)
        except importlib.metadata.PackageNotFoundError:
            unmet.append(f"{requirement}: not installed")
            continue
        if not requirement.specifier.contains(installed, prereleases=True):
            unmet.append(f"{requirement}: {installed} installed")
    return unmet


def _answer(request: Mapping[str, Any]) -> dict[str, Any]:
    answer: dict[str, Any] = {"va_actors": _installed_version(),
                              "requirements": unmet_requirements()}
    if answer["requirements"]:
        return answer  # importing va-actors' runtime could fail on them: say what is wrong
    # Imported here: an environment without va-actors' dependencies must still
    # get as far as reporting them.
    from va_actors.runtime.config.actors import plugin_issues
    from va_actors.runtime.config.checker import RecordingChecker
    from va_actors.runtime.plugins import PluginError, category, resolve
    from va_actors.wire.limits import PROTOCOL_VERSION

    answer["protocol"] = PROTOCOL_VERSION
    ref = str(request["plugin"])
    base_dir = Path(request["base_dir"])
    try:
        cls = resolve(ref, [base_dir])
        answer["category"] = category(cls).value
    except PluginError as exc:
        answer.update(error=exc.message, hint=exc.hint or None)
        return answer
    declared = getattr(cls, "outputs", None)
    answer["outputs"] = list(declared) if isinstance(declared, Sequence) else None
    chk = RecordingChecker()
    if inspect.isabstract(cls):
        missing = ", ".join(sorted(getattr(cls, "__abstractmethods__", ())))
        chk.issue(("plugin",), f"{request['what']}plugin {ref!r} is abstract: it does not "
                               f"implement {missing}",
                  f"implement them in {cls.__qualname__}, or point at a concrete subclass")
    else:
        plugin_issues(chk, cls, dict(request.get("params") or {}), (), str(request["what"]),
                      base_dir)
    answer["issues"] = [{"at": list(path), "message": message, "hint": hint}
                        for path, message, hint in chk.recorded]
    return answer


def main() -> None:
    """Read one request from stdin, print the answer after :data:`MARKER`."""
    request = json.loads(sys.stdin.read())
    answer = _answer(request)
    sys.stdout.flush()
    print(MARKER + json.dumps(answer), flush=True)
    # A plugin's stray non-daemon thread must not keep the probe alive.
    os._exit(0)


if __name__ == "__main__":
    main()
