"""Run a service command so that it dies with the supervisor: ``python -m ... CMD ARGS...``.

On Linux this sets ``PR_SET_PDEATHSIG`` (SIGKILL), which survives ``exec``,
and then replaces itself with the command: the service is the supervisor's
direct child, and the kernel kills it if the supervisor dies, even by
SIGKILL. Elsewhere it only execs. Kept free of heavy imports: it runs before
every service.
"""

from __future__ import annotations

import os
import sys
from typing import NoReturn

from va_actors.runtime.lifeline import PARENT_ENV, die_with_parent

EXIT_USAGE = 2
EXIT_ORPHANED = 1
EXIT_CANNOT_EXEC = 127


def main(argv: list[str] | None = None) -> NoReturn:
    """Set the parent-death signal, then exec the command in ``argv``."""
    command = sys.argv[1:] if argv is None else argv
    if not command:
        print("usage: python -m va_actors.runtime.service_exec COMMAND [ARGS...]",
              file=sys.stderr)
        os._exit(EXIT_USAGE)
    parent = int(os.environ.pop(PARENT_ENV, "") or os.getppid())  # see host/process.py
    if not die_with_parent() and sys.platform.startswith("linux"):
        print("service_exec: prctl(PR_SET_PDEATHSIG) failed; the service may outlive "
              "a killed supervisor", file=sys.stderr)
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(EXIT_ORPHANED)
    try:
        os.execvp(command[0], command)
    except OSError as exc:
        print(f"service_exec: cannot run {command[0]!r}: {exc}", file=sys.stderr, flush=True)
        os._exit(EXIT_CANNOT_EXEC)


if __name__ == "__main__":
    main()
