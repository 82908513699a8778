"""Video test actors: a frame source whose pixels tests can recompute, and a slow stage."""

from __future__ import annotations

import asyncio
import json
import os
import time
from typing import Any, TextIO

import numpy as np

from va_actors.core.node import Inbound, Node, NodeContext
from va_actors.core.video.frame import VideoFrame

POOL = 16
"""The source cycles through this many distinct pictures."""


def make_frame(index: int, width: int = 320, height: int = 240) -> VideoFrame:
    """The frame with pts ``index``: the same pixels every time (picture ``index % POOL``)."""
    rng = np.random.default_rng(index % POOL)
    pixels = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    return VideoFrame.from_ndarray(pixels, pts=index)


class FrameSource(Node):
    """Params: width, height, fps, count (None: forever).

    Publishes ``make_frame(i)`` on ``video``, paced at ``fps`` in real time.
    The POOL pictures are made ahead so that making them never delays pacing.
    """

    async def run(self, ctx: NodeContext) -> None:
        p: dict[str, Any] = self.params
        width, height = int(p.get("width", 320)), int(p.get("height", 240))
        fps = float(p.get("fps", 30))
        count = p.get("count")
        pool = [make_frame(i, width, height) for i in range(POOL)]
        await ctx.wait_started()
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        index = 0
        while count is None or index < count:
            base = pool[index % len(pool)]
            frame = VideoFrame.from_ndarray(base.to_ndarray(), pts=index)
            ctx.publish("video", frame)
            index += 1
            await asyncio.sleep(max(0.0, t0 + index / fps - loop.time()))


class SlowStage(Node):
    """Params: delay_ms, blocking (sleep on the loop thread), path (JSONL log).

    For every frame: logs what it got (pid, pts, seq, source, age at hand-over),
    works ``delay_ms``, then publishes the frame's pts as text on ``result``
    (the runtime stamps it with the input's ref).
    """

    _out: TextIO

    async def start(self, ctx: NodeContext) -> None:
        self.ctx = ctx
        self._out = open(self.params["path"], "a", encoding="utf-8")  # noqa: SIM115, ASYNC230

    async def on_message(self, msg: Inbound) -> None:
        if not isinstance(msg.value, VideoFrame):
            return
        got = time.time_ns()
        self._out.write(json.dumps({
            "pid": os.getpid(), "pts": msg.value.pts, "seq": msg.seq,
            "source": msg.source, "age_ms": (got - msg.ts_ns) / 1e6, "got_ns": got}) + "\n")
        self._out.flush()
        delay = float(self.params.get("delay_ms", 100)) / 1000
        if self.params.get("blocking", False):
            time.sleep(delay)  # noqa: ASYNC251 - blocking the loop is the point
        else:
            await asyncio.sleep(delay)
        self.ctx.publish("result", str(msg.value.pts))

    async def close(self) -> None:
        self._out.close()
