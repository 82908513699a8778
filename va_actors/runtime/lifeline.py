"""Dying with the parent: no actor or service outlives its supervisor.

Kept free of heavy imports: ``service_exec`` runs it before every service.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

__all__ = ["PARENT_ENV", "child_env", "die_with_parent"]

_PR_SET_PDEATHSIG = 1
PARENT_ENV = "VA_ACTORS_PARENT_PID"
"""Set by the spawner to its own pid: the child checks it is still its parent."""


def child_env(env: dict[str, str]) -> dict[str, str]:
    """``env`` for a child that must die with this process (adds :data:`PARENT_ENV`)."""
    return {**env, PARENT_ENV: str(os.getpid())}


def die_with_parent() -> bool:
    """Linux: have the kernel SIGKILL this process when its parent dies.

    The setting survives ``exec``. Returns True when it is in effect, False
    where it is not available (not Linux, no prctl); callers that must not
    outlive the parent then also poll ``os.getppid()``.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return bool(libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False
