"""The driver base: what every category driver shares, and what it needs from the host."""


from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from va_actors.core.events.base import BaseEvent, PluginErrorEvent
from va_actors.core.events.manager import EventManager

# Imported for its registrations too: every actor can decode every core event type.
from va_actors.core.node import Inbound, Publishable
from va_actors.wire.codec import Message
from va_actors.wire.messages import InputRef, Kind, TextChunk

if TYPE_CHECKING:
    from va_actors.runtime.categories import Category


MAX_PENDING_REPLIES = 16
"""Replies a TTS or Realtime driver keeps partial text for; the oldest is evicted."""


class HostPort(Protocol):
    """What a driver needs from the actor host (:class:`~va_actors.runtime.host.ActorHost`)."""

    actor: str
    instance: str

    @property
    def epoch(self) -> int:
        """The session epoch in force."""

    @property
    def resumed_epoch(self) -> int:
        """The latest epoch the supervisor started because the user went on with the
        turn the agent was answering, rather than answering it (0: none)."""

    def publish(self, stream: str, value: Publishable | TextChunk, *, epoch: int | None = None,
                ref: InputRef | None = None, final: bool = False, **fields: Any) -> None:
        """Publish on ``<actor>.<stream>`` (callable from any thread)."""

    def count_drop(self, reason: str, n: int = 1) -> None:
        """Count dropped items."""

    def hold_replay(self, held: bool) -> None:
        """Keep the input handed on from now replayable for a restart (True), or not."""

    async def wait_started(self) -> None:
        """Return once ``start`` was received."""

    def spawn(self, coro: Coroutine[Any, Any, Any], context: str) -> asyncio.Task[Any]:
        """Run a task whose exception becomes an error event."""

    def fail(self, error: BaseException, context: str,
             event_class: type[PluginErrorEvent] = PluginErrorEvent) -> None:
        """Publish an error event."""


async def maybe_await(value: object) -> None:
    if inspect.isawaitable(value):
        await value


def inbound(msg: Message) -> Inbound:
    """The :class:`Inbound` a Node receives for a decoded message.

    Text becomes its string (``final``, ``response_id`` and ``index`` stay in
    ``fields``); control becomes ``{"op": ..., "args": {...}}``.
    """
    kind = msg.kind
    value: Any
    if kind is Kind.TEXT:
        value = msg.fields["text"]
    elif kind is Kind.CONTROL:
        control = msg.control()
        value = {"op": control.op, "args": control.args}
    else:
        value = msg.value()
    return Inbound(msg.topic, value, msg.epoch, msg.seq, msg.ts_ns, msg.source, msg.fields)


class Driver:
    """Base driver: no inputs consumed, plugin events forwarded to ``events``."""

    outputs: ClassVar[tuple[str, ...]] = ("events",)
    """Streams this driver publishes (announced in ``hello``)."""
    error_event: ClassVar[type[PluginErrorEvent]] = PluginErrorEvent

    def __init__(self, host: HostPort, plugin: Any) -> None:
        self.host = host
        self.plugin = plugin

    async def start(self) -> None:
        """Start the plugin; called once, before any input."""

    async def attach(self) -> None:
        """The driver now serves its instance (``host.spec`` is this instance's).

        Called once, after :meth:`start` and before any input; a warm spare's
        driver was started before it knew its instance or session, so session
        state (the conversation a restarted actor takes up) is read here.
        """

    async def run(self) -> None:
        """The plugin's own work, started when the supervisor sends ``start``."""

    async def on_input(self, msg: Message) -> None:
        """Handle one input message (already epoch-checked)."""

    async def on_epoch(self, epoch: int) -> None:
        """The session epoch moved to ``epoch`` (barge-in)."""

    async def on_peer_down(self, actor: str, category: str) -> None:
        """An instance of ``actor`` (of ``category``) exited unexpectedly; a restart follows."""

    async def on_peer_restarted(self, actor: str, category: str) -> None:
        """An instance of ``actor`` (of ``category``) crashed, was restarted, and runs again.

        What it held in memory is gone: a driver that sent it work it may
        not have finished can send that again (the LLM re-sends the unheard
        rest of its reply to a restarted TTS).
        """

    async def close(self) -> None:
        """Stop the plugin and release it."""
        close = getattr(self.plugin, "close", None)
        if close is not None:
            await maybe_await(close())

    def fail(self, error: BaseException, context: str) -> None:
        """Report a plugin exception as this category's error event."""
        self.host.fail(error, context, self.error_event)

    def forward_events(self, route: Callable[[BaseEvent], str | None]) -> None:
        """Publish every event the plugin sends on the stream ``route`` names (None: skip)."""
        events = getattr(self.plugin, "events", None)
        if not isinstance(events, EventManager):
            return
        host = self.host

        # A sync handler runs inline in events.send(): no task per event (the host's
        # publish() is safe from a plugin's worker thread too).
        def forward(event: BaseEvent) -> None:
            stream = route(event)
            if stream is not None:
                host.publish(stream, event)

        events.subscribe(prefix="")(forward)

    async def _start_plugin(self) -> None:
        start = getattr(self.plugin, "start", None)
        if start is not None:
            await maybe_await(start())


# -- selection -------------------------------------------------------------------------------
def driver_for(category: Category | str, cls: type) -> type[Driver]:
    """The driver class for a plugin class of ``category`` (the category table's row).

    Raises ValueError if ``cls`` is not a subclass of that category's base.
    """
    from va_actors.runtime.categories import driver_for as table_driver

    return table_driver(category, cls)
