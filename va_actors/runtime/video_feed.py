"""Input frames for a video processor: a track, one shared forwarder, and completion.

A Vision Agents processor reads frames through ``process_video(track,
participant, shared_forwarder)`` and registers frame handlers on the shared
forwarder. :class:`VideoFeed` builds both from the frames that arrive on the
bus and adds two things the actor runtime needs:

* **Completion.** :meth:`VideoFeed.push` returns a future that is done once
  every registered handler has handled this frame (or a newer one: a handler
  that skipped it is done with it too). The host hands the next frame on only
  then, so a slow processor gets the newest frame rather than a backlog, and
  a replica can tell its dispatcher that the work item is finished.
* **Provenance.** While a handler runs, ``CURRENT_INPUT`` holds the frame's
  :class:`InputRef` (source, seq, pts), so whatever the processor publishes
  (state events) names its input; annotated frames are matched by pts.

Paced repeats of the last frame (the track re-sends it while idle) are not
handed to handlers: processing the same frame again yields nothing new.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from va_actors.core.utils.video_forwarder import FrameHandler, HandlerRemoval, VideoForwarder
from va_actors.core.video.frame import VideoFrame
from va_actors.core.video.track import QueuedVideoTrack, letterbox
from va_actors.wire.messages import InputRef

__all__ = ["CURRENT_INPUT", "FORWARDER_FPS", "VideoFeed"]

CURRENT_INPUT: contextvars.ContextVar[InputRef | None] = contextvars.ContextVar(
    "va_actors_current_input", default=None)
"""The input message being handled (set by the host and the feed's handlers)."""

FORWARDER_FPS = 60
"""Cap of the shared forwarder; a processor's own fps per handler is lower."""

_REFS_KEPT = 64


@dataclass
class _Pending:
    """A pushed frame and the handlers that have not handled it yet."""

    frame: VideoFrame
    done: asyncio.Future[None]
    waiting: set[_Tracked] = field(default_factory=set)


class _Tracked:
    """Wraps a plugin's frame handler: skips repeats, sets provenance, reports done."""

    def __init__(self, feed: VideoFeed, callback: FrameHandler) -> None:
        self.feed = feed
        self.callback = callback
        self.last: VideoFrame | None = None

    async def __call__(self, frame: VideoFrame) -> None:
        if frame is self.last:
            return
        self.last = frame
        token = CURRENT_INPUT.set(self.feed.ref_of(frame))
        try:
            result = self.callback(frame)
            if inspect.isawaitable(result):
                await result
        finally:
            CURRENT_INPUT.reset(token)
            self.feed.handled(self, frame)


class _TrackingForwarder(VideoForwarder):
    """A VideoForwarder whose handlers are wrapped in :class:`_Tracked`."""

    def __init__(self, feed: VideoFeed, track: QueuedVideoTrack, name: str) -> None:
        super().__init__(track, fps=FORWARDER_FPS, name=name, shared=True)
        self._feed = feed
        self._wrappers: dict[Any, _Tracked] = {}

    def add_frame_handler(self, on_frame: FrameHandler, *, fps: float | None = None,
                          name: str | None = None) -> FrameHandler:
        """Register ``on_frame`` (see VideoForwarder) behind a completion wrapper."""
        wrapper = self._wrappers.get(on_frame) or _Tracked(self._feed, on_frame)
        self._wrappers[on_frame] = wrapper
        default = getattr(on_frame, "__qualname__", None) or type(on_frame).__qualname__
        super().add_frame_handler(wrapper, fps=fps, name=name or str(default))
        return on_frame

    def remove_frame_handler(self, on_frame: FrameHandler) -> HandlerRemoval:
        """Unregister ``on_frame``; frames waiting only for it are done."""
        wrapper = self._wrappers.pop(on_frame, None)
        if wrapper is None:
            return HandlerRemoval(False)
        removed = super().remove_frame_handler(wrapper)
        self._feed.forget(wrapper)
        return removed

    @property
    def trackers(self) -> list[_Tracked]:
        return list(self._wrappers.values())


class VideoFeed:
    """Frames in -> ``track`` + ``forwarder`` for the processor (see the module doc)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.track: QueuedVideoTrack | None = None
        self.forwarder: _TrackingForwarder | None = None
        self._pending: OrderedDict[int, _Pending] = OrderedDict()
        self._refs: OrderedDict[int, InputRef] = OrderedDict()  # id(frame) -> ref
        self._refs_by_pts: OrderedDict[int, InputRef] = OrderedDict()
        self._next = 0
        self._last_done: asyncio.Future[None] | None = None

    def push(self, frame: VideoFrame, ref: InputRef | None = None) -> bool:
        """Queue ``frame`` (from input ``ref``); True when this first frame created the track.

        After the first frame the caller runs ``process_video()`` and then
        :meth:`adopt_handlers`; :meth:`wait_handled` waits for the handlers.
        """
        created = self.track is None
        if self.track is None:
            # The track's size is the first frame's (rounded up to even, as it
            # requires); later frames of another size are letterboxed.
            self.track = QueuedVideoTrack(frame.width + frame.width % 2,
                                          frame.height + frame.height % 2,
                                          fps=1, max_queue_size=1)
            self.forwarder = _TrackingForwarder(self, self.track, f"{self.name}-video")
        track, forwarder = self.track, self.forwarder
        assert forwarder is not None
        if (frame.width, frame.height) != (track.width, track.height):
            frame = letterbox(frame, track.width, track.height)  # here: identity must hold
        self._remember(frame, ref)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        trackers = forwarder.trackers
        if created or trackers:
            # On the first frame, handlers are registered by process_video() next.
            self._next += 1
            self._pending[self._next] = _Pending(frame, done, set(trackers))
        else:
            done.set_result(None)  # nobody reads through the forwarder
        self._last_done = done
        track.add_frame(frame)
        return created

    async def wait_handled(self) -> None:
        """Wait until every handler has handled the last pushed frame (or a newer one)."""
        if self._last_done is not None:
            await asyncio.shield(self._last_done)

    def adopt_handlers(self) -> None:
        """After ``process_video()``: frames so far wait for the handlers it registered."""
        assert self.forwarder is not None
        trackers = set(self.forwarder.trackers)
        for key, pending in list(self._pending.items()):
            pending.waiting |= trackers
            self._settle(key, pending)

    def ref_of(self, frame: VideoFrame) -> InputRef | None:
        """The input a frame handed to handlers came from (None if unknown)."""
        return self._refs.get(id(frame))

    def ref_for_pts(self, pts: int | None) -> InputRef | None:
        """The input whose pts an output frame kept (None if unknown)."""
        return None if pts is None else self._refs_by_pts.get(pts)

    def handled(self, tracker: _Tracked, frame: VideoFrame) -> None:
        """``tracker`` finished ``frame``: it is done with it and every older frame."""
        if not any(pending.frame is frame for pending in self._pending.values()):
            return
        for key, pending in list(self._pending.items()):
            pending.waiting.discard(tracker)
            self._settle(key, pending)
            if pending.frame is frame:
                break

    def forget(self, tracker: _Tracked) -> None:
        """A handler was removed: nothing waits for it any more."""
        for key, pending in list(self._pending.items()):
            pending.waiting.discard(tracker)
            self._settle(key, pending)

    async def close(self) -> None:
        """Stop the forwarder and the track; release whatever waits."""
        for pending in self._pending.values():
            if not pending.done.done():
                pending.done.set_result(None)
        self._pending.clear()
        if self.forwarder is not None:
            await self.forwarder.stop()
        if self.track is not None:
            self.track.stop()

    def _settle(self, key: int, pending: _Pending) -> None:
        if not pending.waiting:
            del self._pending[key]
            if not pending.done.done():
                pending.done.set_result(None)

    def _remember(self, frame: VideoFrame, ref: InputRef | None) -> None:
        if ref is None:
            return
        self._refs[id(frame)] = ref
        if ref.pts is not None:
            self._refs_by_pts[ref.pts] = ref
        for table in (self._refs, self._refs_by_pts):
            while len(table) > _REFS_KEPT:
                table.popitem(last=False)
