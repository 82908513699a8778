"""Exit codes of va-actors processes, in one place.

The actor host and the supervisor (``va-launch run``) share the codes below;
``va-launch check`` exits :data:`EXIT_INVALID` for a file with problems.
"""

from __future__ import annotations

__all__ = ["EXIT_CONFIG", "EXIT_ERROR", "EXIT_FAILURE", "EXIT_INVALID", "EXIT_OK"]

EXIT_OK = 0
"""A clean stop."""
EXIT_FAILURE = 1
"""Actor host: it failed (the supervisor restarts it per policy). Supervisor: an
instance was given up and the pipeline stopped, or every instance ended and at
least one had been given up."""
EXIT_INVALID = 2
"""``va-launch check`` / ``run``: the pipeline file has problems; nothing started."""
EXIT_ERROR = 3
"""The supervisor could not run the pipeline (run directory, sockets, a service)."""
EXIT_CONFIG = 78
"""sysexits' EX_CONFIG: an actor's spec, plugin reference or parameters are wrong,
so restarting cannot help (the restart policy gives up at once)."""
