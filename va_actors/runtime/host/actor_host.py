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

Reports on ``sys.report`` (hello, ready, heartbeat, bye, replay) and what
the control SUB takes: :mod:`.control`. The rest of the host: plugin loading
(:mod:`.loading`), its sockets (:mod:`.sockets`, :mod:`.output`), the input
path (:mod:`.inputs`, :mod:`.queues`), replay (:mod:`.replay_client` as a
consumer, :mod:`.replay_server` as a producer), its tasks (:mod:`.tasks`),
the heartbeat's figures (:mod:`.figures`).

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
from va_actors.runtime import drivers
from va_actors.runtime.dispatcher import Dispatcher
from va_actors.runtime.exits import EXIT_CONFIG, EXIT_FAILURE, EXIT_OK
from va_actors.runtime.host.control import SHUTDOWN_DEADLINE_S, ControlThread, LagProbe
from va_actors.runtime.host.figures import refusal_figures, replay_figures, work_figures
from va_actors.runtime.host.inputs import Inputs
from va_actors.runtime.host.loading import (
    ConfigError,
    check_prepared,
    create_plugin,
    load_plugin,
    output_topics,
)
from va_actors.runtime.host.output import BindError, Output, Publishable
from va_actors.runtime.host.replay_client import FIRST_REQUEST_S, ReplayClient
from va_actors.runtime.host.replay_server import ReplayServer
from va_actors.runtime.host.sockets import data_hwm, input_socket, open_transport, work_link
from va_actors.runtime.host.tasks import HostTasks
from va_actors.runtime.host.warm import Prepared
from va_actors.runtime.replay.protocol import HANDLING_REPLAY, REPLAYED
from va_actors.runtime.replay.ring import RingLimits
from va_actors.runtime.spec import ActorSpec
from va_actors.runtime.transport import Transport
from va_actors.runtime.work import WorkLink
from va_actors.wire.messages import InputRef

__all__ = ["ActorHost", "ConfigError"]

logger = logging.getLogger("va_actors.runtime.host")

_HOUSEKEEPING_S = 0.1
_REPLAY_TICK_S = 0.05


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
        self._resumed_epoch = 0
        self._inputs: Inputs | None = None
        self._output = Output(spec.actor, spec.instance, spec.expected_subscribers,
                              RingLimits(spec.replay_s, spec.replay_bytes))
        self._replay_client: ReplayClient | None = None
        self._jobs = HostTasks(spec.instance, self._task_failed)
        self._tasks = self._jobs.tasks
        self._replay_server = ReplayServer(spec.actor, spec.instance, self._output, self.spawn)
        self.replay_out = self._replay_server.counters
        """Producer side: messages replayed to restarted consumers, too old to, requests."""
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

    @property
    def resumed_epoch(self) -> int:
        """The latest epoch started because the user went on with their turn (0: none)."""
        return self._resumed_epoch

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
        if HANDLING_REPLAY.get():
            fields = {**fields, REPLAYED: True}
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
        return self._jobs.spawn(coro, context)

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
        self._jobs.fatal = loop.create_future()
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
        assert self._jobs.fatal is not None
        if self.spec.is_dispatcher:
            self._send_hello([])
            self._open_context()
            self._bind_output()
            assert self.spec.work_endpoint is not None
            self._driver = Dispatcher(self, self.spec.work_endpoint)
        elif self._prepared is not None and self._prepared.driver is not None:
            await self._serve_prepared(self._prepared, self._prepared.driver)
        else:
            driver_class, plugin_class, self.category = load_plugin(self.spec, self._prepared)
            self._send_hello(output_topics(self.spec, driver_class, plugin_class))
            plugin = create_plugin(self.spec, plugin_class)
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
        await self._jobs.fatal  # only a host failure ends serving; shutdown cancels this

    async def _serve_prepared(self, prepared: Prepared, driver: drivers.Driver) -> None:
        """A warm host: the plugin is built and started; bind, then hand its output over."""
        check_prepared(prepared, self.spec)
        self.category = prepared.spec.category or self.category
        self._send_hello(output_topics(self.spec, prepared.driver_class, prepared.plugin_class))
        self._open_context()
        self._bind_output()
        self._driver = driver
        driver.host = self  # the proxy keeps forwarding for what captured it
        prepared.proxy.attach(self)
        self._driver_started = True
        if self._epoch > 0:  # warmed in epoch 0; the session has moved on
            await driver.on_epoch(self._epoch)

    def adopt(self, tasks: set[asyncio.Task[Any]]) -> None:
        """Track tasks a warm plugin started before this host existed (cancelled at exit)."""
        self._jobs.adopt(tasks)

    def _send_hello(self, outputs: list[str]) -> None:
        self._hello_sent = True
        self._control.send("hello", {"instance": self.instance, "actor": self.actor,
                                     "pid": os.getpid(), "category": self.category,
                                     "outputs": outputs})

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
        self._link = open_transport(self._ctx, self.spec)

    def _bind_output(self) -> None:
        assert self._ctx is not None and self._loop is not None
        try:
            self._output.bind(self._ctx, self.spec.data_endpoint, data_hwm(self.spec),
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
        assert self._link is not None
        sub = self._sub = input_socket(self._ctx, self._link, self.spec)
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
        self._replay_server.on_request(args)

    def _connect_work(self, inputs: Inputs) -> None:
        """A replica: inputs arrive as work items from the dispatcher (runtime/work.py)."""
        assert self._ctx is not None
        link = work_link(self._ctx, self.spec, lambda item, frames: inputs.accept(frames, item),
                         self._link)
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
        self._jobs.critical(self._loop, coro, name)

    # -- task bookkeeping ----------------------------------------------------------
    def _task_failed(self, error: BaseException, context: str) -> None:
        # The driver reports it as its category's error event; before there is one,
        # the host publishes the generic one.
        if self._driver is not None:
            self._driver.fail(error, context)
        else:
            self.fail(error, context)

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

    def set_epoch(self, epoch: int, *, resume: bool = False) -> bool:
        """Control thread: store a newer epoch at once; True if it moved."""
        if epoch <= self._epoch:
            return False
        if resume:
            self._resumed_epoch = epoch  # before the epoch: a reader of both sees it first
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
            **work_figures(self._driver, self._work),
            **refusal_figures((self._link, self._control.link)),
            **replay_figures(self.replay_out, self._replay_client),
        }
