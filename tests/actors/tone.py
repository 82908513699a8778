"""ToneSource: 20 ms chunks of a sine wave (a synthetic microphone for tests)."""

from __future__ import annotations

import asyncio
import math
from typing import Any

import numpy as np

from va_actors.core.audio.pcm import PcmData
from va_actors.core.node import Node, NodeContext

CHUNK_MS = 20


def tone_chunk(index: int, rate: int = 16000, channels: int = 1, freq: float = 440.0,
               amplitude: float = 0.3) -> PcmData:
    """Chunk ``index`` of the tone (the same samples every time: tests recompute it)."""
    n = rate * CHUNK_MS // 1000
    t = (np.arange(n) + index * n) / rate
    wave = (amplitude * 32767 * np.sin(2 * math.pi * freq * t)).astype(np.int16)
    samples = np.tile(wave, (channels, 1)) if channels > 1 else wave
    return PcmData(rate, "s16", samples, pts=index * n, time_base=1 / rate, channels=channels)


class ToneSource(Node):
    """Params: rate, channels, freq, amplitude, count (None: forever), realtime (pace)."""

    async def run(self, ctx: NodeContext) -> None:
        p: dict[str, Any] = self.params
        await ctx.wait_started()
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        index = 0
        count = p.get("count")
        while count is None or index < count:
            ctx.publish("audio", tone_chunk(index, int(p.get("rate", 16000)),
                                            int(p.get("channels", 1)),
                                            float(p.get("freq", 440.0)),
                                            float(p.get("amplitude", 0.3))))
            index += 1
            if p.get("realtime", True):
                await asyncio.sleep(max(0.0, t0 + index * CHUNK_MS / 1000 - loop.time()))
            else:
                await asyncio.sleep(0)
