"""Checks a plugin offers ``va-launch check``: problems found before anything starts.

A plugin class may define a classmethod::

    @classmethod
    def check_params(cls, params: Mapping[str, Any], base_dir: Path) -> Iterable[ParamProblem]:
        ...

``va-launch check`` (and ``run``, which checks first) calls it with the
actor's ``[actor.params]`` once they fit the constructor, and ``base_dir``,
the pipeline file's directory, which is where relative paths resolve (actors
run there). Each :class:`ParamProblem` is reported with the file and line of
the parameter, and nothing starts. Keep the check cheap and side-effect
free: it runs in ``va-launch``'s process, not the actor's, and params may
still hold ``$NAME`` references (unexpanded).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ParamProblem", "resolve_path"]


@dataclass(frozen=True)
class ParamProblem:
    """One problem with a plugin's parameters.

    Attributes:
        param: what it concerns, as written under ``[actor.params]``:
            ``"path"``, or ``"utterances[1].path"`` for part of a value.
        message: what is wrong.
        hint: how to fix it, or None.
    """

    param: str
    message: str
    hint: str | None = None


def resolve_path(path: str | os.PathLike[str], base_dir: str | os.PathLike[str]) -> Path:
    """``path`` with ``~`` and ``$VARS`` expanded, relative paths taken from ``base_dir``."""
    expanded = Path(os.path.expandvars(os.path.expanduser(os.fspath(path))))
    return expanded if expanded.is_absolute() else Path(base_dir) / expanded
