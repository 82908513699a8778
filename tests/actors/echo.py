"""Echo: republishes every input on ``out`` with the input's epoch."""

from __future__ import annotations

from va_actors.core.node import Inbound, Node, NodeContext
from va_actors.wire.messages import InputRef


class Echo(Node):
    """No params."""

    async def start(self, ctx: NodeContext) -> None:
        self.ctx = ctx

    async def on_message(self, msg: Inbound) -> None:
        self.ctx.publish("out", msg.value, epoch=msg.epoch, ref=InputRef(msg.source, msg.seq))
