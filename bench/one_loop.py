"""Voice sessions as tasks of ONE process: the in-process side of ``bench.sessions``.

Each session's actors are the same plugins, driven by the runtime's own
drivers, on one asyncio loop: what a user of an in-process framework (Vision
Agents, pipecat, LiveKit Agents) runs, N sessions as tasks of one worker
process. A message is handed over as the codec's frames (encode, then decode,
no socket), an actor's inputs are read in order from one queue, agent output
of an older epoch is dropped as the actor host drops it, and barge-in and the
per-turn latency come from the same :class:`SessionFollower`. So the only
differences from ``va-launch serve`` are processes and ZeroMQ: one GIL, one
loop, no isolation.

``[[service]]``s (the llama.cpp server) are started once and shared, as under
``va-launch serve``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable, Coroutine, Mapping
from pathlib import Path
from typing import Any

from va_actors.core.events.base import PluginErrorEvent
from va_actors.runtime.categories import driver_for, info
from va_actors.runtime.config import PipelineConfig, load_pipeline
from va_actors.runtime.config.settings import ActorConfig
from va_actors.runtime.drivers.base import Driver
from va_actors.runtime.host.output import encode_value
from va_actors.runtime.services import Services
from va_actors.runtime.supervisor.follower import SessionFollower
from va_actors.runtime.supervisor.topology import follower_topics
from va_actors.wire.codec import Message, decode
from va_actors.wire.messages import InputRef

logger = logging.getLogger("bench.one_loop")


class _Actor:
    """One actor of a session on the shared loop: its driver's host (``HostPort``)."""

    def __init__(self, session: LoopSession, config: ActorConfig) -> None:
        self.session = session
        self.actor = self.instance = config.name
        self.inputs = set(config.inputs)
        self.epoch_bound = info(config.category).agent
        assert config.plugin_class is not None, f"{config.name}: plugin in another environment"
        plugin = config.plugin_class(**dict(config.params))
        self.driver: Driver = driver_for(config.category, config.plugin_class)(self, plugin)
        self.inbox: asyncio.Queue[Message] = asyncio.Queue()
        self.drops: dict[str, int] = {}
        self._seq: dict[str, int] = {}

    # -- HostPort ------------------------------------------------------------------------
    @property
    def epoch(self) -> int:
        return self.session.epoch

    def publish(self, stream: str, value: Any, *, epoch: int | None = None,
                ref: InputRef | None = None, final: bool = False, **fields: Any) -> None:
        session = self.session
        if threading.get_ident() != session.loop_thread:  # a plugin's worker thread
            session.loop.call_soon_threadsafe(
                lambda: self.publish(stream, value, epoch=epoch, ref=ref, final=final, **fields))
            return
        stamp = session.epoch if epoch is None else epoch
        if stamp < session.epoch:
            self.count_drop("stale_out")
            return
        seq = self._seq[stream] = self._seq.get(stream, 0) + 1
        frames = encode_value(f"{self.actor}.{stream}", value, seq=seq, epoch=stamp,
                              source=self.instance, ref=ref, final=final, fields=fields)
        session.deliver(decode(frames))

    def count_drop(self, reason: str, n: int = 1) -> None:
        self.drops[reason] = self.drops.get(reason, 0) + n

    def hold_replay(self, held: bool) -> None:
        """Nothing to replay: in one process a crash takes every session down anyway."""

    async def wait_started(self) -> None:
        await self.session.started.wait()

    def spawn(self, coro: Coroutine[Any, Any, Any], context: str) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro, name=f"{self.actor}:{context}")
        self.session.tasks.add(task)
        task.add_done_callback(lambda t: self._done(t, context))
        return task

    def fail(self, error: BaseException, context: str,
             event_class: type[PluginErrorEvent] = PluginErrorEvent) -> None:
        logger.warning("%s: %s failed: %s: %s", self.actor, context, type(error).__name__, error)
        with contextlib.suppress(Exception):
            self.publish("events", event_class(error=error, context=context,
                                               plugin_name=self.actor))

    def _done(self, task: asyncio.Task[Any], context: str) -> None:
        self.session.tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            error = task.exception()
            assert error is not None
            self.fail(error, context)

    # -- input ---------------------------------------------------------------------------
    async def consume(self) -> None:
        """Inputs in arrival order; agent output of an older epoch is dropped."""
        while True:
            msg = await self.inbox.get()
            producer = self.session.actors.get(msg.source)
            if producer is not None and producer.epoch_bound and msg.epoch < self.session.epoch:
                self.count_drop("stale")
                continue
            try:
                await self.driver.on_input(msg)
            except Exception as exc:
                self.fail(exc, "on_input")


class LoopSession:
    """One session of a pipeline, every actor a task of the running loop.

    Args:
        config: the pipeline (its services are not started here).
        on_latency: told each turn's latency record, as under ``va-launch serve``.
    """

    def __init__(self, config: PipelineConfig,
                 on_latency: Callable[[Mapping[str, Any]], None] | None = None) -> None:
        self.loop = asyncio.get_running_loop()
        self.loop_thread = threading.get_ident()
        self.epoch = 0
        self.started = asyncio.Event()
        self.stopped = asyncio.Event()
        self.tasks: set[asyncio.Task[Any]] = set()
        self.actors = {a.name: _Actor(self, a) for a in config.actors}
        sources = [a.name for a in config.actors if not a.inputs]
        self.follower = SessionFollower(self._bump, self._stop, sources, on_latency=on_latency)
        self._followed = {t for topics in follower_topics(config).values() for t in topics}

    def deliver(self, msg: Message) -> None:
        """Hand ``msg`` to every actor that reads its topic, and to the follower."""
        if msg.topic in self._followed:
            self.follower.follow(msg)
        for actor in self.actors.values():
            if msg.topic in actor.inputs:
                actor.inbox.put_nowait(msg)

    async def run(self) -> None:
        """Start every actor, then say start; return when the follower stops the session."""
        for actor in self.actors.values():
            await actor.driver.start()
            await actor.driver.attach()
            actor.spawn(actor.consume(), "inputs")
        for actor in self.actors.values():
            actor.spawn(actor.driver.run(), "run")
        self.started.set()
        try:
            await self.stopped.wait()
        finally:
            await self.close()

    async def close(self) -> None:
        """Cancel every task and close every plugin."""
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.follower.close()
        for actor in self.actors.values():
            with contextlib.suppress(Exception):
                await actor.driver.close()

    def _bump(self, reason: str) -> int:
        self.epoch += 1
        logger.info("epoch %d (%s)", self.epoch, reason)
        for actor in self.actors.values():
            actor.spawn(actor.driver.on_epoch(self.epoch), "on_epoch")
        return self.epoch

    def _stop(self, reason: str) -> None:
        logger.info("session stops: %s", reason)
        self.stopped.set()


async def run_sessions(template: Path, count: int, gap_s: float,
                       session_file: Callable[[str], Path]) -> dict[str, list[float]]:
    """``count`` sessions of ``template`` in this process, started ``gap_s`` apart.

    ``session_file(id)`` writes the session's own pipeline file (its paths
    named by the id, as ``${VA_SESSION_ID}`` names them under serve) and
    returns it. Returns each session's voice-to-voice totals (ms).
    """
    services = Services(load_pipeline(template).services)
    await services.start()
    records: dict[str, list[float]] = {}
    try:
        runs = []
        for index in range(count):
            sid = f"loop{index}"
            config = load_pipeline(session_file(sid))
            keep = records.setdefault(sid, [])
            session = LoopSession(config, on_latency=lambda r, k=keep: k.append(  # type: ignore[misc]
                float(r["total_ms"])))
            runs.append(asyncio.create_task(session.run()))
            await asyncio.sleep(gap_s)
        await asyncio.gather(*runs)
    finally:
        await services.stop()
    return records
