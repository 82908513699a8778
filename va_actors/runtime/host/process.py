"""The host process: ``python -m va_actors.runtime.host SPEC.json`` runs one actor instance.

``python -m va_actors.runtime.host --warm WARM.json`` is a warm host
(:mod:`.warm`): it prepares its plugin, says ``ready`` on stdout, and becomes
the instance whose spec path it then reads from stdin.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
from collections.abc import Coroutine
from typing import Any, NoReturn

from va_actors.runtime.exits import EXIT_CONFIG, EXIT_FAILURE, EXIT_INVALID, EXIT_OK
from va_actors.runtime.host.actor_host import ActorHost
from va_actors.runtime.host.control import hard_exit
from va_actors.runtime.host.warm import WarmError, WarmSpec, prepare
from va_actors.runtime.lifeline import PARENT_ENV, die_with_parent
from va_actors.runtime.spec import ActorSpec, SpecError

__all__ = ["CONTROL_SWITCH_INTERVAL_S", "main"]

logger = logging.getLogger("va_actors.runtime.host")

CONTROL_SWITCH_INTERVAL_S = 0.001
"""GIL switch interval of a host process (see :func:`main`)."""


def main(argv: list[str] | None = None) -> NoReturn:
    """Run the actor instance described by the spec file named in ``argv``."""
    # The supervisor says who it is: read from getppid(), a host whose supervisor
    # died before this line would take init (pid 1) for its parent and live on.
    parent = int(os.environ.pop(PARENT_ENV, "") or os.getppid())
    if not die_with_parent() and sys.platform.startswith("linux"):
        print("va-actors host: prctl(PR_SET_PDEATHSIG) failed; relying on the parent "
              "pid check", file=sys.stderr)
    if os.getppid() != parent:  # the parent died before prctl took effect
        hard_exit(EXIT_FAILURE)
    args = sys.argv[1:] if argv is None else argv
    if len(args) == 2 and args[0] == "--warm":
        hard_exit(_run(_warm(args[1], parent), "warm host"))
    if len(args) != 1:
        print("usage: python -m va_actors.runtime.host SPEC.json | --warm WARM.json",
              file=sys.stderr)
        hard_exit(EXIT_INVALID)
    spec = _read_spec(args[0])
    _setup(spec.log_level, spec.instance)
    hard_exit(_run(ActorHost(spec, parent_pid=parent).run(), spec.instance))


def _read_spec(path: str) -> ActorSpec:
    try:
        return ActorSpec.read(path)
    except SpecError as exc:
        print(f"va-actors host: {exc}", file=sys.stderr)
        hard_exit(EXIT_CONFIG)


def _setup(level: str, name: str) -> None:
    logging.basicConfig(
        level=level.upper(), stream=sys.stderr,
        format=f"%(asctime)s %(levelname)s [{name}] %(name)s: %(message)s", force=True)
    # The control thread must get the GIL quickly when an epoch arrives while the
    # plugin runs Python code: 1 ms instead of the default 5 ms switch interval.
    sys.setswitchinterval(CONTROL_SWITCH_INTERVAL_S)


def _run(main_coro: Coroutine[Any, Any, int], name: str) -> int:
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        return loop.run_until_complete(main_coro)
    except BaseException:
        logger.exception("%s: actor host failed", name)
        return EXIT_FAILURE


async def _warm(path: str, parent: int) -> int:
    """Prepare the plugin, say ready, wait for the spec of the instance to become."""
    # stdout is the pool's ready channel: keep it private, send prints to stderr.
    channel = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)
    try:
        warm = WarmSpec.read(path)
    except WarmError as exc:
        print(f"va-actors warm host: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    _setup(warm.log_level, f"{warm.actor} (warm)")
    try:
        prepared = await prepare(warm)
    except WarmError as exc:
        logger.error("%s: %s", warm.actor, exc)
        return EXIT_CONFIG
    channel.write(b"ready\n")
    channel.close()
    line = await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    if not line.strip():  # the pool let this one go: release what the plugin holds
        if prepared.driver is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(prepared.driver.close(), 5.0)
        return EXIT_OK
    spec = _read_spec(line.strip())
    _setup(spec.log_level, spec.instance)
    return await ActorHost(spec, parent_pid=parent, prepared=prepared).run()
