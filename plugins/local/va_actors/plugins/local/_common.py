"""Pieces every local actor shares: error reporting, paths, pacing."""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path

from va_actors.core.edge import Participant, SourceFinishedEvent, TransportErrorEvent
from va_actors.core.node import NodeContext

logger = logging.getLogger("va_actors.plugins.local")

PLUGIN_NAME = "local"
FRAME_MS = 20
"""Length of every audio chunk the local sources publish."""

EVENTS = "events"


class LocalTransportError(Exception):
    """A local transport could not read or write media; carried in TransportErrorEvent."""


def report_error(
    ctx: NodeContext, message: str, *, code: str, context: str, recoverable: bool = False
) -> None:
    """Log ``message`` once and publish it as a TransportErrorEvent on ``events``."""
    logger.error("%s: %s", ctx.name, message)
    ctx.publish(
        EVENTS,
        TransportErrorEvent(
            error=LocalTransportError(message),
            error_code=code,
            context=context,
            is_recoverable=recoverable,
            plugin_name=PLUGIN_NAME,
        ),
    )


def publish_finished(ctx: NodeContext, sent_ms: float) -> None:
    """Tell the pipeline this source has sent everything it had."""
    ctx.publish(
        EVENTS, SourceFinishedEvent(source=ctx.name, sent_ms=sent_ms, plugin_name=PLUGIN_NAME)
    )


def expand_path(path: str | os.PathLike[str]) -> Path:
    """``path`` with ``~`` and ``$VARS`` expanded (relative paths stay relative to the cwd)."""
    return Path(os.path.expandvars(os.path.expanduser(os.fspath(path))))


def participant_for(name: str) -> Participant:
    """The participant record local sources attach to their audio."""
    return Participant(user_id=name, id=name)


class Pacer:
    """Holds a sender to a media timeline: item at ``t`` seconds goes out at start + t.

    The schedule is absolute, so per-item jitter never accumulates into drift.
    A sender that fell behind (its loop was blocked) catches up by sending at
    once, as a device driver delivers the blocks it queued. With ``realtime``
    off it only yields to the loop, keeping order without waiting.
    """

    def __init__(self, realtime: bool) -> None:
        self.realtime = realtime
        self._origin: float | None = None

    def lateness(self, media_s: float) -> float:
        """Seconds by which ``media_s`` is overdue (0 when not yet due or not real-time)."""
        if not self.realtime or self._origin is None:
            return 0.0
        return max(0.0, asyncio.get_running_loop().time() - (self._origin + media_s))

    async def wait_until(self, media_s: float) -> None:
        """Return when the media time ``media_s`` is due."""
        if not self.realtime:
            await asyncio.sleep(0)
            return
        now = asyncio.get_running_loop().time()
        if self._origin is None:
            self._origin = now - media_s
        await asyncio.sleep(max(0.0, self._origin + media_s - now))
