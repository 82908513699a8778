"""The in-process baseline: the same plugins and stages on ONE asyncio loop.

This is what a user of an in-process framework (Vision Agents, pipecat,
LiveKit Agents) runs: every stage is a task of one event loop, connected by
asyncio queues (Vision Agents' ``Stream``), with the same drivers' semantics
as the actor host, written small:

* a ``Node`` gets ``start`` / ``run`` / ``on_message`` / ``on_epoch``;
* an STT or turn detector gets ``process_audio`` per audio chunk, and its
  turn events go to consumers of ``<stage>.turn``; transcripts to
  ``<stage>.transcript``;
* a TTS gets final text chunks and its ``send_iter`` chunks go out on
  ``<stage>.audio`` stamped with the text's epoch;
* barge-in follows the supervisor's rule: a ``TurnStartedEvent`` bumps the
  epoch while a sink last reported ``playing`` (or before any report); the
  bump calls ``on_epoch`` on every node and ``interrupt()`` on every TTS, and
  queued TTS audio of an older epoch is dropped, as the actor hosts do.

Run: ``python -m bench.inprocess SPEC.json`` where SPEC has ``stages`` (the
:class:`bench.pipeline.Stage` dicts) and ``duration_s``. It prints
``started <time_ns>`` once every stage has started, and bump lines
``epoch <n> <time_ns>``, then exits after ``duration_s``.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import inspect
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from va_actors.core.audio.pcm import PcmData
from va_actors.core.edge import AudioPlaybackEvent
from va_actors.core.events.base import BaseEvent
from va_actors.core.node import Inbound, Node, Publishable
from va_actors.core.stt import STT
from va_actors.core.stt.events import STTPartialTranscriptEvent, STTTranscriptEvent
from va_actors.core.tts import TTS
from va_actors.core.turn_detection import TurnDetector
from va_actors.core.turn_detection.events import TurnEndedEvent, TurnStartedEvent

EPOCH_BOUND = (TTS,)  # only what the agent says is epoch-bound (docs/runtime.md)


def resolve(ref: str) -> type:
    """Import ``module:Class``."""
    module, _, name = ref.partition(":")
    cls = getattr(importlib.import_module(module), name)
    if not isinstance(cls, type):
        raise TypeError(f"{ref} is not a class")
    return cls


class _Ctx:
    """A stage's NodeContext on the shared loop."""

    def __init__(self, runner: Runner, name: str) -> None:
        self.runner = runner
        self._name = name

    @property
    def name(self) -> str:
        return self._name

    @property
    def epoch(self) -> int:
        return self.runner.epoch

    def publish(self, stream: str, value: Publishable, *, epoch: int | None = None,
                final: bool = False, **fields: Any) -> None:
        fields.pop("ref", None)
        self.runner.publish(self._name, stream, value,
                            self.runner.epoch if epoch is None else epoch,
                            {**fields, "final": final})

    async def wait_started(self) -> None:
        await self.runner.started.wait()

    def count_drop(self, reason: str, n: int = 1) -> None:
        self.runner.drops[reason] = self.runner.drops.get(reason, 0) + n


class _Running:
    """One stage: its plugin, its inbox and its task."""

    def __init__(self, name: str, plugin: Any, inputs: list[str]) -> None:
        self.name = name
        self.plugin = plugin
        self.inputs = inputs
        self.inbox: asyncio.Queue[Inbound] = asyncio.Queue()
        self.sentences: asyncio.Queue[tuple[str, int, dict[str, Any]]] = asyncio.Queue()


class Runner:
    """Every stage of a pipeline as tasks of the running loop."""

    def __init__(self, stages: list[dict[str, Any]],
                 on_bump: Callable[[int], None] | None = None) -> None:
        self.epoch = 0
        self.started = asyncio.Event()
        self.drops: dict[str, int] = {}
        self.playing: dict[str, bool] = {}
        self.on_bump = on_bump or (lambda _epoch: None)
        self.stages: dict[str, _Running] = {}
        for spec in stages:
            plugin = resolve(spec["plugin"])(**spec.get("params", {}))
            self.stages[spec["name"]] = _Running(spec["name"], plugin, list(spec.get("inputs", [])))
        self.tasks: list[asyncio.Task[Any]] = []

    # -- routing -----------------------------------------------------------------------
    def publish(self, source: str, stream: str, value: Any, epoch: int,
                fields: dict[str, Any]) -> None:
        """Deliver ``value`` to every stage reading ``<source>.<stream>``."""
        topic = f"{source}.{stream}"
        if stream == "playback" and isinstance(value, AudioPlaybackEvent):
            self.playing[source] = value.playing
        for stage in self.stages.values():
            if topic in stage.inputs:
                stage.inbox.put_nowait(Inbound(topic, value, epoch, 0, time.time_ns(),
                                               source, fields))

    def _forward_events(self, stage: _Running) -> None:
        def forward(event: BaseEvent) -> None:
            if isinstance(event, TurnStartedEvent | TurnEndedEvent):
                self.publish(stage.name, "turn", event, self.epoch, {})
                if isinstance(event, TurnStartedEvent):
                    self._on_turn_started()
            elif isinstance(event, STTTranscriptEvent | STTPartialTranscriptEvent):
                self.publish(stage.name, "transcript", event, self.epoch, {})
        stage.plugin.events.subscribe(prefix="")(forward)

    # -- barge-in ------------------------------------------------------------------------
    def _on_turn_started(self) -> None:
        if self.playing and not any(self.playing.values()):
            return
        self.epoch += 1
        self.on_bump(self.epoch)
        for stage in self.stages.values():
            if isinstance(stage.plugin, Node):
                self.tasks.append(asyncio.create_task(stage.plugin.on_epoch(self.epoch)))
            elif isinstance(stage.plugin, TTS):
                while not stage.sentences.empty():
                    stage.sentences.get_nowait()
                self.tasks.append(asyncio.create_task(stage.plugin.interrupt()))

    def _stale(self, msg: Inbound) -> bool:
        producer = self.stages.get(msg.actor)
        return (producer is not None and isinstance(producer.plugin, EPOCH_BOUND)
                and msg.epoch < self.epoch)

    # -- stage loops ------------------------------------------------------------------
    async def _consume(self, stage: _Running) -> None:
        plugin = stage.plugin
        while True:
            msg = await stage.inbox.get()
            if self._stale(msg):
                self.drops["stale"] = self.drops.get("stale", 0) + 1
                continue
            if isinstance(plugin, Node):
                await plugin.on_message(msg)
            elif isinstance(plugin, STT | TurnDetector) and isinstance(msg.value, PcmData):
                await plugin.process_audio(msg.value, None)
            elif isinstance(plugin, TTS) and isinstance(msg.value, str) and msg.fields.get("final"):
                stage.sentences.put_nowait((msg.value, msg.epoch, msg.fields))

    async def _speak(self, stage: _Running) -> None:
        tts: TTS = stage.plugin
        while True:
            text, epoch, fields = await stage.sentences.get()
            if epoch < self.epoch:
                continue
            async with contextlib.aclosing(tts.send_iter(text)) as chunks:  # type: ignore[type-var]
                async for chunk in chunks:
                    if epoch < self.epoch:
                        break
                    if chunk.data is not None and chunk.data.samples.size:
                        self.publish(stage.name, "audio", chunk.data, epoch,
                                     {"text": text, "response_id": fields.get("response_id")})

    async def start(self) -> None:
        """Start every plugin, then its tasks; then say ``start`` to the sources."""
        for stage in self.stages.values():
            plugin = stage.plugin
            if isinstance(plugin, Node):
                await plugin.start(_Ctx(self, stage.name))
                self.tasks.append(asyncio.create_task(plugin.run(_Ctx(self, stage.name))))
            else:
                if isinstance(plugin, STT | TurnDetector):
                    self._forward_events(stage)
                start = getattr(plugin, "start", None)
                if start is not None and inspect.iscoroutinefunction(start):
                    await start()
                if isinstance(plugin, TTS):
                    self.tasks.append(asyncio.create_task(self._speak(stage)))
            self.tasks.append(asyncio.create_task(self._consume(stage)))
        self.started.set()

    async def close(self) -> None:
        """Cancel every task and close every plugin."""
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        for stage in self.stages.values():
            close = getattr(stage.plugin, "close", None)
            if close is not None:
                with contextlib.suppress(Exception):
                    result = close()
                    if inspect.isawaitable(result):
                        await result


async def _main(spec: dict[str, Any]) -> None:
    runner = Runner(spec["stages"],
                    on_bump=lambda epoch: print(f"epoch {epoch} {time.time_ns()}", flush=True))
    await runner.start()
    print(f"started {time.time_ns()}", flush=True)
    try:
        await asyncio.sleep(float(spec["duration_s"]))
    finally:
        await runner.close()
    print(f"drops {json.dumps(runner.drops)}", flush=True)


def main() -> None:
    """``python -m bench.inprocess SPEC.json``."""
    if len(sys.argv) != 2:
        sys.exit("usage: python -m bench.inprocess SPEC.json")
    spec = json.loads(Path(sys.argv[1]).read_text())
    asyncio.run(_main(spec))


if __name__ == "__main__":
    main()
