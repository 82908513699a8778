"""Video tracks: asynchronous sources of :class:`VideoFrame`.

A track is anything with ``async recv() -> VideoFrame`` and ``stop()``, like an
aiortc ``MediaStreamTrack``. :class:`QueuedVideoTrack` is a writable track a
processor publishes into; :class:`SyntheticVideoTrack` generates a moving test
pattern (tests, benchmarks, a synthetic camera).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from fractions import Fraction
from typing import TYPE_CHECKING, Final, Literal, Protocol, runtime_checkable

import numpy as np

from va_actors.core.video.frame import PixelFormat, PlaneArray, VideoFrame

if TYPE_CHECKING:
    import av  # imported lazily at run time: see va_actors.core.video.frame

__all__ = [
    "VIDEO_TIME_BASE",
    "QueuedVideoTrack",
    "SyntheticPattern",
    "SyntheticVideoTrack",
    "VideoTrack",
    "VideoTrackClosedError",
    "letterbox",
]

logger = logging.getLogger(__name__)

#: RTP's video clock; SyntheticVideoTrack stamps pts in this time base.
VIDEO_TIME_BASE: Final = Fraction(1, 90000)

SyntheticPattern = Literal["bars", "gradient", "checker"]


class VideoTrackClosedError(Exception):
    """Raised by ``recv()`` once a track has been stopped or has ended."""


@runtime_checkable
class VideoTrack(Protocol):
    """The minimal track interface: an async frame source that can be stopped."""

    async def recv(self) -> VideoFrame:
        """Wait for and return the next frame; raise VideoTrackClosedError at the end."""
        ...

    def stop(self) -> None:
        """End the track; pending and later ``recv()`` calls raise VideoTrackClosedError."""
        ...


def _check_positive(name: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ValueError(f"{name} must be a positive number, got {value!r}")


def _check_even_size(width: int, height: int) -> None:
    for name, value in (("width", width), ("height", height)):
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0 or value % 2:
            raise ValueError(f"{name} must be a positive even int, got {value!r}")


class QueuedVideoTrack:
    """A writable track: ``add_frame()`` in, ``recv()`` out.

    Frames are queued up to ``max_queue_size``; beyond that the oldest is
    dropped (counted in :attr:`dropped`). ``recv()`` returns queued frames in
    order. When the queue is idle it re-sends the last frame once every
    ``1/fps`` seconds, so a consumer (a transport, an encoder) keeps receiving
    video; a repeat is the same object with the same pts, so it can be told
    apart. Before the first frame, ``recv()`` waits. Frames of another size are
    scaled to ``width`` x ``height`` keeping their aspect ratio (black bars).
    """

    kind: Final = "video"

    def __init__(
        self,
        width: int = 1280,
        height: int = 720,
        fps: float = 1,
        max_queue_size: int = 10,
    ) -> None:
        _check_even_size(width, height)
        _check_positive("fps", fps)
        if isinstance(max_queue_size, bool) or not isinstance(max_queue_size, int):
            raise ValueError(f"max_queue_size must be an int, got {max_queue_size!r}")
        if max_queue_size < 1:
            raise ValueError(f"max_queue_size must be at least 1, got {max_queue_size}")
        self.width = width
        self.height = height
        self.fps = fps
        self._queue: deque[VideoFrame] = deque(maxlen=max_queue_size)
        self._wakeup = asyncio.Event()
        self._last: VideoFrame | None = None
        self._last_sent_at = 0.0
        self._stopped = False
        self.dropped = 0
        """Frames lost: pushed out of a full queue or added after ``stop()``."""
        self.repeated = 0
        """Times ``recv()`` re-sent the last frame because nothing new came."""

    @property
    def stopped(self) -> bool:
        """True once :meth:`stop` has been called."""
        return self._stopped

    def add_frame(self, frame: VideoFrame | av.VideoFrame) -> None:
        """Queue a frame for ``recv()``; never blocks (drops the oldest when full)."""
        if self._stopped:
            self.dropped += 1
            logger.debug("QueuedVideoTrack: frame added after stop() dropped")
            return
        vf = frame if isinstance(frame, VideoFrame) else VideoFrame.from_av(frame)
        if (vf.width, vf.height) != (self.width, self.height):
            vf = letterbox(vf, self.width, self.height)
        if len(self._queue) == self._queue.maxlen:
            self.dropped += 1
        self._queue.append(vf)
        self._wakeup.set()

    async def recv(self) -> VideoFrame:
        """The next queued frame, or a paced repeat of the last one when idle."""
        loop = asyncio.get_running_loop()
        while True:
            if self._stopped:
                raise VideoTrackClosedError("QueuedVideoTrack was stopped")
            if self._queue:
                return self._deliver(self._queue.popleft(), loop.time())
            self._wakeup.clear()
            if self._last is None:
                await self._wakeup.wait()
                continue
            remaining = self._last_sent_at + 1 / self.fps - loop.time()
            if remaining > 0:
                try:
                    await asyncio.wait_for(self._wakeup.wait(), remaining)
                    continue
                except TimeoutError:
                    pass
            if self._stopped:
                continue
            self.repeated += 1
            return self._deliver(self._last, loop.time())

    def _deliver(self, frame: VideoFrame, now: float) -> VideoFrame:
        self._last = frame
        self._last_sent_at = now
        return frame

    def stop(self) -> None:
        """End the track: waiting and later ``recv()`` calls raise VideoTrackClosedError."""
        self._stopped = True
        self._queue.clear()
        self._wakeup.set()


def letterbox(frame: VideoFrame, width: int, height: int) -> VideoFrame:
    """Scale ``frame`` to fit ``width`` x ``height`` keeping its aspect, padding in black."""
    scale = min(width / frame.width, height / frame.height)
    even = frame.format is PixelFormat.YUV420P
    fit_w = _round_size(frame.width * scale, width, even)
    fit_h = _round_size(frame.height * scale, height, even)
    scaled = VideoFrame.from_av(frame.to_av().reformat(width=fit_w, height=fit_h), frame.format)
    x0, y0 = (width - fit_w) // 2, (height - fit_h) // 2
    if even:
        x0, y0 = x0 & ~1, y0 & ~1
    planes = []
    for i, src in enumerate(scaled.plane_arrays):
        sub = 2 if (even and i > 0) else 1
        canvas = np.full(
            (height // sub, width // sub, *src.shape[2:]),
            _black_level(frame.format, i),
            dtype=np.uint8,
        )
        canvas[y0 // sub : y0 // sub + src.shape[0], x0 // sub : x0 // sub + src.shape[1]] = src
        planes.append(canvas)
    return VideoFrame(planes, width, height, frame.format, frame.pts, frame.time_base)


def _round_size(value: float, limit: int, even: bool) -> int:
    size = min(limit, max(1, round(value)))
    if even:
        size = max(2, size - size % 2)
    return size


def _black_level(fmt: PixelFormat, plane: int) -> int:
    if fmt is PixelFormat.RGB24:
        return 0
    return 16 if plane == 0 else 128  # limited-range luma black, neutral chroma


class SyntheticVideoTrack:
    """A moving test pattern with increasing pts (time base 1/90000).

    With ``realtime=True`` (the default) ``recv()`` is paced like a camera at
    ``fps``; a consumer that falls behind by more than one frame skips ahead
    (counted in :attr:`skipped`) instead of receiving a backlog. With
    ``realtime=False`` frames come as fast as they are requested. After
    ``max_frames`` frames, or after ``stop()``, ``recv()`` raises
    VideoTrackClosedError.
    """

    kind: Final = "video"

    def __init__(
        self,
        width: int = 640,
        height: int = 480,
        fps: float = 30,
        pattern: SyntheticPattern = "bars",
        *,
        format: PixelFormat | str = PixelFormat.RGB24,
        realtime: bool = True,
        max_frames: int | None = None,
    ) -> None:
        self.format = PixelFormat.parse(format)
        if self.format is PixelFormat.YUV420P:
            _check_even_size(width, height)
        else:
            _check_positive("width", width)
            _check_positive("height", height)
        _check_positive("fps", fps)
        if max_frames is not None and max_frames < 0:
            raise ValueError(f"max_frames must be >= 0 or None, got {max_frames}")
        self.width = width
        self.height = height
        self.fps = fps
        self.realtime = realtime
        self.max_frames = max_frames
        self._draw = _pattern_drawer(pattern, width, height)
        self._index = 0
        self._start: float | None = None
        self._closed = asyncio.Event()
        self.frames_sent = 0
        """Frames returned by ``recv()``."""
        self.skipped = 0
        """Frame slots skipped because the consumer fell behind real time."""

    @property
    def stopped(self) -> bool:
        """True once the track was stopped or reached ``max_frames``."""
        return self._closed.is_set()

    async def recv(self) -> VideoFrame:
        """Wait for the next frame time (when real-time) and return the frame."""
        if self.max_frames is not None and self.frames_sent >= self.max_frames:
            self._closed.set()
        if self._closed.is_set():
            raise VideoTrackClosedError("SyntheticVideoTrack has ended")
        if self.realtime:
            await self._wait_for_slot()
        index = self._index
        self._index += 1
        self.frames_sent += 1
        pts = round(index / self.fps / VIDEO_TIME_BASE)
        frame = VideoFrame.from_ndarray(self._draw(index), PixelFormat.RGB24, pts, VIDEO_TIME_BASE)
        return frame.reformat(self.format)

    async def _wait_for_slot(self) -> None:
        loop = asyncio.get_running_loop()
        if self._start is None:
            self._start = loop.time()
        due = self._start + self._index / self.fps
        now = loop.time()
        if now > due + 1 / self.fps:
            behind = int((now - self._start) * self.fps)
            self.skipped += behind - self._index
            self._index = behind
            return
        if due > now:
            try:
                await asyncio.wait_for(self._closed.wait(), due - now)
            except TimeoutError:
                return
            raise VideoTrackClosedError("SyntheticVideoTrack was stopped")

    def stop(self) -> None:
        """End the track; a waiting ``recv()`` raises VideoTrackClosedError."""
        self._closed.set()


_Drawer = Callable[[int], PlaneArray]

# 75% colour bars: white, yellow, cyan, green, magenta, red, blue.
_BAR_COLOURS: Final = np.array(
    [
        [191, 191, 191],
        [191, 191, 0],
        [0, 191, 191],
        [0, 191, 0],
        [191, 0, 191],
        [191, 0, 0],
        [0, 0, 191],
    ],
    dtype=np.uint8,
)


def _pattern_drawer(pattern: str, width: int, height: int) -> _Drawer:
    makers: dict[str, Callable[[int, int], _Drawer]] = {
        "bars": _bars,
        "gradient": _gradient,
        "checker": _checker,
    }
    if pattern not in makers:
        raise ValueError(f"unknown pattern {pattern!r}; supported: {', '.join(makers)}")
    return makers[pattern](width, height)


def _bars(width: int, height: int) -> _Drawer:
    columns = np.arange(width) * len(_BAR_COLOURS) // width
    background = np.broadcast_to(_BAR_COLOURS[columns], (height, width, 3))
    stripe = max(2, width // 32)
    step = max(1, width // 60)

    def draw(index: int) -> PlaneArray:
        img = background.copy()
        x = (index * step) % width
        img[:, x : x + stripe] = 255
        return img

    return draw


def _gradient(width: int, height: int) -> _Drawer:
    xs = (np.arange(width) * 255 // max(1, width - 1)).astype(np.uint8)
    ys = (np.arange(height) * 255 // max(1, height - 1)).astype(np.uint8)

    def draw(index: int) -> PlaneArray:
        img = np.empty((height, width, 3), dtype=np.uint8)
        img[:, :, 0] = (xs + np.uint8(index * 3 % 256))[None, :]
        img[:, :, 1] = (ys + np.uint8(index * 2 % 256))[:, None]
        img[:, :, 2] = 128
        return img

    return draw


def _checker(width: int, height: int) -> _Drawer:
    cell = max(2, min(width, height) // 8)
    xs = np.arange(width)
    row_parity = (np.arange(height) // cell) % 2

    def draw(index: int) -> PlaneArray:
        col_parity = ((xs + index * 2) // cell) % 2
        light = (row_parity[:, None] ^ col_parity[None, :]) == 0
        img = np.where(light, np.uint8(230), np.uint8(25)).astype(np.uint8)
        return np.repeat(img[:, :, None], 3, axis=2)

    return draw
