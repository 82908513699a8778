"""Custom nodes: the host drives a :class:`~va_actors.core.node.Node` and is its context."""


from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

# Imported for its registrations too: every actor can decode every core event type.
from va_actors.core.node import Inbound, Node, Publishable
from va_actors.runtime.drivers.base import (
    Driver,
    HostPort,
    inbound,
)
from va_actors.wire.codec import Message


# -- custom nodes -------------------------------------------------------------------
class NodeDriver(Driver):
    """Drives a :class:`~va_actors.core.node.Node`; is the node's ``NodeContext``.

    A node that overrides ``on_message`` gets each input there; any other
    node reads them from :meth:`inputs`. That queue holds one message: while
    the node is busy, the host's bounded per-input queues hold the rest (and
    count what they drop).
    """

    outputs = ()

    def __init__(self, host: HostPort, plugin: Any) -> None:
        super().__init__(host, plugin)
        callbacks = type(plugin).on_message is not Node.on_message
        self._inbox: asyncio.Queue[Inbound] | None = None if callbacks else asyncio.Queue(1)

    @property
    def name(self) -> str:
        """The actor's name."""
        return self.host.actor

    @property
    def epoch(self) -> int:
        """The session epoch in force."""
        return self.host.epoch

    def publish(self, stream: str, value: Publishable, *, epoch: int | None = None,
                final: bool = False, **fields: Any) -> None:
        """Publish ``value`` on ``<actor>.<stream>`` (``ref=InputRef`` is accepted too)."""
        self.host.publish(stream, value, epoch=epoch, final=final, **fields)

    async def wait_started(self) -> None:
        """Return once the supervisor sent ``start``."""
        await self.host.wait_started()

    def count_drop(self, reason: str, n: int = 1) -> None:
        """Count items the node dropped."""
        self.host.count_drop(reason, n)

    @property
    def system_endpoint(self) -> str | None:
        """The supervisor's ``sys.pub`` (``core.node.SystemView``), to watch the pipeline."""
        # An ActorHost has its spec; a stand-in host (tests) may have none.
        endpoint = getattr(getattr(self.host, "spec", None), "sys_pub", None)
        return endpoint if isinstance(endpoint, str) else None

    async def start(self) -> None:
        await self.plugin.start(self)

    async def run(self) -> None:
        await self.plugin.run(self)

    async def inputs(self) -> AsyncIterator[Inbound]:
        """The node's input messages in arrival order (dora's node loop)."""
        if self._inbox is None:
            raise RuntimeError(f"{type(self.plugin).__qualname__} takes its input in "
                               "on_message; ctx.inputs() has nothing for it")
        while True:
            yield await self._inbox.get()

    async def on_input(self, msg: Message) -> None:
        if self._inbox is not None:
            await self._inbox.put(inbound(msg))
        else:
            await self.plugin.on_message(inbound(msg))

    async def on_epoch(self, epoch: int) -> None:
        await self.plugin.on_epoch(epoch)
