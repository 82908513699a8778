"""The actor host: ``python -m va_actors.runtime.host SPEC.json`` runs one actor instance.

One process per instance (docs/runtime.md, "Actor host"). Two threads:

* **Main thread: asyncio loop.** Owns the data sockets: one XPUB bound at
  ``spec.data_endpoint`` (what this instance publishes) and one SUB connected to
  every input endpoint. Both are read with ``loop.add_reader`` on the ZeroMQ
  FD. Each inbound message is decoded (a :class:`WireError` is dropped and
  counted by reason), tracked per ``(source, topic)`` for sequence gaps
  (``lost``), checked against the epoch (``stale``), and put in a bounded
  per-input queue that one dispatcher task per input drains into the category
  driver (:mod:`va_actors.runtime.drivers`).
* **Control thread** (:class:`_Control`), with its own ZeroMQ context: SUB on
  ``spec.sys_pub`` and PUSH to ``spec.sys_pull``. It sends hello / ready /
  heartbeat / bye, stores a new epoch at once (the data path drops stale
  input even while the plugin blocks its loop), measures loop lag, and exits
  the process if the supervisor is gone.

Drop reasons counted in heartbeats (``counters.drops``): the wire's
:class:`DropReason` values, ``stale`` (input older than the epoch),
``stale_out`` (output stamped with an epoch already over, never sent),
``lost`` (sequence gaps: dropped upstream or inside ZeroMQ), ``overflow``
(a bounded FIFO dropped its oldest item), ``replaced`` (a video frame replaced
by a newer one before it was consumed), ``unsubscribed`` (a topic that only
prefix-matched a subscription), ``control_<reason>`` (bad control messages),
plus whatever a plugin counts with ``count_drop``.

Reports on ``sys.report`` (wire kind ``control``; every one carries ``instance``
and ``pid``): ``hello`` (actor, category, outputs), ``ready`` (subscribers),
``heartbeat`` (counters {in, out, drops}, loop_lag_ms, queue {input topic:
depth}, state, epoch, category, subscribers {topic: n}), ``bye`` (reason,
code). ``state`` is ``starting``, ``ready`` (waiting for ``start``),
``running`` or ``stopping``; ``start`` is idempotent, so a supervisor may send
it again while a heartbeat still says ``ready`` (a PUB can lose the first
message to a subscriber that just joined). The control SUB takes exactly
``sys.epoch`` and ``sys.ctl``, not the metrics traffic on ``sys.``.

Exit codes: 0 after a graceful shutdown, 1 on a failure (the supervisor
restarts per policy), 78 (``EX_CONFIG``) when the spec or the plugin reference
or its parameters are wrong (restarting cannot help).
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import ctypes
import logging
import os
import queue
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn, cast

import zmq

from va_actors.core.audio.pcm import PcmData
from va_actors.core.events.base import BaseEvent, PluginErrorEvent
from va_actors.core.video.frame import VideoFrame
from va_actors.runtime import drivers, env_refs, plugins
from va_actors.runtime.dispatcher import Dispatcher
from va_actors.runtime.spec import ActorSpec, InputSpec, SpecError
from va_actors.runtime.work import WorkLink
from va_actors.wire import limits, topics
from va_actors.wire.codec import (
    Frame,
    Message,
    WireError,
    decode,
    encode_audio,
    encode_control,
    encode_event,
    encode_text,
    encode_video,
)
from va_actors.wire.messages import Control, InputRef, Kind, TextChunk

__all__ = [
    "EXIT_CONFIG",
    "EXIT_FAILURE",
    "EXIT_OK",
    "ActorHost",
    "ConfigError",
    "main",
]

logger = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_CONFIG = 78
"""sysexits' EX_CONFIG: bad spec, plugin reference or parameters."""

REPORT_TOPIC = "sys.report"
_CONTROL_TOPICS = ("sys.epoch", "sys.ctl")

MAX_BATCH = 64
"""Messages read per wake-up before yielding, so dispatchers run between batches
(a burst is then consumed as it arrives instead of overflowing a queue)."""
AGENT_AUDIO_QUEUE_MS = 120_000
"""Bound of an epoch-bound (agent) audio input queue, in ms of audio."""
ITEM_QUEUE_LEN = 1024
"""Bound of each event / text / control input queue."""
CONTROL_SWITCH_INTERVAL_S = 0.001
"""GIL switch interval of a host process (see main())."""
_HOUSEKEEPING_S = 0.1
_ERROR_EVENT_INTERVAL_S = 1.0
_SHUTDOWN_DEADLINE_S = 5.0
_SAMPLE_BYTES = {"s16": 2, "f32": 4}


class ConfigError(Exception):
    """The plugin cannot be loaded or built from the spec; the process exits with 78."""


# -- input queues -----------------------------------------------------------------
_Discard = Callable[[str, list[Message]], None]
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


class _AudioFifo(_Inbox):
    """Audio keeps order; bounded by duration, dropping the oldest chunks."""

    __slots__ = ("_drop", "_items", "_limit_ms", "_ms")

    def __init__(self, loop: asyncio.AbstractEventLoop, limit_ms: float, drop: _Discard) -> None:
        super().__init__(loop)
        self._items: deque[tuple[Message, float]] = deque()
        self._ms = 0.0
        self._limit_ms = limit_ms
        self._drop = drop

    def put(self, msg: Message) -> None:
        ms = _duration_ms(msg)
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


class _ItemFifo(_Inbox):
    """Events, text and control keep order; bounded by count, dropping the oldest."""

    __slots__ = ("_drop", "_items")

    def __init__(self, loop: asyncio.AbstractEventLoop, limit: int, drop: _Discard) -> None:
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


class _Mailbox(_Inbox):
    """Video keeps the newest frame: one slot, a replaced frame is counted.

    ``replaced`` when the consumer was busy; ``throttled`` while the consumer
    waits for its next fps slot (expected when it asked for a lower rate).
    """

    __slots__ = ("_drop", "_slot", "throttling")

    def __init__(self, loop: asyncio.AbstractEventLoop, drop: _Discard) -> None:
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


_Queue = _AudioFifo | _ItemFifo | _Mailbox


def _duration_ms(msg: Message) -> float:
    f = msg.fields
    width = _SAMPLE_BYTES.get(f["format"], 2) * f["channels"]
    return float(msg.payloads[0].nbytes / width / f["sample_rate"] * 1000.0)


@dataclass
class _Input:
    """One subscribed topic: its queues (created on first use) and their dispatchers.

    ``interval_s``: the minimum time between two video frames handed on (the
    input's fps request); ``max_age_ns``: the staleness bound.
    """

    topic: str
    epoch_bound: bool = True
    interval_s: float | None = None
    max_age_ns: int | None = None
    audio: _AudioFifo | None = None
    video: _Mailbox | None = None
    items: _ItemFifo | None = None

    def depth(self) -> int:
        return sum(len(q) for q in (self.audio, self.video, self.items) if q is not None)


@dataclass
class _Output:
    """One published stream: its topic and sequence counter."""

    topic: str
    seq: int = -1


# -- the host -----------------------------------------------------------------------
class ActorHost:
    """Runs one plugin instance from an :class:`ActorSpec` (see the module docstring).

    Drivers use :meth:`publish`, :attr:`epoch`, :meth:`count_drop`,
    :meth:`wait_started`, :meth:`spawn` and :meth:`fail`.
    """

    def __init__(self, spec: ActorSpec, *, parent_pid: int | None = None) -> None:
        self.spec = spec
        self.actor = spec.actor
        self.instance = spec.instance
        self.category = spec.category
        self.state = "starting"
        self.n_in = 0
        self.n_out = 0
        self.drops: dict[str, int] = {}
        self.subscribers: dict[str, int] = {}
        self._epoch = spec.epoch
        self._seqs: dict[tuple[str, str], int] = {}
        self._inputs: dict[str, _Input] = {}
        self._outputs: dict[str, _Output] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._driver: drivers.Driver | Dispatcher | None = None
        self._work: WorkLink | None = None
        self._work_items: dict[int, int] = {}  # id(message) -> work item (replicas)
        self._last_ready = 0.0
        self._driver_started = False
        self._hello_sent = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = threading.get_ident()
        self._ctx: zmq.Context[zmq.Socket[bytes]] | None = None
        self._xpub: zmq.Socket[bytes] | None = None
        self._sub: zmq.Socket[bytes] | None = None
        self._readers: list[int] = []
        self._ready = asyncio.Event()
        self._started = asyncio.Event()
        self._stop = asyncio.Event()
        self._stop_reason = "shutdown"
        self._stop_deadline = _SHUTDOWN_DEADLINE_S
        self._fatal: asyncio.Future[None] | None = None
        self._last_error_event: dict[str, float] = {}
        self._lag_lock = threading.Lock()
        self._probe_sent: float | None = None
        self._lag_max_s = 0.0
        self._control = _Control(self, os.getppid() if parent_pid is None else parent_pid)

    # -- public API for drivers ---------------------------------------------------
    @property
    def epoch(self) -> int:
        """The session epoch in force (set by the control thread)."""
        return self._epoch

    def publish(self, stream: str, value: PcmData | VideoFrame | BaseEvent | TextChunk | str,
                *, epoch: int | None = None, ref: InputRef | None = None, final: bool = False,
                **fields: Any) -> None:
        """Publish ``value`` on ``<actor>.<stream>``.

        ``ref`` defaults to the input being handled when that is a video frame
        or a replica's work item (results name their input's seq and pts).
        ``epoch`` defaults to the current one; a value stamped with an epoch
        that is already over is not sent (counted as ``stale_out``). A ``str``
        is sent as a :class:`TextChunk` (``final``, and ``response_id`` /
        ``index`` from ``fields``); other ``fields`` are added to the header.
        Raises TypeError for a value the wire cannot carry. Safe from any
        thread: off the loop's thread the call is handed to the loop (which
        owns the sockets) and errors become error events instead.
        """
        if threading.get_ident() != self._loop_thread:
            self.post(self._publish_from_thread, stream, value, epoch, ref, final, fields)
            return
        current = self._epoch
        stamp = current if epoch is None else epoch
        if stamp < current:
            self.count_drop("stale_out")
            return
        if ref is None:
            ref = drivers.CURRENT_INPUT.get()
        out = self._outputs.get(stream) or self._new_output(stream)
        out.seq += 1
        topic = out.topic
        frames: list[Frame]
        if isinstance(value, PcmData):
            frames = encode_audio(topic, value, seq=out.seq, epoch=stamp, source=self.instance,
                                  ref=ref, extra=fields)
        elif isinstance(value, VideoFrame):
            frames = encode_video(topic, value, seq=out.seq, epoch=stamp, source=self.instance,
                                  ref=ref, extra=fields)
        elif isinstance(value, BaseEvent):
            frames = encode_event(topic, value, seq=out.seq, epoch=stamp, source=self.instance,
                                  ref=ref, extra=fields)
        elif isinstance(value, TextChunk | str):
            chunk = value if isinstance(value, TextChunk) else TextChunk(
                value, final, fields.pop("response_id", None), int(fields.pop("index", 0)))
            frames = encode_text(topic, chunk, seq=out.seq, epoch=stamp, source=self.instance,
                                 ref=ref, extra=fields)
        else:
            out.seq -= 1
            raise TypeError(f"cannot publish a {type(value).__name__} on {topic}: publish "
                            "PcmData, VideoFrame, an event, a TextChunk or str")
        self._send(frames)

    def _publish_from_thread(self, stream: str, value: Any, epoch: int | None,
                             ref: InputRef | None, final: bool, fields: dict[str, Any]) -> None:
        try:
            self.publish(stream, value, epoch=epoch, ref=ref, final=final, **fields)
        except Exception as exc:
            self.fail(exc, f"publish on {stream} from a plugin thread")

    def count_drop(self, reason: str, n: int = 1) -> None:
        """Count ``n`` dropped items under ``reason`` (reported in heartbeats)."""
        drops = self.drops
        drops[reason] = drops.get(reason, 0) + n

    async def wait_started(self) -> None:
        """Return once the supervisor has sent ``start`` to this instance."""
        await self._started.wait()

    def spawn(self, coro: Coroutine[Any, Any, Any], context: str) -> asyncio.Task[Any]:
        """Run plugin work as a task; an exception becomes an error event, nothing stops."""
        task = asyncio.get_running_loop().create_task(coro, name=f"{self.instance}:{context}")
        self._tasks.add(task)
        task.add_done_callback(lambda t: self._task_done(t, context))
        return task

    def fail(self, error: BaseException, context: str,
             event_class: type[PluginErrorEvent] = PluginErrorEvent) -> None:
        """Report a plugin exception as an error event on ``<actor>.events``."""
        logger.warning("%s: %s failed: %s: %s", self.instance, context,
                       type(error).__name__, error, exc_info=logger.isEnabledFor(logging.DEBUG))
        self._publish_error(error, context, event_class)

    def _publish_error(self, error: BaseException, context: str,
                       event_class: type[PluginErrorEvent] = PluginErrorEvent) -> None:
        if self._xpub is None:
            return
        try:
            self.publish("events", event_class(error=error, context=context,
                                               plugin_name=self.actor))
        except Exception:  # an unsendable error must not turn into a crash loop
            logger.exception("%s: cannot publish the error event", self.instance)

    def request_shutdown(self, reason: str = "shutdown",
                         deadline_s: float = _SHUTDOWN_DEADLINE_S) -> None:
        """Begin a graceful shutdown (call on the loop thread)."""
        if not self._stop.is_set():
            self._stop_reason = reason
            self._stop_deadline = deadline_s
            self._stop.set()

    # -- running -------------------------------------------------------------------
    async def run(self) -> int:
        """Serve until shutdown or failure; return the process exit code."""
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._loop_thread = threading.get_ident()
        self._fatal = loop.create_future()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self.request_shutdown, f"signal {sig.name}")
        self._control.start()
        serve = loop.create_task(self._serve(), name=f"{self.instance}:serve")
        stop = loop.create_task(self._stop.wait())
        await asyncio.wait({serve, stop}, return_when=asyncio.FIRST_COMPLETED)
        code, reason = EXIT_OK, self._stop_reason
        if serve.done() and not serve.cancelled() and serve.exception() is not None:
            exc = serve.exception()
            code = EXIT_CONFIG if isinstance(exc, ConfigError) else EXIT_FAILURE
            reason = f"{'config error' if code == EXIT_CONFIG else 'failed'}: {exc}"
            if code == EXIT_CONFIG:
                logger.error("%s: %s", self.instance, reason)
            else:
                logger.error("%s: %s", self.instance, reason, exc_info=exc)
        for task in (serve, stop):
            task.cancel()
        await asyncio.gather(serve, stop, return_exceptions=True)
        return await self._shutdown(code, reason)

    async def _serve(self) -> None:
        assert self._fatal is not None
        if self.spec.is_dispatcher:
            self._send_hello([])
            self._ctx = zmq.Context()
            self._bind_output()
            assert self.spec.work_endpoint is not None
            self._driver = Dispatcher(self, self.spec.work_endpoint)
        else:
            driver_class, plugin_class = self._load()
            self._send_hello(self._output_topics(driver_class))
            try:
                params = env_refs.expand(self.spec.params, os.environ)
            except ValueError as exc:  # unset or malformed: the values are not logged
                raise ConfigError(f"cannot create {self.spec.plugin}: params: {exc}") from exc
            try:
                plugin = plugin_class(**params)
            except Exception as exc:
                raise ConfigError(f"cannot create {self.spec.plugin} with params "
                                  f"{sorted(self.spec.params)}: {type(exc).__name__}: "
                                  f"{exc}") from exc
            self._ctx = zmq.Context()
            self._bind_output()
            self._driver = driver_class(self, plugin)
        await self._driver.start()
        self._driver_started = True
        self._connect_inputs()
        await self._ready.wait()
        self.state = "ready"
        self._control.send("ready", {"instance": self.instance, "pid": os.getpid(),
                                     "subscribers": dict(self.subscribers)})
        await self._started.wait()
        self.state = "running"
        self.spawn(self._driver.run(), "run")
        await self._fatal  # only a host failure ends serving; shutdown cancels this

    def _load(self) -> tuple[type[drivers.Driver], type[Any]]:
        spec = self.spec
        try:
            cls = plugins.resolve(spec.plugin, [spec.pipeline_dir] if spec.pipeline_dir else [])
            cat = plugins.Category(spec.category) if spec.category else plugins.category(cls)
            driver = drivers.driver_for(cat, cls)
        except (plugins.PluginError, ValueError) as exc:
            raise ConfigError(f"plugin {spec.plugin!r}: {exc}") from exc
        self.category = cat.value
        return driver, cls

    def _send_hello(self, outputs: list[str]) -> None:
        self._hello_sent = True
        self._control.send("hello", {"instance": self.instance, "actor": self.actor,
                                     "pid": os.getpid(), "category": self.category,
                                     "outputs": outputs})

    def _output_topics(self, driver_class: type[drivers.Driver]) -> list[str]:
        streams = {f"{self.actor}.{s}" for s in driver_class.outputs}
        return sorted(streams | set(self.spec.expected_subscribers))

    async def _shutdown(self, code: int, reason: str) -> int:
        self.state = "stopping"
        self._remove_readers()
        tasks = [t for t in self._tasks if not t.done()]
        for task in tasks:
            task.cancel()
        deadline = max(0.1, self._stop_deadline)
        if tasks:
            await asyncio.wait(tasks, timeout=deadline / 2)
        if self._driver is not None:
            try:
                await asyncio.wait_for(self._driver.close(), timeout=deadline)
            except TimeoutError:
                reason += f"; plugin close() did not finish within {deadline:.1f} s"
                logger.warning("%s: %s", self.instance, reason)
            except Exception as exc:
                logger.warning("%s: plugin close() failed: %s: %s", self.instance,
                               type(exc).__name__, exc)
        if not self._hello_sent:  # failed before hello: still say who exited and why
            self._send_hello([])
        self._control.finish(reason, code)
        self._close_sockets()
        return code

    # -- sockets -------------------------------------------------------------------
    def _hwm(self) -> int:
        # ~2 s of 20 ms media per subscriber (HWM counts messages, per pipe).
        return max(100, self.spec.audio_queue_ms // 20)

    def _bind_output(self) -> None:
        assert self._ctx is not None and self._loop is not None
        xpub = self._ctx.socket(zmq.XPUB)
        xpub.setsockopt(zmq.LINGER, 0)
        xpub.setsockopt(zmq.SNDHWM, self._hwm())
        xpub.setsockopt(zmq.XPUB_VERBOSE, 1)
        # VERBOSER also passes every unsubscribe, so counts stay exact when a
        # consumer or tap goes away.
        xpub.setsockopt(zmq.XPUB_VERBOSER, 1)
        xpub.copy_threshold = limits.ZERO_COPY_BYTES
        try:
            xpub.bind(self.spec.data_endpoint)
        except zmq.ZMQError as exc:
            xpub.close()
            # An address in use may free up (restart helps); a bad endpoint will not.
            error = RuntimeError if exc.errno == zmq.EADDRINUSE else ConfigError
            raise error(f"cannot bind {self.spec.data_endpoint}: {exc}") from exc
        self._xpub = xpub
        self._add_reader(xpub, self._read_xpub)
        self._loop.call_later(_HOUSEKEEPING_S, self._housekeeping)
        self._read_xpub()

    def _connect_inputs(self) -> None:
        assert self._ctx is not None and self._loop is not None
        if self.spec.is_replica:
            self._connect_work()
            return
        sub = self._ctx.socket(zmq.SUB)
        sub.setsockopt(zmq.LINGER, 0)
        sub.setsockopt(zmq.RCVHWM, self._hwm())
        endpoints: dict[str, None] = {}
        for spec_input in self.spec.inputs:
            self._add_input(spec_input)
            sub.setsockopt(zmq.SUBSCRIBE, spec_input.topic.encode())
            endpoints.update(dict.fromkeys(spec_input.endpoints))
        for endpoint in endpoints:
            try:
                sub.connect(endpoint)
            except zmq.ZMQError as exc:
                sub.close()
                raise ConfigError(f"cannot connect to input endpoint {endpoint}: {exc}") from exc
        self._sub = sub
        self._add_reader(sub, self._read_sub)
        self._read_sub()

    def _add_input(self, spec_input: InputSpec) -> None:
        fps, max_age = spec_input.fps, spec_input.max_age_ms
        self._inputs[spec_input.topic] = _Input(
            spec_input.topic, spec_input.epoch_bound,
            interval_s=None if fps is None else 1.0 / fps,
            max_age_ns=None if max_age is None else int(max_age * 1e6))

    def _connect_work(self) -> None:
        """A replica: inputs arrive as work items from the dispatcher (runtime/work.py)."""
        assert self._ctx is not None and self.spec.work_endpoint is not None
        for spec_input in self.spec.inputs:
            self._add_input(spec_input)
        try:
            self._work = WorkLink(self._ctx, self.spec.work_endpoint, self.instance,
                                  self.spec.max_inflight, self._accept_work)
        except zmq.ZMQError as exc:
            raise ConfigError(f"cannot connect to dispatcher {self.spec.work_endpoint}: "
                              f"{exc}") from exc
        self._add_reader(self._work.socket, self._read_work)
        self._announce()
        self._read_work()

    def _read_work(self) -> None:
        if self._work is not None:
            self._work.read()

    def _accept_work(self, item: int, frames: Sequence[Any]) -> None:
        self._accept(frames, item)

    def _announce(self) -> None:
        if self._work is not None:
            self._last_ready = time.monotonic()
            self._work.announce()

    def _finish(self, msg: Message) -> None:
        """A work item was handled or dropped: tell the dispatcher (replicas only)."""
        item = self._work_items.pop(id(msg), None)
        if item is not None and self._work is not None:
            self._work.finish(item)

    def _discard(self, reason: str, msgs: list[Message]) -> None:
        self.count_drop(reason, len(msgs))
        if self._work_items:
            for msg in msgs:
                self._finish(msg)

    # -- used by the dispatcher (runtime/dispatcher.py) ------------------------------
    def add_socket_reader(self, sock: zmq.Socket[bytes], callback: Callable[[], None]) -> None:
        """Read ``sock`` on the loop whenever its FD signals (edge-triggered: drain it)."""
        self._add_reader(sock, callback)

    def zmq_context(self) -> zmq.Context[zmq.Socket[bytes]]:
        """The host's ZeroMQ context (sockets made from it are closed by their owner)."""
        assert self._ctx is not None
        return self._ctx

    def input_max_age_ns(self, topic: str) -> int | None:
        """The staleness bound of input ``topic`` in ns, if it has one."""
        route = self._inputs.get(topic)
        return None if route is None else route.max_age_ns

    def _add_reader(self, sock: zmq.Socket[bytes], callback: Callable[[], None]) -> None:
        assert self._loop is not None
        fd = cast(int, sock.getsockopt(zmq.FD))
        self._loop.add_reader(fd, callback)
        self._readers.append(fd)

    def _remove_readers(self) -> None:
        if self._loop is not None:
            for fd in self._readers:
                self._loop.remove_reader(fd)
        self._readers.clear()

    def _close_sockets(self) -> None:
        if self._work is not None:
            self._work.close()
            self._work = None
        for sock in (self._sub, self._xpub):
            if sock is not None:
                sock.close(linger=0)
        self._sub = self._xpub = None
        if self._ctx is not None:
            self._ctx.term()
            self._ctx = None

    def _housekeeping(self) -> None:
        # Sending on the XPUB can consume the FD's edge while a subscription is
        # pending; a slow periodic check makes sure it is still read.
        if self._xpub is None or self._loop is None:
            return
        self._read_xpub()
        if self._work is not None:
            self._read_work()
            if time.monotonic() - self._last_ready >= self.spec.heartbeat_interval_s:
                self._announce()
        self._loop.call_later(_HOUSEKEEPING_S, self._housekeeping)

    def _send(self, frames: list[Frame]) -> None:
        assert self._xpub is not None, "publish() before the output socket is bound"
        # copy=False with copy_threshold: only payloads >= ZERO_COPY_BYTES skip the copy.
        self._xpub.send_multipart(frames, zmq.NOBLOCK, copy=False)
        self.n_out += 1

    def _new_output(self, stream: str) -> _Output:
        out = _Output(topics.topic(self.actor, stream))
        self._outputs[stream] = out
        return out

    # -- reading -------------------------------------------------------------------
    def _read_xpub(self) -> None:
        sock = self._xpub
        if sock is None:
            return
        while True:
            try:
                frame = sock.recv(zmq.NOBLOCK)
            except zmq.Again:
                break
            if frame and frame[0] in (0, 1):
                topic = frame[1:].decode("utf-8", "replace")
                count = self.subscribers.get(topic, 0) + (1 if frame[0] else -1)
                self.subscribers[topic] = max(0, count)
        if not self._ready.is_set() and all(
                self.subscribers.get(t, 0) >= n
                for t, n in self.spec.expected_subscribers.items()):
            self._ready.set()

    def _read_sub(self) -> None:
        sock = self._sub
        if sock is None:
            return
        accept = self._accept
        for _ in range(MAX_BATCH):
            # The FD is edge-triggered: read while ZMQ_EVENTS says so (asking is
            # cheaper than the zmq.Again exception that an empty recv raises).
            if not cast(int, sock.getsockopt(zmq.EVENTS)) & zmq.POLLIN:
                return
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
        assert self._loop is not None
        self._loop.call_soon(self._read_sub)  # more may be waiting: let dispatchers run first

    def _accept(self, frames: Sequence[Frame | zmq.Frame], item: int | None = None) -> None:
        self.n_in += 1
        try:
            msg = decode(frames)
        except WireError as err:
            self._wire_drop(err)
            if item is not None and self._work is not None:
                self._work.finish(item)
            return
        if item is not None:
            self._work_items[id(msg)] = item
        if item is None:  # a replica sees a share of the sequence; its dispatcher counts
            # Sequence first: a stale message still counts as received in order.
            key = (msg.source, msg.topic)
            last = self._seqs.get(key)
            seq = msg.seq
            if last is not None and seq > last + 1:
                self.count_drop("lost", seq - last - 1)
            # seq <= last: the producer restarted; tracking restarts from here.
            self._seqs[key] = seq
        route = self._inputs.get(msg.topic)
        if route is None:
            self._discard("unsubscribed", [msg])
            return
        if route.epoch_bound and msg.epoch < self._epoch:
            self._discard("stale", [msg])
            return
        kind = msg.kind
        inbox: _Queue | None = (route.audio if kind is Kind.AUDIO
                                else route.video if kind is Kind.VIDEO else route.items)
        if inbox is None:  # not "or": an empty queue is falsy
            inbox = self._open_queue(route, kind)
        inbox.put(msg)

    def _open_queue(self, route: _Input, kind: Kind) -> _Queue:
        assert self._loop is not None
        loop = self._loop
        inbox: _Queue
        if kind is Kind.AUDIO:
            # Agent audio (TTS) comes faster than real time, a sentence per
            # message, and a barge-in flushes it: its bound only stops runaway
            # growth. Live audio (a microphone) is bounded to stay current.
            limit = AGENT_AUDIO_QUEUE_MS if route.epoch_bound else self.spec.audio_queue_ms
            inbox = route.audio = _AudioFifo(loop, max(limit, self.spec.audio_queue_ms),
                                             self._discard)
        elif kind is Kind.VIDEO:
            inbox = route.video = _Mailbox(loop, self._discard)
        else:
            inbox = route.items = _ItemFifo(loop, ITEM_QUEUE_LEN, self._discard)
        task = loop.create_task(self._dispatch(inbox, route),
                                name=f"{self.instance}:{route.topic}")
        self._tasks.add(task)
        task.add_done_callback(self._critical_done)
        return inbox

    async def _dispatch(self, inbox: _Queue, route: _Input) -> None:
        driver = self._driver
        assert driver is not None, "inputs are connected only after the driver exists"
        throttle = route.interval_s if isinstance(inbox, _Mailbox) else None
        next_due = float("-inf")
        while True:
            if throttle is not None:
                assert isinstance(inbox, _Mailbox)
                await self._wait_slot(inbox, next_due)
            msg = await inbox.get()
            if throttle is not None:
                # A fixed grid keeps the average rate exact despite jitter; never
                # two frames closer than half an interval after a long gap.
                assert self._loop is not None
                next_due = max(next_due + throttle, self._loop.time() + throttle / 2)
            if route.epoch_bound and msg.epoch < self._epoch:  # the epoch moved while it waited
                self._discard("stale", [msg])
                continue
            if route.max_age_ns is not None and time.time_ns() - msg.ts_ns > route.max_age_ns:
                self._discard("expired", [msg])
                continue
            # Results of a frame or of a replica's work item name their input.
            token = None
            if msg.kind is Kind.VIDEO or self._work is not None:
                token = drivers.CURRENT_INPUT.set(
                    InputRef(msg.source, msg.seq, msg.fields.get("pts"), msg.ts_ns))
            try:
                await driver.on_input(msg)
            except WireError as err:
                self._wire_drop(err)
            except Exception as exc:
                driver.fail(exc, f"input {msg.topic}")
            finally:
                if token is not None:
                    drivers.CURRENT_INPUT.reset(token)
                if self._work_items:
                    self._finish(msg)

    async def _wait_slot(self, inbox: _Mailbox, next_due: float) -> None:
        """Sleep until the next fps slot; frames arriving meanwhile replace each other."""
        assert self._loop is not None
        delay = next_due - self._loop.time()
        if delay > 0:
            inbox.throttling = True
            try:
                await asyncio.sleep(delay)
            finally:
                inbox.throttling = False

    def _wire_drop(self, err: WireError) -> None:
        reason = err.reason.value
        self.count_drop(reason)
        # Reported as an error event too, at most once a second per reason.
        now = time.monotonic()
        if now - self._last_error_event.get(reason, -1e9) >= _ERROR_EVENT_INTERVAL_S:
            self._last_error_event[reason] = now
            logger.warning("%s: dropped a bad input message (%s); more are only counted "
                           "for a second", self.instance, err)
            self._publish_error(err, f"input dropped ({reason})")

    # -- task bookkeeping ----------------------------------------------------------
    def _task_done(self, task: asyncio.Task[Any], context: str) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            driver = self._driver
            if driver is not None:
                driver.fail(exc, context)
            else:
                self.fail(exc, context)

    def _critical_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if task.cancelled() or self._fatal is None or self._fatal.done():
            return
        exc = task.exception()
        if exc is not None:
            self._fatal.set_exception(exc)

    # -- called from the control thread (via the loop) ------------------------------
    def _on_epoch(self, epoch: int) -> None:
        if self._driver is not None and self._driver_started and not self._stop.is_set():
            self.spawn(self._driver.on_epoch(epoch), "on_epoch")

    def _on_start(self) -> None:
        self._started.set()

    def _set_epoch(self, epoch: int) -> bool:
        """Control thread: store a newer epoch at once; True if it moved."""
        if epoch <= self._epoch:
            return False
        self._epoch = epoch
        return True

    def post(self, callback: Callable[..., None], *args: Any) -> None:
        """Run ``callback(*args)`` on the loop; safe from any thread."""
        loop = self._loop
        if loop is not None:
            with contextlib.suppress(RuntimeError):  # loop already closed
                loop.call_soon_threadsafe(callback, *args)

    def loop_lag_ms(self) -> float:
        """Control thread: the worst loop lag since the last call, in ms.

        One probe is posted at a time; while it waits, its age is the lag, so
        a loop blocked for 2 s reports a growing lag during the block.
        """
        now = time.monotonic()
        with self._lag_lock:
            lag = self._lag_max_s
            self._lag_max_s = 0.0
            if self._probe_sent is not None:
                lag = max(lag, now - self._probe_sent)
            else:
                self._probe_sent = now
                self.post(self._probe_done, now)
        return lag * 1000.0

    def _probe_done(self, sent: float) -> None:
        lag = time.monotonic() - sent
        with self._lag_lock:
            self._probe_sent = None
            self._lag_max_s = max(self._lag_max_s, lag)

    def heartbeat(self, control_drops: Mapping[str, int]) -> dict[str, Any]:
        """Control thread: the heartbeat's args (counters are read without the loop)."""
        drops = self.drops.copy()
        drops.update(control_drops)
        inputs = self._inputs.copy()
        return {
            "instance": self.instance,
            "pid": os.getpid(),
            "counters": {"in": self.n_in, "out": self.n_out, "drops": drops},
            "loop_lag_ms": round(self.loop_lag_ms(), 3),
            "queue": {topic: route.depth() for topic, route in inputs.items()},
            "state": self.state,
            "epoch": self._epoch,
            "category": self.category,
            "subscribers": self.subscribers.copy(),
            **self._work_figures(),
        }

    def _work_figures(self) -> dict[str, Any]:
        driver, link = self._driver, self._work
        if isinstance(driver, Dispatcher):
            return {"work": driver.status()}
        if link is not None:
            return {"work": {"holding": len(link.holding), "received": link.received,
                             "done": link.done, "capacity": link.capacity}}
        return {}


# -- control thread ---------------------------------------------------------------
class _Control(threading.Thread):
    """Control plane on its own thread and sockets (the loop may be blocked)."""

    def __init__(self, host: ActorHost, parent_pid: int) -> None:
        super().__init__(name=f"{host.instance}-control", daemon=True)
        self._host = host
        self._spec = host.spec
        self._parent_pid = parent_pid
        self._outbox: queue.SimpleQueue[tuple[str, dict[str, Any]]] = queue.SimpleQueue()
        self._wake_r = self._wake_w = -1
        self._seq = -1
        self._hello_sent = False
        self._done = False
        self._hard_deadline: float | None = None
        self.drops: dict[str, int] = {}

    # -- main-thread side ----------------------------------------------------------
    def start(self) -> None:
        """Start the thread (with the pipe that wakes it for queued reports)."""
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        super().start()

    def send(self, op: str, args: dict[str, Any]) -> None:
        """Queue a report for the supervisor; the control thread sends it at once."""
        self._outbox.put((op, args))
        if self._wake_w >= 0:
            with contextlib.suppress(BlockingIOError, OSError):
                os.write(self._wake_w, b"\0")

    def finish(self, reason: str, code: int, timeout: float = 2.0) -> None:
        """Send ``bye`` and stop the thread (waits at most ``timeout``)."""
        if not self.is_alive():
            return
        self.send("bye", {"instance": self._host.instance, "pid": os.getpid(),
                          "reason": reason, "code": code})
        self.send("", {})  # an empty op ends the thread once bye is out
        self.join(timeout)
        if not self.is_alive():  # closed here, never while send() may still write
            os.close(self._wake_r)
            os.close(self._wake_w)
            self._wake_r = self._wake_w = -1

    # -- thread side ---------------------------------------------------------------
    def run(self) -> None:
        ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        sub = ctx.socket(zmq.SUB)
        sub.setsockopt(zmq.LINGER, 0)
        for topic in _CONTROL_TOPICS:
            sub.setsockopt(zmq.SUBSCRIBE, topic.encode())
        sub.connect(self._spec.sys_pub)
        push = ctx.socket(zmq.PUSH)
        push.setsockopt(zmq.LINGER, 1000)  # let bye reach the supervisor
        push.setsockopt(zmq.SNDHWM, 1000)
        push.connect(self._spec.sys_pull)
        poller = zmq.Poller()
        poller.register(sub, zmq.POLLIN)
        poller.register(self._wake_r, zmq.POLLIN)
        interval = self._spec.heartbeat_interval_s
        next_beat = time.monotonic() + interval
        try:
            while not self._done:
                wait_ms = max(0.0, (next_beat - time.monotonic()) * 1000.0)
                ready = dict(poller.poll(int(wait_ms) + 1))
                if sub in ready:
                    self._read(sub)
                if self._wake_r in ready:
                    self._flush(push)
                now = time.monotonic()
                if now >= next_beat:
                    self._beat(push, now)
                    next_beat = max(next_beat + interval, now + interval / 2)
        except Exception:
            logger.exception("%s: control thread failed; exiting", self._host.instance)
            _hard_exit(EXIT_FAILURE)
        finally:
            sub.close(linger=0)
            push.close()
            ctx.term()

    def _report(self, push: zmq.Socket[bytes], op: str, args: dict[str, Any]) -> None:
        self._seq += 1
        frames = encode_control(REPORT_TOPIC, Control(op, args), seq=self._seq,
                                epoch=self._host.epoch, source=self._host.instance)
        try:
            push.send_multipart(frames, zmq.NOBLOCK)
        except zmq.Again:  # supervisor gone or stalled: the ppid check handles the former
            self.drops["control_unsent"] = self.drops.get("control_unsent", 0) + 1

    def _flush(self, push: zmq.Socket[bytes]) -> None:
        with contextlib.suppress(BlockingIOError):
            while os.read(self._wake_r, 4096):
                pass
        while True:
            try:
                op, args = self._outbox.get_nowait()
            except queue.Empty:
                return
            if not op:
                self._done = True
                return
            self._report(push, op, args)
            self._hello_sent = self._hello_sent or op == "hello"

    def _beat(self, push: zmq.Socket[bytes], now: float) -> None:
        if os.getppid() != self._parent_pid:
            logger.error("%s: supervisor (pid %d) is gone; exiting", self._host.instance,
                         self._parent_pid)
            _hard_exit(EXIT_FAILURE)
        if self._hard_deadline is not None and now > self._hard_deadline:
            self._report(push, "bye", {"instance": self._host.instance, "pid": os.getpid(),
                                       "code": EXIT_FAILURE,
                                       "reason": "shutdown deadline passed; forced exit"})
            push.close(linger=500)
            _hard_exit(EXIT_FAILURE)
        if self._hello_sent:
            self._report(push, "heartbeat", self._host.heartbeat(self.drops))

    def _read(self, sub: zmq.Socket[bytes]) -> None:
        while True:
            try:
                frames = sub.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            try:
                msg = decode(frames)
                if msg.kind is not Kind.CONTROL:
                    continue
                self._handle(msg.control(), msg.epoch)
            except WireError as err:
                key = f"control_{err.reason.value}"
                self.drops[key] = self.drops.get(key, 0) + 1
            except (TypeError, ValueError) as exc:
                logger.warning("%s: bad control message dropped: %s", self._host.instance, exc)
                self.drops["control_invalid"] = self.drops.get("control_invalid", 0) + 1

    def _targeted(self, args: Mapping[str, Any]) -> bool:
        targets = args.get("targets") or []
        return not targets or self._host.instance in targets

    def _handle(self, control: Control, header_epoch: int) -> None:
        host, args = self._host, control.args
        if control.op == "epoch":
            epoch = args.get("epoch", header_epoch)
            if isinstance(epoch, int) and not isinstance(epoch, bool) and host._set_epoch(epoch):
                host.post(host._on_epoch, epoch)
        elif control.op == "start" and self._targeted(args):
            host.post(host._on_start)
        elif control.op == "shutdown" and self._targeted(args):
            deadline = float(args.get("deadline_s") or _SHUTDOWN_DEADLINE_S)
            # If the loop is blocked the graceful path cannot run; leave by itself.
            self._hard_deadline = time.monotonic() + deadline + 1.0
            host.post(host.request_shutdown, "shutdown", deadline)


# -- process entry point ----------------------------------------------------------
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """Linux: have the kernel SIGKILL this process when its parent dies."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
            logger.warning("prctl(PR_SET_PDEATHSIG) failed: errno %d", ctypes.get_errno())
    except (OSError, AttributeError) as exc:
        logger.warning("prctl(PR_SET_PDEATHSIG) unavailable: %s", exc)


def _hard_exit(code: int) -> NoReturn:
    logging.shutdown()
    with contextlib.suppress(Exception):
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(code)


def main(argv: list[str] | None = None) -> NoReturn:
    """Run the actor instance described by the spec file named in ``argv``."""
    parent = os.getppid()
    _die_with_parent()
    if os.getppid() != parent:  # the parent died before prctl took effect
        _hard_exit(EXIT_FAILURE)
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m va_actors.runtime.host SPEC.json", file=sys.stderr)
        _hard_exit(2)
    try:
        spec = ActorSpec.read(args[0])
    except SpecError as exc:
        print(f"va-actors host: {exc}", file=sys.stderr)
        _hard_exit(EXIT_CONFIG)
    logging.basicConfig(
        level=spec.log_level.upper(), stream=sys.stderr,
        format=f"%(asctime)s %(levelname)s [{spec.instance}] %(name)s: %(message)s")
    # The control thread must get the GIL quickly when an epoch arrives while the
    # plugin runs Python code: 1 ms instead of the default 5 ms switch interval.
    sys.setswitchinterval(CONTROL_SWITCH_INTERVAL_S)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        code = loop.run_until_complete(ActorHost(spec, parent_pid=parent).run())
    except BaseException:
        logger.exception("%s: actor host failed", spec.instance)
        code = EXIT_FAILURE
    # os._exit: a plugin's stray non-daemon thread must not keep the process alive.
    _hard_exit(code)


if __name__ == "__main__":
    main()
