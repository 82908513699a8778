"""The actor host's asyncio side: one plugin instance, its sockets and its driver.

One process per instance (docs/runtime.md, "Actor host"). Two threads:

* **Main thread: asyncio loop.** Owns the data sockets: one XPUB bound at
  ``spec.data_endpoint`` (what this instance publishes) and one SUB connected to
  every input endpoint. Both are read with ``loop.add_reader`` on the ZeroMQ
  FD. Each inbound message is decoded (a :class:`WireError` is dropped and
  counted by reason), tracked per ``(source, topic)`` for sequence gaps
  (``lost``), checked against the epoch (``stale``), and put in a bounded
  per-input queue that one dispatcher task per input drains into the category
  driver (:mod:`va_actors.runtime.drivers`).
* **Control thread** (:class:`~.control.ControlThread`), with its own ZeroMQ
  context: SUB on ``spec.sys_pub`` and PUSH to ``spec.sys_pull``. It sends
  hello / ready / heartbeat / bye, stores a new epoch at once (the data path
  drops stale input even while the plugin blocks its loop), measures loop
  lag, and exits the process if the supervisor is gone.

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
depth}, state, epoch, category, subscribers {topic: n}; ``replay`` {counter:
n} and ``seen`` {topic: {source: [seq, ts]}} when it has them), ``bye``
(reason, code), ``replay`` (a restarted consumer's request, runtime/replay/).
``state`` is ``starting``, ``ready`` (waiting for ``start``), ``running`` or
``stopping``; ``start`` is idempotent, so a supervisor may send
it again while a heartbeat still says ``ready`` (a PUB can lose the first
message to a subscriber that just joined). The control SUB takes exactly
``sys.epoch`` and ``sys.ctl``, not the metrics traffic on ``sys.``.

Exit codes: 0 after a graceful shutdown, 1 on a failure (the supervisor
restarts per policy), 78 (``EX_CONFIG``) when the spec or the plugin reference
or its parameters are wrong (restarting cannot help).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Coroutine, Mapping
from typing import Any, cast

import zmq

from va_actors.core.events.base import PluginErrorEvent
from va_actors.runtime import drivers, env_refs, plugins
from va_actors.runtime.categories import Category
from va_actors.runtime.dispatcher import Dispatcher
from va_actors.runtime.exits import EXIT_CONFIG, EXIT_FAILURE, EXIT_OK
from va_actors.runtime.host.control import SHUTDOWN_DEADLINE_S, ControlThread, LagProbe
from va_actors.runtime.host.inputs import Inputs
from va_actors.runtime.host.output import BindError, Output, Publishable
from va_actors.runtime.host.replay_client import FIRST_REQUEST_S, ReplayClient
from va_actors.runtime.host.warm import Prepared
from va_actors.runtime.replay.protocol import ReplayRequest
from va_actors.runtime.replay.ring import RingLimits
from va_actors.runtime.spec import ActorSpec
from va_actors.runtime.transport import Transport, TransportError
from va_actors.runtime.work import WorkLink
from va_actors.wire.messages import InputRef

__all__ = ["ActorHost", "ConfigError"]

logger = logging.getLogger("va_actors.runtime.host")

_HOUSEKEEPING_S = 0.1
_REPLAY_TICK_S = 0.05
_REPLAY_BATCH = 32
"""Replayed messages sent per loop turn: a burst of a whole ring would overrun the
socket's high-water mark (PUB drops silently), so the loop and the pipe get a turn."""
RECONNECT_IVL_MS = 10
RECONNECT_IVL_MAX_MS = 200


class ConfigError(Exception):
    """The plugin cannot be loaded or built from the spec; the process exits with 78."""


class ActorHost:
    """Runs one plugin instance from an :class:`ActorSpec` (see the module docstring).

    Drivers use :meth:`publish`, :attr:`epoch`, :meth:`count_drop`,
    :meth:`wait_started`, :meth:`spawn` and :meth:`fail`.
    """

    def __init__(self, spec: ActorSpec, *, parent_pid: int | None = None,
                 prepared: Prepared | None = None) -> None:
        self.spec = spec
        self._prepared = prepared
        self.actor = spec.actor
        self.instance = spec.instance
        self.category = spec.category
        self.state = "starting"
        self.drops: dict[str, int] = {}
        self._epoch = spec.epoch
        self._inputs: Inputs | None = None
        self._output = Output(spec.actor, spec.instance, spec.expected_subscribers,
                              RingLimits(spec.replay_s, spec.replay_bytes))
        self._replay_client: ReplayClient | None = None
        self._replay_lock = asyncio.Lock()
        self.replay_out = {"replayed_out": 0, "too_old_out": 0, "requests": 0}
        """Producer side: messages replayed to restarted consumers, too old to, requests."""
        self._tasks: set[asyncio.Task[Any]] = set()
        self._driver: drivers.Driver | Dispatcher | None = None
        self._work: WorkLink | None = None
        self._last_ready = 0.0
        self._driver_started = False
        self._hello_sent = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = threading.get_ident()
        self._ctx: zmq.Context[zmq.Socket[bytes]] | None = None
        self._link: Transport | None = None
        self._sub: zmq.Socket[bytes] | None = None
        self._readers: list[int] = []
        self._ready = asyncio.Event()
        self._started = asyncio.Event()
        self._stop = asyncio.Event()
        self._stop_reason = "shutdown"
        self._stop_deadline = SHUTDOWN_DEADLINE_S
        self._fatal: asyncio.Future[None] | None = None
        self._lag = LagProbe(self.post)
        self._control = ControlThread(self, os.getppid() if parent_pid is None else parent_pid)

    # -- public API for drivers ---------------------------------------------------
    @property
    def n_out(self) -> int:
        """Messages published so far."""
        return self._output.sent

    @property
    def n_in(self) -> int:
        """Messages received so far."""
        return 0 if self._inputs is None else self._inputs.received

    @property
    def subscribers(self) -> dict[str, int]:
        """Subscribers per output topic, as the XPUB reports them."""
        return self._output.subscribers

    @property
    def epoch(self) -> int:
        """The session epoch in force (set by the control thread)."""
        return self._epoch

    def publish(self, stream: str, value: Publishable, *, epoch: int | None = None,
                ref: InputRef | None = None, final: bool = False, **fields: Any) -> None:
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
        self._output.send(stream, value, epoch=stamp, ref=ref, final=final, fields=fields)

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
        if self._output.socket is None:
            return
        try:
            self.publish("events", event_class(error=error, context=context,
                                               plugin_name=self.actor))
        except Exception:  # an unsendable error must not turn into a crash loop
            logger.exception("%s: cannot publish the error event", self.instance)

    def request_shutdown(self, reason: str = "shutdown",
                         deadline_s: float = SHUTDOWN_DEADLINE_S) -> None:
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
            self._open_context()
            self._bind_output()
            assert self.spec.work_endpoint is not None
            self._driver = Dispatcher(self, self.spec.work_endpoint)
        elif self._prepared is not None and self._prepared.driver is not None:
            await self._serve_prepared(self._prepared, self._prepared.driver)
        else:
            driver_class, plugin_class = self._load()
            self._send_hello(self._output_topics(driver_class, plugin_class))
            plugin = self._create(plugin_class)
            self._open_context()
            self._bind_output()
            self._driver = driver_class(self, plugin)
        assert self._driver is not None
        if not self._driver_started:
            await self._driver.start()
            self._driver_started = True
        if isinstance(self._driver, drivers.Driver):
            await self._driver.attach()
        self._connect_inputs()
        await self._ready.wait()
        self.state = "ready"
        self._control.send("ready", {"instance": self.instance, "pid": os.getpid(),
                                     "subscribers": dict(self._output.subscribers)})
        await self._started.wait()
        self.state = "running"
        self.spawn(self._driver.run(), "run")
        await self._fatal  # only a host failure ends serving; shutdown cancels this

    async def _serve_prepared(self, prepared: Prepared, driver: drivers.Driver) -> None:
        """A warm host: the plugin is built and started; bind, then hand its output over."""
        self._check_prepared(prepared)
        self._send_hello(self._output_topics(prepared.driver_class, prepared.plugin_class))
        self._open_context()
        self._bind_output()
        self._driver = driver
        driver.host = self  # the proxy keeps forwarding for what captured it
        prepared.proxy.attach(self)
        self._driver_started = True
        if self._epoch > 0:  # warmed in epoch 0; the session has moved on
            await driver.on_epoch(self._epoch)

    def _check_prepared(self, prepared: Prepared) -> None:
        warm, spec = prepared.spec, self.spec
        if (warm.actor, warm.plugin, warm.params) != (spec.actor, spec.plugin, spec.params):
            raise ConfigError(f"warm host prepared {warm.plugin!r} for {warm.actor!r}, but "
                              f"was assigned {spec.plugin!r} for {spec.actor!r}")
        self.category = warm.category or self.category

    def _create(self, plugin_class: type) -> Any:
        os.environ.update(self.spec.env)  # session variables, before the params name them
        try:
            params = env_refs.expand(self.spec.params, os.environ)
        except ValueError as exc:  # unset or malformed: the values are not logged
            raise ConfigError(f"cannot create {self.spec.plugin}: params: {exc}") from exc
        try:
            return plugin_class(**params)
        except Exception as exc:
            raise ConfigError(f"cannot create {self.spec.plugin} with params "
                              f"{sorted(self.spec.params)}: {type(exc).__name__}: "
                              f"{exc}") from exc

    def adopt(self, tasks: set[asyncio.Task[Any]]) -> None:
        """Track tasks a warm plugin started before this host existed (cancelled at exit)."""
        self._tasks.update(t for t in tasks if not t.done())

    def _load(self) -> tuple[type[drivers.Driver], type[Any]]:
        if self._prepared is not None:  # a session-specific warm host: imported already
            self.category = self._prepared.spec.category or self.category
            return self._prepared.driver_class, self._prepared.plugin_class
        spec = self.spec
        try:
            cls = plugins.resolve(spec.plugin, [spec.pipeline_dir] if spec.pipeline_dir else [])
            cat = Category(spec.category) if spec.category else plugins.category(cls)
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

    def _output_topics(self, driver_class: type[drivers.Driver], plugin_class: type) -> list[str]:
        declared = getattr(plugin_class, "outputs", None) if driver_class is drivers.NodeDriver \
            else None
        streams = {f"{self.actor}.{s}" for s in (*driver_class.outputs, *(declared or ()))}
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
    def _open_context(self) -> None:
        self._ctx = zmq.Context()
        try:
            self._link = Transport.from_env(self._ctx, self.spec.transport_spec)
        except TransportError as exc:
            raise ConfigError(f"transport: {exc}") from exc

    def _hwm(self) -> int:
        # ~2 s of 20 ms media per subscriber (HWM counts messages, per pipe).
        return max(100, self.spec.audio_queue_ms // 20)

    def _bind_output(self) -> None:
        assert self._ctx is not None and self._loop is not None
        try:
            self._output.bind(self._ctx, self.spec.data_endpoint, self._hwm(),
                              link=self._link, extra=self.spec.extra_endpoints)
        except BindError as exc:
            raise (RuntimeError(str(exc)) if exc.transient else ConfigError(str(exc))) from exc
        assert self._output.socket is not None
        self._add_reader(self._output.socket, self._read_xpub)
        self._loop.call_later(_HOUSEKEEPING_S, self._housekeeping)
        self._read_xpub()

    def _connect_inputs(self) -> None:
        assert self._ctx is not None and self._loop is not None and self._driver is not None
        inputs = self._inputs = Inputs(self, self.spec, self._loop, self._driver.on_input)
        if self.spec.is_replica:
            self._connect_work(inputs)
            return
        client = self._replay_client = inputs.replay = ReplayClient(self.spec, self._control.send)
        client.begin()
        if client.waiting:
            self._loop.call_later(FIRST_REQUEST_S, self._replay_tick)
        sub = self._ctx.socket(zmq.SUB)
        sub.setsockopt(zmq.LINGER, 0)
        sub.setsockopt(zmq.RCVHWM, self._hwm())
        # A restarted producer binds the same endpoint again: retry at 10 ms, not
        # ZeroMQ's 100 ms, doubling to 200 ms for one that stays away.
        sub.setsockopt(zmq.RECONNECT_IVL, RECONNECT_IVL_MS)
        sub.setsockopt(zmq.RECONNECT_IVL_MAX, RECONNECT_IVL_MAX_MS)
        endpoints: dict[str, None] = {}
        for spec_input in self.spec.inputs:
            sub.setsockopt(zmq.SUBSCRIBE, spec_input.topic.encode())
            endpoints.update(dict.fromkeys(spec_input.endpoints))
        assert self._link is not None
        for endpoint in sorted(endpoints, key=lambda e: e.startswith("tcp:")):  # ipc first
            try:
                self._link.connect(sub, endpoint)
            except (zmq.ZMQError, TransportError) as exc:
                sub.close()
                raise ConfigError(f"cannot connect to input endpoint {endpoint}: {exc}") from exc
        self._sub = sub
        self._add_reader(sub, self._read_sub)
        self._read_sub()

    def _read_sub(self) -> None:
        if self._sub is not None and self._inputs is not None and \
                self._inputs.read_sub(self._sub):
            assert self._loop is not None  # more may be waiting: let dispatchers run first
            self._loop.call_soon(self._read_sub)

    def _replay_tick(self) -> None:
        """Ask again for replays still pending; hand on what a deadline released."""
        client, inputs = self._replay_client, self._inputs
        if client is None or inputs is None or self._loop is None or self._stop.is_set():
            return
        inputs.admit_all(client.tick())
        if client.waiting:
            self._loop.call_later(_REPLAY_TICK_S, self._replay_tick)

    def on_replay(self, args: dict[str, Any]) -> None:
        """Loop: a restarted consumer asks for what it missed; answer on the data socket."""
        try:
            request = ReplayRequest.from_args(args)
        except ValueError as exc:
            logger.warning("%s: bad replay request dropped: %s", self.instance, exc)
            return
        if self._output.socket is None or request.topic.partition(".")[0] != self.actor:
            return
        self.replay_out["requests"] += 1
        self.spawn(self._answer_replay(request), f"replay to {request.to}")

    async def _answer_replay(self, request: ReplayRequest) -> None:
        # One answer at a time: two interleaved would look like holes to the consumer.
        async with self._replay_lock:
            answer = self._output.replay_answer(request)
            for i, frames in enumerate(answer.messages):
                if i and i % _REPLAY_BATCH == 0:
                    await asyncio.sleep(0.001)
                if self._output.socket is None:
                    return
                self._output.send_frames(frames)
            if self._output.socket is not None:
                self._output.send_frames(answer.end)
            self.replay_out["replayed_out"] += len(answer.messages)
            self.replay_out["too_old_out"] += answer.missed

    def _replay_figures(self) -> dict[str, Any]:
        """Heartbeat fields: replay counters of both sides, the last-seen numbers."""
        figures: dict[str, int] = {k: v for k, v in self.replay_out.items() if v}
        client = self._replay_client
        if client is None:
            return {"replay": figures} if figures else {}
        counters = client.merge.counters
        figures.update({k: v for k, v in vars(counters).copy().items() if v})
        return {"replay": figures, "seen": client.seen_report()}

    def _connect_work(self, inputs: Inputs) -> None:
        """A replica: inputs arrive as work items from the dispatcher (runtime/work.py)."""
        assert self._ctx is not None and self.spec.work_endpoint is not None
        try:
            link = WorkLink(self._ctx, self.spec.work_endpoint, self.instance,
                            self.spec.max_inflight, lambda item, frames: inputs.accept(
                                frames, item), self._link)
        except (zmq.ZMQError, TransportError) as exc:
            raise ConfigError(f"cannot connect to dispatcher {self.spec.work_endpoint}: "
                              f"{exc}") from exc
        inputs.work = self._work = link
        self._add_reader(link.socket, self._read_work)
        self._announce()
        self._read_work()

    def _read_work(self) -> None:
        if self._work is not None:
            self._work.read()

    def _announce(self) -> None:
        if self._work is not None:
            self._last_ready = time.monotonic()
            self._work.announce()

    # -- used by the dispatcher (runtime/dispatcher.py) ------------------------------
    def add_socket_reader(self, sock: zmq.Socket[bytes], callback: Callable[[], None]) -> None:
        """Read ``sock`` on the loop whenever its FD signals (edge-triggered: drain it)."""
        self._add_reader(sock, callback)

    def zmq_context(self) -> zmq.Context[zmq.Socket[bytes]]:
        """The host's ZeroMQ context (sockets made from it are closed by their owner)."""
        assert self._ctx is not None
        return self._ctx

    def zmq_transport(self) -> Transport:
        """How the host's sockets bind and connect (runtime/transport.py)."""
        assert self._link is not None
        return self._link

    def input_max_age_ns(self, topic: str) -> int | None:
        """The staleness bound of input ``topic`` in ns, if it has one."""
        return None if self._inputs is None else self._inputs.max_age_ns(topic)

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
        if self._sub is not None:
            self._sub.close(linger=0)
            self._sub = None
        self._output.close()
        if self._replay_client is not None:
            self._replay_client.close()
        if self._link is not None:
            self._link.close()
        if self._ctx is not None:
            self._ctx.term()
            self._ctx = None

    def _housekeeping(self) -> None:
        # Sending on the XPUB can consume the FD's edge while a subscription is
        # pending; a slow periodic check makes sure it is still read.
        if self._output.socket is None or self._loop is None:
            return
        self._read_xpub()
        if self._link is not None:
            self._link.drain()
        if self._work is not None:
            self._read_work()
            if time.monotonic() - self._last_ready >= self.spec.heartbeat_interval_s:
                self._announce()
        self._loop.call_later(_HOUSEKEEPING_S, self._housekeeping)

    # -- reading -------------------------------------------------------------------
    def _read_xpub(self) -> None:
        self._output.read_subscriptions()
        if not self._ready.is_set() and self._output.complete:
            self._ready.set()

    # -- the input path's side (InputOwner) ----------------------------------------
    def report_error(self, error: BaseException, context: str) -> None:
        """Publish an error event about a bad input (no log: the input path logs)."""
        self._publish_error(error, context)

    def input_failed(self, error: BaseException, context: str) -> None:
        """The driver raised while handling an input."""
        assert self._driver is not None
        self._driver.fail(error, context)

    def critical(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        """Run ``coro`` as a task whose failure ends the host."""
        assert self._loop is not None
        task = self._loop.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._critical_done)

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

    # -- the control thread's side (ControlledHost) ----------------------------------
    def on_epoch(self, epoch: int) -> None:
        """Loop: the epoch moved; the driver tells the plugin (barge-in)."""
        if self._driver is not None and self._driver_started and not self._stop.is_set():
            self.spawn(self._driver.on_epoch(epoch), "on_epoch")

    def on_start(self) -> None:
        """Loop: the supervisor sent ``start``."""
        self._started.set()

    def hold_replay(self, held: bool) -> None:
        """Keep the input handed on from now replayable for a restart, or let it go.

        Callable from any thread (a plugin's events may come from its worker).
        See :meth:`~.replay_client.ReplayClient.hold`.
        """
        client = self._replay_client
        if client is not None:
            self.post(client.hold, held)

    def on_peer_down(self, instance: str, actor: str, category: str) -> None:
        """Loop: ``instance`` exited unexpectedly; a restart follows."""
        driver = self._peer_driver()
        if driver is not None:
            self.spawn(driver.on_peer_down(actor, category), "on_peer_down")

    def on_peer_restarted(self, instance: str, actor: str, category: str) -> None:
        """Loop: ``instance`` was restarted after a crash; the driver may re-send to it."""
        driver = self._peer_driver()
        if driver is not None:
            self.spawn(driver.on_peer_restarted(actor, category), "on_peer_restarted")

    def _peer_driver(self) -> drivers.Driver | None:
        driver = self._driver
        if isinstance(driver, drivers.Driver) and self._driver_started \
                and not self._stop.is_set():
            return driver
        return None

    def set_epoch(self, epoch: int) -> bool:
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

    def heartbeat(self, control_drops: Mapping[str, int]) -> dict[str, Any]:
        """Control thread: the heartbeat's args (counters are read without the loop)."""
        drops = self.drops.copy()
        drops.update(control_drops)
        inputs = self._inputs
        return {
            "instance": self.instance,
            "pid": os.getpid(),
            "counters": {"in": self.n_in, "out": self._output.sent, "drops": drops},
            "loop_lag_ms": round(self._lag.read_ms(), 3),
            "queue": {} if inputs is None else inputs.depths(),
            "state": self.state,
            "epoch": self._epoch,
            "category": self.category,
            "subscribers": self._output.subscribers.copy(),
            **self._work_figures(),
            **self._refusals(),
            **self._replay_figures(),
        }

    def _refusals(self) -> dict[str, Any]:
        """Peers refused on tcp (this host's sockets and its control link's), if any."""
        counts: dict[str, int] = {}
        last: dict[str, Any] = {}
        for link in (self._link, self._control.link):
            if link is None:
                continue
            snap = link.refusals()
            for reason, n in snap["counts"].items():
                counts[reason] = counts.get(reason, 0) + n
            if snap["total"] and (snap["last_at"] or 0) >= (last.get("last_at") or 0):
                last = snap
        return {"refused": {**last, "counts": counts, "total": sum(counts.values())}} \
            if counts else {}

    def _work_figures(self) -> dict[str, Any]:
        driver, link = self._driver, self._work
        if isinstance(driver, Dispatcher):
            return {"work": driver.status()}
        if link is not None:
            return {"work": {"holding": len(link.holding), "received": link.received,
                             "done": link.done, "capacity": link.capacity}}
        return {}
