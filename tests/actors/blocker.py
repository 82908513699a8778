"""Blocker: blocks its own event loop with time.sleep (a badly behaved plugin)."""

from __future__ import annotations

import asyncio
import time

from va_actors.core.node import Inbound, Node, NodeContext


class Blocker(Node):
    """Params: ``block_s``; ``every_s`` blocks periodically after start, else on each message."""

    async def run(self, ctx: NodeContext) -> None:
        every = self.params.get("every_s")
        if every is None:
            return
        await ctx.wait_started()
        while True:
            await asyncio.sleep(float(every))
            time.sleep(float(self.params["block_s"]))  # noqa: ASYNC251 - on purpose

    async def on_message(self, msg: Inbound) -> None:
        time.sleep(float(self.params["block_s"]))  # noqa: ASYNC251 - on purpose
