"""The host's bounded input queues: audio keeps order, events keep order, video keeps the newest.

Each queue is drained by exactly one dispatcher task on the host's loop;
whatever a bound makes a queue drop is handed to a discard callback (counted
under a drop reason, and finished when it is a replica's work item).
"""

from __future__ import annotations

import abc
import asyncio
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from va_actors.wire.codec import Message

__all__ = ["AudioFifo", "Discard", "InputRoute", "ItemFifo", "Mailbox", "Queue", "duration_ms"]

_SAMPLE_BYTES = {"s16": 2, "f32": 4}

Discard = Callable[[str, list[Message]], None]
"""Called with a drop reason and the messages a queue dropped."""


class _Inbox(abc.ABC):
    """A bounded queue drained by exactly one dispatcher task."""

    __slots__ = ("_loop", "_waiter")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._waiter: asyncio.Future[None] | None = None

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    async def _sleep(self) -> None:
        self._waiter = self._loop.create_future()
        await self._waiter

    @abc.abstractmethod
    def __len__(self) -> int:
        """Items waiting."""


class AudioFifo(_Inbox):
    """Audio keeps order; bounded by duration, dropping the oldest chunks."""

    __slots__ = ("_drop", "_items", "_limit_ms", "_ms")

    def __init__(self, loop: asyncio.AbstractEventLoop, limit_ms: float, drop: Discard) -> None:
        super().__init__(loop)
        self._items: deque[tuple[Message, float]] = deque()
        self._ms = 0.0
        self._limit_ms = limit_ms
        self._drop = drop

    def put(self, msg: Message) -> None:
        ms = duration_ms(msg)
        items = self._items
        items.append((msg, ms))
        self._ms += ms
        if self._ms > self._limit_ms and len(items) > 1:
            dropped: list[Message] = []
            while self._ms > self._limit_ms and len(items) > 1:
                old, old_ms = items.popleft()
                self._ms -= old_ms
                dropped.append(old)
            self._drop("overflow", dropped)
        self._wake()

    async def get(self) -> Message:
        while not self._items:
            await self._sleep()
        msg, ms = self._items.popleft()
        self._ms -= ms
        return msg

    def __len__(self) -> int:
        return len(self._items)


class ItemFifo(_Inbox):
    """Events, text and control keep order; bounded by count, dropping the oldest."""

    __slots__ = ("_drop", "_items")

    def __init__(self, loop: asyncio.AbstractEventLoop, limit: int, drop: Discard) -> None:
        super().__init__(loop)
        self._items: deque[Message] = deque(maxlen=limit)
        self._drop = drop

    def put(self, msg: Message) -> None:
        if len(self._items) == self._items.maxlen:
            self._drop("overflow", [self._items[0]])
        self._items.append(msg)
        self._wake()

    async def get(self) -> Message:
        while not self._items:
            await self._sleep()
        return self._items.popleft()

    def __len__(self) -> int:
        return len(self._items)


class Mailbox(_Inbox):
    """Video keeps the newest frame: one slot, a replaced frame is counted.

    ``replaced`` when the consumer was busy; ``throttled`` while the consumer
    waits for its next fps slot (expected when it asked for a lower rate).
    """

    __slots__ = ("_drop", "_slot", "throttling")

    def __init__(self, loop: asyncio.AbstractEventLoop, drop: Discard) -> None:
        super().__init__(loop)
        self._slot: Message | None = None
        self._drop = drop
        self.throttling = False

    def put(self, msg: Message) -> None:
        if self._slot is not None:
            self._drop("throttled" if self.throttling else "replaced", [self._slot])
        self._slot = msg
        self._wake()

    async def get(self) -> Message:
        while self._slot is None:
            await self._sleep()
        msg, self._slot = self._slot, None
        return msg

    def __len__(self) -> int:
        return 0 if self._slot is None else 1


Queue = AudioFifo | ItemFifo | Mailbox


def duration_ms(msg: Message) -> float:
    """Milliseconds of audio an audio message carries."""
    f = msg.fields
    width = _SAMPLE_BYTES.get(f["format"], 2) * f["channels"]
    return float(msg.payloads[0].nbytes / width / f["sample_rate"] * 1000.0)


@dataclass
class InputRoute:
    """One subscribed topic: its queues (created on first use) and their dispatchers.

    ``interval_s``: the minimum time between two video frames handed on (the
    input's fps request); ``max_age_ns``: the staleness bound.
    """

    topic: str
    epoch_bound: bool = True
    interval_s: float | None = None
    max_age_ns: int | None = None
    audio: AudioFifo | None = None
    video: Mailbox | None = None
    items: ItemFifo | None = None

    def depth(self) -> int:
        """Items waiting in its queues."""
        return sum(len(q) for q in (self.audio, self.video, self.items) if q is not None)

