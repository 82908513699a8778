"""The host process: ``python -m va_actors.runtime.host SPEC.json`` runs one actor instance."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from typing import NoReturn

from va_actors.runtime.exits import EXIT_CONFIG, EXIT_FAILURE, EXIT_INVALID
from va_actors.runtime.host.actor_host import ActorHost
from va_actors.runtime.host.control import hard_exit
from va_actors.runtime.lifeline import die_with_parent
from va_actors.runtime.spec import ActorSpec, SpecError

__all__ = ["CONTROL_SWITCH_INTERVAL_S", "main"]

logger = logging.getLogger("va_actors.runtime.host")

CONTROL_SWITCH_INTERVAL_S = 0.001
"""GIL switch interval of a host process (see :func:`main`)."""


def main(argv: list[str] | None = None) -> NoReturn:
    """Run the actor instance described by the spec file named in ``argv``."""
    parent = os.getppid()
    if not die_with_parent() and sys.platform.startswith("linux"):
        print("va-actors host: prctl(PR_SET_PDEATHSIG) failed; relying on the parent "
              "pid check", file=sys.stderr)
    if os.getppid() != parent:  # the parent died before prctl took effect
        hard_exit(EXIT_FAILURE)
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m va_actors.runtime.host SPEC.json", file=sys.stderr)
        hard_exit(EXIT_INVALID)
    try:
        spec = ActorSpec.read(args[0])
    except SpecError as exc:
        print(f"va-actors host: {exc}", file=sys.stderr)
        hard_exit(EXIT_CONFIG)
    logging.basicConfig(
        level=spec.log_level.upper(), stream=sys.stderr,
        format=f"%(asctime)s %(levelname)s [{spec.instance}] %(name)s: %(message)s")
    # The control thread must get the GIL quickly when an epoch arrives while the
    # plugin runs Python code: 1 ms instead of the default 5 ms switch interval.
    sys.setswitchinterval(CONTROL_SWITCH_INTERVAL_S)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        code = loop.run_until_complete(ActorHost(spec, parent_pid=parent).run())
    except BaseException:
        logger.exception("%s: actor host failed", spec.instance)
        code = EXIT_FAILURE
    # os._exit: a plugin's stray non-daemon thread must not keep the process alive.
    hard_exit(code)
