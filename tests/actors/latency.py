"""LatencyReporter: publishes a turn-latency event on ``metrics`` every 200 ms."""

from __future__ import annotations

import asyncio

from va_actors.core.latency import TurnLatencyEvent
from va_actors.core.node import Node, NodeContext


class LatencyReporter(Node):
    """Turn ``i`` takes ``700 + 10 * i`` ms: 200 ms per segment, the rest as audio out."""

    async def run(self, ctx: NodeContext) -> None:
        await ctx.wait_started()
        i = 0
        while True:
            total = 700.0 + 10 * i
            ctx.publish("metrics", TurnLatencyEvent(
                user_text=f"question {i}", total_ms=total,
                segments_ms={"turn_detected": 200.0, "final_transcript": 200.0,
                             "first_token": 100.0, "first_audio": 200.0,
                             "audio_out": total - 700.0}))
            i += 1
            await asyncio.sleep(0.2)
