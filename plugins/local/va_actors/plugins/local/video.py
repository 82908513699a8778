"""Video sources: a video file, and a synthetic camera."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from va_actors.core.checks import ParamProblem
from va_actors.core.node import Node, NodeContext
from va_actors.core.params import optional_positive_int, positive_number
from va_actors.core.video import SyntheticVideoTrack, VideoTrackClosedError
from va_actors.core.video.track import VIDEO_TIME_BASE, SyntheticPattern

from ._common import (
    Pacer,
    expand_path,
    publish_finished,
    report_error,
)
from ._decode import MediaReadError, VideoReader, file_problems

VIDEO = "video"


class VideoFileSource(Node):
    """Plays a video file as a camera: VideoFrame on ``video``, paced at a frame rate.

    Frames keep the file's size and pixel layout (yuv420p for usual video)
    and get pts in 1/90000 s, increasing across loops. With ``fps`` below
    the file's rate frames are thinned evenly; above it, each frame is still
    sent once, at its own time. A real-time sender that falls more than a
    frame behind skips frames (counted as ``late``) instead of bursting. An
    unreadable file is reported as a TransportErrorEvent on ``events``; the
    end of a non-looping file as a SourceFinishedEvent.

    Args:
        path: the file; ``~`` and ``$VARS`` are expanded.
        fps: frame rate to send at (default: the file's own).
        loop: start again at the end, forever.
        realtime: pace frames; False sends as fast as possible (tests).
    """

    def __init__(
        self, path: str, fps: float | None = None, loop: bool = True, realtime: bool = True
    ) -> None:
        super().__init__(path=path, fps=fps, loop=loop, realtime=realtime)
        self.path = expand_path(path)
        self.fps = None if fps is None else positive_number(fps, "fps")
        self.loop = bool(loop)
        self.realtime = bool(realtime)
        self._next_slot = 0

    @classmethod
    def check_params(cls, params: Mapping[str, Any], base_dir: Path) -> list[ParamProblem]:
        """``va-launch check``: the file must exist and hold video."""
        return file_problems(params, base_dir, "video")

    async def run(self, ctx: NodeContext) -> None:
        """Wait for the consumers, then send the file (again and again when looping)."""
        await ctx.wait_started()
        pacer = Pacer(self.realtime)
        offset = 0.0
        what = f"video file {os.fspath(self.path)}"
        while True:
            try:
                with VideoReader(self.path) as reader:
                    length = await self._play(ctx, reader, pacer, offset)
            except MediaReadError as exc:
                report_error(ctx, f"{what}: {exc}", code="unreadable_file", context=what)
                break
            if length is None:
                report_error(ctx, f"{what} holds no video frames", code="empty_file",
                             context=what)
                break
            offset += length
            if not self.loop:
                break
        publish_finished(ctx, offset * 1000)

    async def _play(
        self, ctx: NodeContext, reader: VideoReader, pacer: Pacer, offset: float
    ) -> float | None:
        """Send one pass over the file; return its length in seconds (None: no frames)."""
        fps = self.fps or reader.fps
        first: float | None = None
        last = 0.0
        for t, frame in reader.frames():
            first = t if first is None else first
            last = t - first
            slot = round((offset + last) * fps)
            if slot < self._next_slot:
                continue  # thinning to the requested rate
            self._next_slot = slot + 1
            media_s = slot / fps
            if pacer.lateness(media_s) > 1 / fps:
                ctx.count_drop("late")
                continue
            await pacer.wait_until(media_s)
            ctx.publish(VIDEO, frame.with_timing(round(media_s / VIDEO_TIME_BASE),
                                                 VIDEO_TIME_BASE))
        return None if first is None else last + 1 / reader.fps


class SyntheticCamera(Node):
    """A camera that films a moving test pattern (core SyntheticVideoTrack).

    Publishes rgb24 VideoFrame on ``video`` with pts in 1/90000 s, paced at
    ``fps``; after ``max_frames`` (if set) a SourceFinishedEvent on ``events``.

    Args:
        width, height: frame size.
        fps: frame rate.
        pattern: ``bars``, ``gradient`` or ``checker``.
        realtime: pace frames; False sends as fast as possible (tests).
        max_frames: stop after this many frames (default: never).
    """

    def __init__(
        self,
        width: int = 640,
        height: int = 480,
        fps: float = 30,
        pattern: SyntheticPattern = "bars",
        realtime: bool = True,
        max_frames: int | None = None,
    ) -> None:
        super().__init__(width=width, height=height, fps=fps, pattern=pattern,
                         realtime=realtime, max_frames=max_frames)
        self.max_frames = optional_positive_int(max_frames, "max_frames")
        self.track = SyntheticVideoTrack(width, height, fps, pattern, realtime=realtime,
                                         max_frames=self.max_frames)

    async def run(self, ctx: NodeContext) -> None:
        """Wait for the consumers, then film until stopped (or ``max_frames``)."""
        await ctx.wait_started()
        try:
            while True:
                ctx.publish(VIDEO, await self.track.recv())
        except VideoTrackClosedError:
            pass
        if self.max_frames is not None and self.track.frames_sent >= self.max_frames:
            publish_finished(ctx, self.track.frames_sent * 1000 / self.track.fps)

    async def close(self) -> None:
        """Stop the pattern track."""
        self.track.stop()
