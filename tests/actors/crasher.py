"""Crasher: kills its own process (os._exit(1)) after N messages or when a file appears."""

from __future__ import annotations

import asyncio
import os

from va_actors.core.node import Inbound, Node, NodeContext


class Crasher(Node):
    """Params: ``after`` (messages), ``signal_file`` (path polled every 50 ms)."""

    seen = 0

    async def run(self, ctx: NodeContext) -> None:
        path = self.params.get("signal_file")
        while path:
            if os.path.exists(path):  # noqa: ASYNC240 - a stat every 50 ms
                os._exit(1)
            await asyncio.sleep(0.05)

    async def on_message(self, msg: Inbound) -> None:
        self.seen += 1
        if self.seen >= int(self.params.get("after", 1)):
            os._exit(1)
