"""Node: the small API for custom actors (transports, sources, sinks, glue).

Plugins of the Vision Agents categories (STT, TTS, LLM, ...) are driven by the
actor host; anything else subclasses :class:`Node`. In the spirit of dora-rs's
node API, a node sees its inputs as messages and publishes values on its own
streams through a :class:`NodeContext`. It never touches sockets, so it runs
the same in-process (tests) and in an actor.

Two ways to take input: override :meth:`Node.on_message` (a callback per
message), or read them in :meth:`Node.run` as a loop, as dora's nodes do::

    class Meter(Node):
        outputs = ("level",)

        async def run(self, ctx: NodeContext) -> None:
            async for msg in ctx.inputs():
                ctx.publish("level", LevelEvent(rms=rms(msg.value)))
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, runtime_checkable

from va_actors.core.audio.pcm import PcmData
from va_actors.core.events.base import BaseEvent
from va_actors.core.video.frame import VideoFrame

Publishable = PcmData | VideoFrame | BaseEvent | str


@dataclass
class Inbound:
    """One input message delivered to a node.

    ``value`` is a PcmData, VideoFrame, BaseEvent, the text of a text chunk, or
    a control map; ``topic`` is ``<actor>.<stream>`` of the producer.
    """

    topic: str
    value: Any
    epoch: int = 0
    seq: int = 0
    ts_ns: int = 0
    source: str = ""
    fields: dict[str, Any] = field(default_factory=dict)

    @property
    def actor(self) -> str:
        """The producing actor's name."""
        return self.topic.partition(".")[0]

    @property
    def stream(self) -> str:
        """The producer's stream name (``audio``, ``text``, ...)."""
        return self.topic.partition(".")[2]


@runtime_checkable
class NodeContext(Protocol):
    """What a node can do: publish, read the epoch, learn about start-up."""

    @property
    def name(self) -> str:
        """The actor's name (its topics start with it)."""

    @property
    def epoch(self) -> int:
        """The session epoch now in force."""

    def publish(self, stream: str, value: Publishable, *, epoch: int | None = None,
                final: bool = False, **fields: Any) -> None:
        """Publish ``value`` on ``<name>.<stream>``; ``epoch`` defaults to the current one.

        ``final`` and ``fields`` apply to text (``final`` ends a reply) and are
        added to the header otherwise.
        """

    async def wait_started(self) -> None:
        """Return once every consumer is subscribed (sources wait for this)."""

    def count_drop(self, reason: str, n: int = 1) -> None:
        """Count ``n`` items this node dropped (shown in ``va-launch status``)."""

    def inputs(self) -> AsyncIterator[Inbound]:
        """Every input message in arrival order, for a node that does not override
        :meth:`Node.on_message` (``async for msg in ctx.inputs()`` in :meth:`Node.run`)."""


@runtime_checkable
class SystemView(Protocol):
    """A context that can say where the supervisor publishes the pipeline's state.

    The actor host's context is one; a node that shows the pipeline (a
    browser edge's live view) subscribes there to ``sys.actor`` and
    ``sys.metrics`` (docs/runtime.md, control protocol). Test contexts need
    not be: check with ``isinstance(ctx, SystemView)``.
    """

    @property
    def system_endpoint(self) -> str | None:
        """The supervisor's PUB endpoint (``ipc://<run dir>/sys.pub.sock``), if known."""


class Node:
    """A custom actor.

    Override :meth:`run` for a source (it is started as a task after
    :meth:`start` and may loop until cancelled), :meth:`on_message` for a
    consumer (or iterate ``ctx.inputs()`` in :meth:`run`), and
    :meth:`on_epoch` to react to barge-in.

    Attributes:
        outputs: the streams this node publishes (``events`` is implied),
            or None to leave them undeclared. Declared, ``va-launch check``
            refuses a consumer of a stream the node does not publish, and
            the supervisor follows a declared ``turn`` stream for barge-in
            as it does a turn detector's.
    """

    outputs: ClassVar[tuple[str, ...] | None] = None

    def __init__(self, **params: Any) -> None:
        self.params = params

    async def start(self, ctx: NodeContext) -> None:
        """Called once before any message; keep ``ctx`` to publish later."""

    async def run(self, ctx: NodeContext) -> None:
        """The node's own work (sources); cancelled at shutdown."""

    async def on_message(self, msg: Inbound) -> None:
        """Handle one input message."""

    async def on_epoch(self, epoch: int) -> None:
        """The session epoch moved (barge-in): drop work older than ``epoch``."""

    async def close(self) -> None:
        """Release resources at shutdown."""
