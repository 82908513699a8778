"""Fan one video track out to several frame handlers, each at its own pace.

Keeps Vision Agents' ``VideoForwarder`` API, but each handler runs in its own
task with its own fps throttle and a one-frame "latest" slot. A slow handler
therefore never delays the others and never builds a backlog: whenever it is
ready it gets the newest frame, and the frames it missed are counted.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable, Generator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Protocol

from va_actors.core.video.frame import VideoFrame, is_av_video_frame
from va_actors.core.video.track import VideoTrackClosedError

if TYPE_CHECKING:
    import av  # imported lazily at run time: see va_actors.core.video.frame

__all__ = ["FrameHandler", "FrameSource", "HandlerRemoval", "HandlerStats", "Started",
           "VideoForwarder"]

logger = logging.getLogger(__name__)

FrameHandler = Callable[[VideoFrame], Awaitable[object] | object]
"""A frame callback: sync, or async (returning an awaitable)."""

_ERROR_LOG_INTERVAL_S: Final = 5.0
# aiortc signals the end of a track with this exception; matched by name so
# core does not depend on aiortc.
_END_OF_TRACK_NAMES: Final = frozenset({"MediaStreamError"})


class FrameSource(Protocol):
    """What the forwarder reads: any track whose ``recv()`` yields frames.

    Both :class:`VideoFrame` and ``av.VideoFrame`` (aiortc tracks) are accepted.
    """

    def recv(self) -> Awaitable[VideoFrame | av.VideoFrame]:
        """Wait for the next frame."""
        ...


@dataclass(frozen=True)
class HandlerStats:
    """A snapshot of one handler's counters.

    Attributes:
        name: the handler's name.
        fps: its frame-rate cap.
        delivered: frames passed to the handler.
        skipped: frames replaced by a newer one while the handler was still
            busy with an earlier frame (the handler is slower than the stream).
        throttled: frames replaced while waiting for the handler's next fps slot
            (expected whenever the handler's fps is below the track's).
        errors: calls that raised.
        last_latency_ms: for the last call, time from the frame's arrival at the
            forwarder to the handler's return.
        last_duration_ms: how long the last call ran.
    """

    name: str
    fps: float
    delivered: int
    skipped: int
    throttled: int
    errors: int
    last_latency_ms: float | None
    last_duration_ms: float | None


class HandlerRemoval:
    """What :meth:`VideoForwarder.remove_frame_handler` returns.

    It is true when a handler was removed, compares equal to that bool, and
    can be awaited (giving the bool), so both ``if fwd.remove_frame_handler(cb)``
    and ``await fwd.remove_frame_handler(cb)`` work.
    """

    __slots__ = ("removed",)

    def __init__(self, removed: bool) -> None:
        self.removed = removed

    def __bool__(self) -> bool:
        return self.removed

    def __eq__(self, other: object) -> bool:
        if isinstance(other, HandlerRemoval):
            return self.removed == other.removed
        if isinstance(other, bool):
            return self.removed is other
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.removed)

    def __repr__(self) -> str:
        return f"HandlerRemoval({self.removed})"

    def __await__(self) -> Generator[None, None, bool]:
        return self.removed
        yield  # pragma: no cover - makes this a generator


class Started:
    """What :meth:`VideoForwarder.start` returns: nothing to wait for, but awaitable.

    ``start()`` works at once; the guide writes ``await forwarder.start()``,
    and that works too.
    """

    __slots__ = ()

    def __await__(self) -> Generator[None, None, None]:
        return None
        yield  # pragma: no cover - makes this a generator

    def __repr__(self) -> str:
        return "Started()"


class _Handler:
    """One registered callback with its own slot, throttle, task and counters."""

    def __init__(self, callback: FrameHandler, name: str, fps: float) -> None:
        self.callback = callback
        self.name = name
        self.fps = fps
        self.slot: tuple[VideoFrame, float] | None = None
        self.wakeup = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self.busy = False
        self.removed = False
        self.next_due = float("-inf")
        self.delivered = 0
        self.skipped = 0
        self.throttled = 0
        self.errors = 0
        self.last_latency_s: float | None = None
        self.last_duration_s: float | None = None
        self.last_error_log = float("-inf")
        self.unlogged_errors = 0

    @property
    def interval(self) -> float:
        return 1.0 / self.fps

    def offer(self, frame: VideoFrame, arrival: float) -> None:
        """Put ``frame`` in the slot, replacing (and counting) an undelivered one."""
        if self.slot is not None:
            if self.busy:
                self.skipped += 1
            else:
                self.throttled += 1
        self.slot = (frame, arrival)
        self.wakeup.set()

    def advance_schedule(self, start: float) -> None:
        # Keep a fixed grid so the average rate is exactly fps even though frames
        # arrive with jitter; never schedule two calls closer than half an interval.
        self.next_due = max(self.next_due + self.interval, start + self.interval / 2)

    def stats(self) -> HandlerStats:
        return HandlerStats(
            name=self.name,
            fps=self.fps,
            delivered=self.delivered,
            skipped=self.skipped,
            throttled=self.throttled,
            errors=self.errors,
            last_latency_ms=_ms(self.last_latency_s),
            last_duration_ms=_ms(self.last_duration_s),
        )


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000.0


def _default_name(callback: FrameHandler) -> str:
    name = getattr(callback, "__qualname__", None) or type(callback).__qualname__
    return str(name)


class VideoForwarder:
    """Reads one input track and hands its frames to any number of handlers.

    Each handler gets its own task, fps throttle and latest-frame slot: a slow
    or failing handler never delays the others, and gets the newest frame
    whenever it is ready. Handlers receive :class:`VideoFrame` (``av`` input
    frames are converted once per frame, not once per handler).

    The forwarder does not own the input track: stopping it never stops the
    track. If the track ends or raises, the forwarder stops and logs why
    (:attr:`end_reason`).

    ``max_buffer`` is accepted for API compatibility with Vision Agents; frames
    are not queued here, each handler holds at most one pending frame.

    ``shared=True`` marks a forwarder that belongs to someone else (the
    runtime hands plugins one as ``shared_forwarder``): a plugin removes its
    handlers from it but does not stop it.
    """

    def __init__(
        self,
        input_track: FrameSource,
        *,
        max_buffer: int = 10,
        fps: float = 30,
        name: str = "video-forwarder",
        shared: bool = False,
    ) -> None:
        if isinstance(fps, bool) or not isinstance(fps, int | float) or not fps > 0:
            raise ValueError(f"fps must be a positive number, got {fps!r}")
        if isinstance(max_buffer, bool) or not isinstance(max_buffer, int) or max_buffer < 1:
            raise ValueError(f"max_buffer must be a positive int, got {max_buffer!r}")
        self.input_track = input_track
        self.max_buffer = max_buffer
        self.fps = fps
        self.name = name
        self.shared = shared
        """True when the forwarder is someone else's: plugins must not stop it."""
        self._handlers: list[_Handler] = []
        self._producer: asyncio.Task[None] | None = None
        self._retiring: set[asyncio.Task[None]] = set()
        self._running = False
        self._stopped = asyncio.Event()
        self._stopped.set()
        self._closing: asyncio.Future[list[BaseException | None]] | None = None
        self.frames_received = 0
        """Valid frames read from the input track."""
        self.frames_invalid = 0
        """Items from the input track that could not be used as frames (dropped)."""
        self.end_reason: str | None = None
        """Why the forwarder last stopped, or None while it has never stopped."""

    # -- lifecycle ----------------------------------------------------------------

    @property
    def is_running(self) -> bool:
        """True between :meth:`start` and the forwarder stopping."""
        return self._running

    @property
    def _shared(self) -> bool:
        # The name Vision Agents plugin code reads (the guide's VLM close()).
        return self.shared

    def start(self) -> Started:
        """Start reading the input track (needs a running event loop); idempotent.

        Starts at once; the result may be awaited (``await forwarder.start()``).
        """
        if self._running:
            return Started()
        loop = asyncio.get_running_loop()
        self._running = True
        self._stopped.clear()
        self.end_reason = None
        self._producer = loop.create_task(self._produce(), name=f"{self.name}:producer")
        for handler in self._handlers:
            self._spawn(handler)
        logger.debug("%s started with %d handler(s)", self.name, len(self._handlers))
        return Started()

    async def stop(self) -> None:
        """Stop reading and cancel the handler tasks; handlers stay registered."""
        self._halt("stopped")
        if self._closing is not None:
            await self._closing

    async def wait_stopped(self) -> None:
        """Wait until the forwarder has stopped (e.g. because the input track ended)."""
        await self._stopped.wait()
        if self._closing is not None:
            await self._closing

    def _halt(self, reason: str) -> None:
        """Mark stopped and cancel every task but the calling one; never blocks."""
        if not self._running:
            return
        self._running = False
        self._stopped.set()
        self.end_reason = reason
        tasks = [self._producer, *self._retiring] + [h.task for h in self._handlers]
        self._producer = None
        for handler in self._handlers:
            handler.task = None
        current = asyncio.current_task()
        others = [t for t in tasks if t is not None and t is not current]
        for task in others:
            task.cancel()
        self._closing = asyncio.gather(*others, return_exceptions=True)
        logger.debug("%s stopped: %s", self.name, reason)

    # -- handlers -----------------------------------------------------------------

    def add_frame_handler(
        self,
        on_frame: FrameHandler,
        *,
        fps: float | None = None,
        name: str | None = None,
    ) -> FrameHandler:
        """Register ``on_frame`` at ``fps`` (default and maximum: the forwarder's).

        Starts the forwarder if it is not running. Registering a callback again
        updates its fps and name. Returns ``on_frame``, which
        :meth:`remove_frame_handler` takes (the guide keeps it as a handler id).
        """
        rate = self.fps if fps is None else fps
        if isinstance(rate, bool) or not isinstance(rate, int | float) or not rate > 0:
            raise ValueError(f"handler fps must be a positive number, got {fps!r}")
        if rate > self.fps:
            raise ValueError(f"handler fps {rate} is above the forwarder's fps {self.fps}")
        existing = self._find(on_frame)
        if existing is not None:
            existing.fps = rate
            existing.name = name or existing.name
            return on_frame
        handler = _Handler(on_frame, self._unique_name(name or _default_name(on_frame)), rate)
        self._handlers.append(handler)
        if self._running:
            self._spawn(handler)
        else:
            self.start()
        return on_frame

    def remove_frame_handler(self, on_frame: FrameHandler) -> HandlerRemoval:
        """Unregister ``on_frame``; the result is false if it was not registered.

        Removing the last handler stops the forwarder. The removal happens at
        once; the result can also be awaited (``await
        forwarder.remove_frame_handler(cb)``, as Vision Agents code does), which
        gives the same truth value.
        """
        handler = self._find(on_frame)
        if handler is None:
            return HandlerRemoval(False)
        self._handlers.remove(handler)
        handler.removed = True
        task = handler.task
        handler.task = None
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            # Hold a reference until the cancelled task has really finished.
            self._retiring.add(task)
            task.add_done_callback(self._retiring.discard)
        if not self._handlers:
            self._halt("last frame handler removed")
        return HandlerRemoval(True)

    def stats(self) -> dict[str, HandlerStats]:
        """Per-handler counters, keyed by handler name."""
        return {h.name: h.stats() for h in self._handlers}

    @property
    def handler_count(self) -> int:
        """Number of registered handlers."""
        return len(self._handlers)

    def _find(self, on_frame: FrameHandler) -> _Handler | None:
        for handler in self._handlers:
            if handler.callback == on_frame:
                return handler
        return None

    def _unique_name(self, base: str) -> str:
        taken = {h.name for h in self._handlers}
        name, n = base, 1
        while name in taken:
            n += 1
            name = f"{base}#{n}"
        return name

    def _spawn(self, handler: _Handler) -> None:
        handler.slot = None
        handler.task = asyncio.get_running_loop().create_task(
            self._run_handler(handler), name=f"{self.name}:{handler.name}"
        )

    # -- producer -----------------------------------------------------------------

    async def _produce(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                raw = await self.input_track.recv()
                frame = self._to_frame(raw)
                if frame is not None:
                    self.frames_received += 1
                    arrival = loop.time()
                    for handler in self._handlers:
                        handler.offer(frame, arrival)
                # A track whose recv() never suspends would otherwise starve the handlers.
                await asyncio.sleep(0)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._halt(self._describe_end(exc))

    def _describe_end(self, exc: Exception) -> str:
        if isinstance(exc, VideoTrackClosedError) or type(exc).__name__ in _END_OF_TRACK_NAMES:
            reason = f"input track ended ({type(exc).__name__})"
            logger.info("%s stopping: %s", self.name, reason)
        else:
            reason = f"input track failed: {type(exc).__name__}: {exc}"
            logger.error("%s stopping: %s", self.name, reason, exc_info=exc)
        return reason

    def _to_frame(self, raw: object) -> VideoFrame | None:
        try:
            if isinstance(raw, VideoFrame):
                return raw
            if is_av_video_frame(raw):
                return VideoFrame.from_av(raw)
            raise TypeError(f"expected VideoFrame or av.VideoFrame, got {type(raw).__name__}")
        except (TypeError, ValueError) as exc:
            self.frames_invalid += 1
            if self.frames_invalid == 1 or self.frames_invalid % 100 == 0:
                logger.warning(
                    "%s dropped an unusable input frame (%d so far): %s",
                    self.name,
                    self.frames_invalid,
                    exc,
                )
            return None

    # -- consumers ----------------------------------------------------------------

    async def _run_handler(self, handler: _Handler) -> None:
        loop = asyncio.get_running_loop()
        me = asyncio.current_task()
        # Stop, removal and restart replace handler.task: an older task then exits.
        while handler.task is me and not handler.removed:
            while handler.slot is None:
                handler.wakeup.clear()
                await handler.wakeup.wait()
            delay = handler.next_due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            if handler.slot is None:
                continue
            frame, arrival = handler.slot
            handler.slot = None
            await self._call(handler, frame, arrival, loop)

    async def _call(
        self,
        handler: _Handler,
        frame: VideoFrame,
        arrival: float,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        start = loop.time()
        handler.advance_schedule(start)
        handler.delivered += 1
        handler.busy = True
        try:
            result = handler.callback(frame)
            if inspect.isawaitable(result):
                await result
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._record_error(handler, exc, loop.time())
        finally:
            handler.busy = False
        end = loop.time()
        handler.last_latency_s = end - arrival
        handler.last_duration_s = end - start

    def _record_error(self, handler: _Handler, exc: Exception, now: float) -> None:
        handler.errors += 1
        handler.unlogged_errors += 1
        # One traceback per interval per handler: a handler failing on every
        # frame must not flood the log at the frame rate.
        if now - handler.last_error_log < _ERROR_LOG_INTERVAL_S:
            return
        logger.error(
            "%s: frame handler %r raised (%d error(s) since last report, %d total)",
            self.name,
            handler.name,
            handler.unlogged_errors,
            handler.errors,
            exc_info=exc,
        )
        handler.last_error_log = now
        handler.unlogged_errors = 0
