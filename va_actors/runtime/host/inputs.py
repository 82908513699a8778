"""The host's input path: from the SUB socket (or a replica's work link) to the driver.

Each inbound message is decoded (a :class:`WireError` is dropped, counted by
reason and reported at most once a second), tracked per ``(source, topic)``
for sequence gaps (``lost``), checked against the epoch (``stale``, only on
epoch-bound inputs), and put in a bounded per-input queue
(:mod:`.queues`) that one dispatcher task per queue drains into the
driver's ``on_input``. With a :class:`~.replay_client.ReplayClient`
(``replay``), live messages of an input being replayed are held, replayed
ones addressed to this instance go through the merge, and replays addressed
to another consumer are dropped without counting (runtime/replay/).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any, Protocol, cast

import zmq

from va_actors.runtime.host.queues import AudioFifo, InputRoute, ItemFifo, Mailbox, Queue
from va_actors.runtime.host.replay_client import ReplayClient
from va_actors.runtime.replay.protocol import HANDLING_REPLAY, REPLAY_TO
from va_actors.runtime.spec import ActorSpec, InputSpec
from va_actors.runtime.video_feed import CURRENT_INPUT
from va_actors.runtime.work import WorkLink
from va_actors.wire.codec import Frame, Message, WireError, decode
from va_actors.wire.messages import InputRef, Kind

__all__ = ["AGENT_AUDIO_QUEUE_MS", "ITEM_QUEUE_LEN", "MAX_BATCH", "InputOwner", "Inputs"]

logger = logging.getLogger("va_actors.runtime.host")

MAX_BATCH = 64
"""Messages read per wake-up before yielding, so dispatchers run between batches
(a burst is then consumed as it arrives instead of overflowing a queue)."""
AGENT_AUDIO_QUEUE_MS = 120_000
"""Bound of an epoch-bound (agent) audio input queue, in ms of audio."""
ITEM_QUEUE_LEN = 1024
"""Bound of each event / text / control input queue."""
_ERROR_EVENT_INTERVAL_S = 1.0


class InputOwner(Protocol):
    """What the input path needs from the actor host."""

    instance: str

    @property
    def epoch(self) -> int:
        """The epoch in force (older agent output is stale)."""

    def count_drop(self, reason: str, n: int = 1) -> None:
        """Count dropped messages."""

    def report_error(self, error: BaseException, context: str) -> None:
        """Publish an error event (a bad message arrived)."""

    def input_failed(self, error: BaseException, context: str) -> None:
        """The driver raised while handling an input (an error event of its category)."""

    def critical(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        """Run a task whose failure ends the host (a dispatcher)."""


Handler = Callable[[Message], Awaitable[None]]


class Inputs:
    """Routes, queues and dispatchers of one instance's inputs.

    Args:
        owner: the host.
        spec: the instance's spec (inputs, queue bounds).
        loop: the host's loop.
        handle: the driver's ``on_input``.
    """

    def __init__(self, owner: InputOwner, spec: ActorSpec, loop: asyncio.AbstractEventLoop,
                 handle: Handler) -> None:
        self._owner = owner
        self._spec = spec
        self._loop = loop
        self._handle = handle
        self.routes: dict[str, InputRoute] = {}
        self.received = 0
        self.work: WorkLink | None = None
        self.replay: ReplayClient | None = None
        self._seqs: dict[tuple[str, str], int] = {}
        self._work_items: dict[int, int] = {}  # id(message) -> work item (replicas)
        self._last_error_event: dict[str, float] = {}
        for spec_input in spec.inputs:
            self._add(spec_input)

    def depths(self) -> dict[str, int]:
        """Items waiting per input topic (read from the control thread)."""
        return {topic: route.depth() for topic, route in self.routes.copy().items()}

    def max_age_ns(self, topic: str) -> int | None:
        """The staleness bound of input ``topic`` in ns, if it has one."""
        route = self.routes.get(topic)
        return None if route is None else route.max_age_ns

    def _add(self, spec_input: InputSpec) -> None:
        fps, max_age = spec_input.fps, spec_input.max_age_ms
        self.routes[spec_input.topic] = InputRoute(
            spec_input.topic, spec_input.epoch_bound,
            interval_s=None if fps is None else 1.0 / fps,
            max_age_ns=None if max_age is None else int(max_age * 1e6))

    # -- reading ---------------------------------------------------------------------
    def read_sub(self, sock: zmq.Socket[bytes]) -> bool:
        """Read up to :data:`MAX_BATCH` messages from ``sock``; True if more may wait."""
        accept = self.accept
        for _ in range(MAX_BATCH):
            # The FD is edge-triggered: read while ZMQ_EVENTS says so (asking is
            # cheaper than the zmq.Again exception that an empty recv raises).
            if not cast(int, sock.getsockopt(zmq.EVENTS)) & zmq.POLLIN:
                return False
            try:
                first = sock.recv(zmq.NOBLOCK)
            except zmq.Again:
                continue
            # Topic and header are small: copied (cheaper than zmq.Frame objects).
            # Payloads stay zero-copy: a video frame is viewed, never copied.
            frames: list[bytes | zmq.Frame] = [first]
            while sock.getsockopt(zmq.RCVMORE):
                frames.append(sock.recv(copy=len(frames) < 2))
            accept(frames)
        return True

    def accept(self, frames: Sequence[Frame | zmq.Frame], item: int | None = None) -> None:
        """Take one message (``item``: a replica's work item number)."""
        self.received += 1
        try:
            msg = decode(frames)
        except WireError as err:
            self.wire_drop(err)
            if item is not None and self.work is not None:
                self.work.finish(item)
            return
        replay = self.replay
        if replay is not None:
            if REPLAY_TO in msg.fields:
                if msg.fields[REPLAY_TO] == self._owner.instance:
                    self.admit_all(replay.addressed(msg))
                return  # another consumer's replay: not ours, not a drop
            if replay.waiting:
                self.admit_all(replay.live(msg))
                return
        elif REPLAY_TO in msg.fields:  # a replica (or no replay here): never ours
            if item is not None and self.work is not None:
                self.work.finish(item)
            return
        self._admit(msg, item)

    def admit_all(self, msgs: list[Message]) -> None:
        """Route messages the replay merge released, in order."""
        for msg in msgs:
            self._admit(msg, None)

    def _admit(self, msg: Message, item: int | None) -> None:
        if item is not None:
            self._work_items[id(msg)] = item
        else:  # a replica sees a share of the sequence; its dispatcher counts
            self._track(msg)
        route = self.routes.get(msg.topic)
        if route is None:
            self.discard("unsubscribed", [msg])
            return
        if route.epoch_bound and msg.epoch < self._owner.epoch:
            self.discard("stale", [msg])
            return
        kind = msg.kind
        inbox: Queue | None = (route.audio if kind is Kind.AUDIO
                               else route.video if kind is Kind.VIDEO else route.items)
        if inbox is None:  # not "or": an empty queue is falsy
            inbox = self._open_queue(route, kind)
        inbox.put(msg)

    def _replay_ms(self, topic: str) -> float:
        if self.replay is None or not self.replay.restarted:
            return 0.0
        window = next((i.replay_s for i in self._spec.inputs if i.topic == topic), 0.0)
        return window * 1000.0 + self._spec.audio_queue_ms

    def _track(self, msg: Message) -> None:
        # Sequence first: a stale message still counts as received in order.
        key = (msg.source, msg.topic)
        last = self._seqs.get(key)
        if last is not None and msg.seq > last + 1:
            self._owner.count_drop("lost", msg.seq - last - 1)
        # seq <= last: the producer restarted; tracking restarts from here.
        self._seqs[key] = msg.seq

    def _open_queue(self, route: InputRoute, kind: Kind) -> Queue:
        loop, spec = self._loop, self._spec
        inbox: Queue
        if kind is Kind.AUDIO:
            # Agent audio (TTS) comes faster than real time, a sentence per
            # message, and a barge-in flushes it: its bound only stops runaway
            # growth. Live audio (a microphone) is bounded to stay current,
            # but must hold a whole replay when the consumer restarts.
            limit = AGENT_AUDIO_QUEUE_MS if route.epoch_bound else max(
                spec.audio_queue_ms, self._replay_ms(route.topic))
            inbox = route.audio = AudioFifo(loop, max(limit, spec.audio_queue_ms),
                                            self.discard)
        elif kind is Kind.VIDEO:
            inbox = route.video = Mailbox(loop, self.discard)
        else:
            inbox = route.items = ItemFifo(loop, ITEM_QUEUE_LEN, self.discard)
        self._owner.critical(self._dispatch(inbox, route),
                             f"{self._owner.instance}:{route.topic}")
        return inbox

    # -- handing on --------------------------------------------------------------------
    async def _dispatch(self, inbox: Queue, route: InputRoute) -> None:
        throttle = route.interval_s if isinstance(inbox, Mailbox) else None
        next_due = float("-inf")
        while True:
            if throttle is not None:
                assert isinstance(inbox, Mailbox)
                await self._wait_slot(inbox, next_due)
            msg = await inbox.get()
            if throttle is not None:
                # A fixed grid keeps the average rate exact despite jitter; never
                # two frames closer than half an interval after a long gap.
                next_due = max(next_due + throttle, self._loop.time() + throttle / 2)
            if route.epoch_bound and msg.epoch < self._owner.epoch:  # moved while it waited
                self.discard("stale", [msg])
                continue
            if route.max_age_ns is not None and time.time_ns() - msg.ts_ns > route.max_age_ns:
                self.discard("expired", [msg])
                continue
            await self._hand_on(msg)

    async def _hand_on(self, msg: Message) -> None:
        # Results of a frame or of a replica's work item name their input.
        token = None
        if msg.kind is Kind.VIDEO or self.work is not None:
            token = CURRENT_INPUT.set(
                InputRef(msg.source, msg.seq, msg.fields.get("pts"), msg.ts_ns))
        if self.replay is not None:
            self.replay.handed_on(msg)
        replaying = HANDLING_REPLAY.set(REPLAY_TO in msg.fields)
        try:
            await self._handle(msg)
        except WireError as err:
            self.wire_drop(err)
        except Exception as exc:
            self._owner.input_failed(exc, f"input {msg.topic}")
        finally:
            HANDLING_REPLAY.reset(replaying)
            if token is not None:
                CURRENT_INPUT.reset(token)
            if self._work_items:
                self._finish(msg)

    async def _wait_slot(self, inbox: Mailbox, next_due: float) -> None:
        """Sleep until the next fps slot; frames arriving meanwhile replace each other."""
        delay = next_due - self._loop.time()
        if delay > 0:
            inbox.throttling = True
            try:
                await asyncio.sleep(delay)
            finally:
                inbox.throttling = False

    # -- dropping ---------------------------------------------------------------------
    def discard(self, reason: str, msgs: list[Message]) -> None:
        """Count dropped messages (and finish them when they are work items)."""
        self._owner.count_drop(reason, len(msgs))
        if self._work_items:
            for msg in msgs:
                self._finish(msg)

    def wire_drop(self, err: WireError) -> None:
        """Count a malformed message; report it as an error event at most once a second."""
        reason = err.reason.value
        self._owner.count_drop(reason)
        now = time.monotonic()
        if now - self._last_error_event.get(reason, -1e9) >= _ERROR_EVENT_INTERVAL_S:
            self._last_error_event[reason] = now
            logger.warning("%s: dropped a bad input message (%s); more are only counted "
                           "for a second", self._owner.instance, err)
            self._owner.report_error(err, f"input dropped ({reason})")

    def _finish(self, msg: Message) -> None:
        """A work item was handled or dropped: tell the dispatcher (replicas only)."""
        item = self._work_items.pop(id(msg), None)
        if item is not None and self.work is not None:
            self.work.finish(item)
