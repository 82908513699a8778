"""The Vision Agents 0.6.9 baseline, run by ``.bench/va069/bin/python`` (never our venv).

Stub plugins written against Vision Agents' own base classes, wired the way
its ``Agent`` and ``TranscribingInferenceFlow`` wire them, in one asyncio
process:

* **source**: a paced 20 ms 16 kHz mono s16 ``PcmData`` stream, delivered as
  ``AudioReceivedEvent`` through an ``EventManager`` to a handler that puts it
  in the participant's ``AudioQueue`` (``Agent.on_audio_received``);
* **input loop**: ``Agent._consume_incoming_audio``'s 20 ms loop draining the
  queue with ``get_duration(20)`` into the ``AudioInputStream`` and through
  every audio processor;
* **stage**: ``Forward``, an ``AudioProcessor`` that passes each chunk to an
  ``AudioOutputStream`` (the agent's output, re-chunked to 20 ms);
* **sink**: a task reading the output stream (the outbound track's role),
  logging each chunk's arrival time;
* **blocking stage**: ``BlockingSTT``, a ``vision_agents.core.stt.STT`` whose
  ``process_audio`` blocks for ``block_ms`` every ``every_s`` (``cpu`` spin or
  ``sleep``), driven by ``TranscribingInferenceFlow.process_audio_input``'s
  loop.

Usage: ``python bench/va069_flow.py OUT.jsonl MODE DURATION_S`` (MODE: cpu,
sleep, none). Writes one ``{"recv_ns": ...}`` line per chunk at the sink.
"""
# This file runs in Vision Agents' own virtual environment; our type checker
# and venv do not have its packages.
# mypy: ignore-errors

from __future__ import annotations

import asyncio
import json
import sys
import time

import numpy as np
from getstream.video.rtc.track_util import PcmData
from vision_agents.core.agents.inference.audio import (
    AudioInputChunk,
    AudioInputStream,
    AudioOutputChunk,
    AudioOutputStream,
)
from vision_agents.core.edge.events import AudioReceivedEvent
from vision_agents.core.edge.types import Participant
from vision_agents.core.events.manager import EventManager
from vision_agents.core.processors.base_processor import AudioProcessor
from vision_agents.core.stt.stt import STT
from vision_agents.core.utils.audio_queue import AudioQueue

RATE = 16000
SAMPLES = RATE // 50


def busy_cpu(seconds: float) -> None:
    """Hold the CPU (and the GIL) in pure Python for ``seconds`` (as bench.stages)."""
    end = time.perf_counter() + seconds
    x = 0
    while time.perf_counter() < end:
        for i in range(1000):
            x += i * i


class BlockingSTT(STT):
    """Blocks the loop for ``block_s`` on the first chunk ``every_s`` after the last block."""

    def __init__(self, mode: str, block_s: float = 0.5, every_s: float = 1.0) -> None:
        super().__init__(provider_name="blocking")
        self.mode, self.block_s, self.every_s = mode, block_s, every_s
        self._next = time.monotonic() + 0.5

    async def process_audio(self, pcm_data: PcmData, participant: Participant) -> None:
        now = time.monotonic()
        if self.mode == "none" or now < self._next:
            return
        if self.mode == "cpu":
            busy_cpu(self.block_s)
        else:
            time.sleep(self.block_s)  # noqa: ASYNC251 - the blocking call is the point
        self._next = now + self.every_s


class Forward(AudioProcessor):
    """The stage: every chunk of audio goes on to the output stream."""

    def __init__(self, output: AudioOutputStream) -> None:
        super().__init__()
        self.output = output

    @property
    def name(self) -> str:
        return "forward"

    async def process_audio(self, audio_data: PcmData) -> None:
        self.output.send_nowait(AudioOutputChunk(data=audio_data))


def tone(index: int) -> PcmData:
    t = (np.arange(SAMPLES) + index * SAMPLES) / RATE
    wave = (0.3 * 32767 * np.sin(2 * np.pi * 440.0 * t)).astype(np.int16)
    return PcmData(sample_rate=RATE, format="s16", samples=wave)


async def source(events: EventManager, user: Participant, seconds: float) -> None:
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    for index in range(int(seconds * 50)):
        events.send(AudioReceivedEvent(pcm_data=tone(index), participant=user))
        await asyncio.sleep(max(0.0, t0 + (index + 1) / 50 - loop.time()))


async def consume_incoming(queue: AudioQueue, user: Participant, stt_in: AudioInputStream,
                           processors: list[AudioProcessor]) -> None:
    """Agent._consume_incoming_audio for one participant."""
    while True:
        loop_start = time.perf_counter()
        while not queue.empty():
            try:
                pcm = await asyncio.wait_for(queue.get_duration(duration_ms=20), timeout=0.001)
            except (TimeoutError, asyncio.QueueEmpty):
                break
            await stt_in.send(AudioInputChunk(data=pcm, participant=user))
            for processor in processors:
                await processor.process_audio(pcm)
        elapsed = time.perf_counter() - loop_start
        await asyncio.sleep(max(0.0, 0.02 - elapsed))


async def process_audio_input(stt: STT, stt_in: AudioInputStream) -> None:
    """TranscribingInferenceFlow.process_audio_input (no turn detector)."""
    async for chunk in stt_in:
        await stt.process_audio(chunk.data, chunk.participant)


async def sink(output: AudioOutputStream, log: list[int]) -> None:
    async for item in output:
        if isinstance(item, AudioOutputChunk) and item.data is not None:
            log.append(time.time_ns())


async def main(out_path: str, mode: str, seconds: float) -> None:
    user = Participant(original=None, user_id="user", id="user-1")
    events = EventManager()
    events.register(AudioReceivedEvent)
    queue = AudioQueue(buffer_limit_ms=8000)

    @events.subscribe
    async def on_audio_received(event: AudioReceivedEvent) -> None:
        await queue.put(event.pcm_data)

    output = AudioOutputStream()
    stt_in = AudioInputStream()
    stt = BlockingSTT(mode)
    await stt.start()
    arrivals: list[int] = []
    tasks = [asyncio.create_task(consume_incoming(queue, user, stt_in, [Forward(output)])),
             asyncio.create_task(process_audio_input(stt, stt_in)),
             asyncio.create_task(sink(output, arrivals))]
    print(f"started {time.time_ns()}", flush=True)
    await source(events, user, seconds)
    await asyncio.sleep(0.7)  # let the last block and the backlog drain
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    with open(out_path, "w", encoding="utf-8") as handle:  # noqa: ASYNC230 - after the run
        for ns in arrivals:
            handle.write(json.dumps({"recv_ns": ns}) + "\n")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], float(sys.argv[3])))
