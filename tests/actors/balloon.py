"""Balloon: an Echo whose memory grows by ``grow_mb`` once it has run ``after_s``."""

from __future__ import annotations

import asyncio

from tests.actors.echo import Echo
from va_actors.core.node import NodeContext


class Balloon(Echo):
    """Params: ``grow_mb`` (default 300), ``after_s`` (default 1.0)."""

    def __init__(self, grow_mb: int = 300, after_s: float = 1.0) -> None:
        super().__init__()
        self.grow_mb = grow_mb
        self.after_s = after_s
        self.ballast: bytearray | None = None

    async def run(self, ctx: NodeContext) -> None:
        await ctx.wait_started()
        await asyncio.sleep(self.after_s)
        self.ballast = bytearray(self.grow_mb * 2**20)  # zero-filled: every page is touched
        for i in range(0, len(self.ballast), 4096):
            self.ballast[i] = 1
