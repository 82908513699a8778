"""A video processor's frame handler on a VideoForwarder: the shared one, or its own.

Vision Agents hands ``process_video`` a shared forwarder; in-process (tests,
notebooks) there may be none. :class:`FrameSubscription` attaches the
handler at the processor's rate (capped at the forwarder's), and on detach
removes it and stops a forwarder it created itself, never a shared one.
"""

from __future__ import annotations

import logging

from va_actors.core.utils.video_forwarder import FrameHandler, FrameSource, VideoForwarder

__all__ = ["FrameSubscription"]

logger = logging.getLogger(__name__)


class FrameSubscription:
    """``handler`` called at ``fps`` with frames of whatever track it is attached to."""

    def __init__(self, handler: FrameHandler, *, fps: float, name: str) -> None:
        self.handler = handler
        self.fps = fps
        self.name = name
        self.forwarder: VideoForwarder | None = None
        """The forwarder it is attached to, or None."""
        self._owns = False

    async def attach(self, track: FrameSource,
                     shared_forwarder: VideoForwarder | None = None) -> VideoForwarder:
        """Detach from any previous track, then take frames of ``track``."""
        await self.detach()
        forwarder = shared_forwarder or VideoForwarder(track, fps=self.fps, name=self.name)
        rate = min(self.fps, forwarder.fps)  # the forwarder refuses faster handlers
        if rate < self.fps:
            logger.warning("%s: the forwarder runs at %g fps; handling frames at that rate, "
                           "not %g", self.name, forwarder.fps, self.fps)
        self.forwarder, self._owns = forwarder, shared_forwarder is None
        forwarder.add_frame_handler(self.handler, fps=rate, name=self.name)
        return forwarder

    async def detach(self) -> None:
        """Stop taking frames (a forwarder of its own is stopped; a shared one is not)."""
        forwarder, self.forwarder = self.forwarder, None
        if forwarder is not None:
            forwarder.remove_frame_handler(self.handler)
            if self._owns:
                await forwarder.stop()
