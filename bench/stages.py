"""Plugins the bench suite runs, written against ``va_actors.core`` only.

The same classes run as actors (``bench.stages:Class`` in a pipeline file)
and in the in-process runner (:mod:`bench.inprocess`), so both designs execute
identical plugin code. Each logs what it measures as JSON lines (one file per
stage, flushed per line) with ``time.time_ns()`` stamps: CLOCK_REALTIME is
one clock for every process on the machine.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import AsyncIterator
from typing import Any, TextIO

import numpy as np

from va_actors.core.audio.pcm import PcmData, SampleArray
from va_actors.core.edge.playback import PlaybackSink
from va_actors.core.edge.types import Participant
from va_actors.core.node import Node, NodeContext
from va_actors.core.stt import STT
from va_actors.core.tts import TTS
from va_actors.core.turn_detection import TurnDetector

CHUNK_MS = 20
RATE = 16000
SAMPLES = RATE * CHUNK_MS // 1000


class JsonLog:
    """An append-only JSON-lines file, flushed per record (readable while running)."""

    def __init__(self, path: str) -> None:
        self._out: TextIO = open(path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()

    def write(self, **record: Any) -> None:
        """Append one record."""
        self._out.write(json.dumps(record) + "\n")
        self._out.flush()

    def close(self) -> None:
        """Close the file."""
        self._out.close()


def tone(index: int, amplitude: float, freq: float = 440.0) -> PcmData:
    """Chunk ``index`` of a 16 kHz mono s16 tone (20 ms)."""
    t = (np.arange(SAMPLES) + index * SAMPLES) / RATE
    wave = (amplitude * 32767 * np.sin(2 * math.pi * freq * t)).astype(np.int16)
    return PcmData(RATE, "s16", wave, pts=index * SAMPLES, time_base=1 / RATE)


def busy_cpu(seconds: float) -> None:
    """Hold the CPU (and the GIL) in pure Python for ``seconds``."""
    end = time.perf_counter() + seconds
    x = 0
    while time.perf_counter() < end:
        for i in range(1000):
            x += i * i


class BlockingSTT(STT):
    """An STT whose provider call blocks the event loop (a badly behaved SDK).

    On the first chunk at least ``every_s`` after its previous block it blocks
    for ``block_ms``: ``mode="cpu"`` spins in Python (CPU work, holds the
    GIL), ``mode="sleep"`` calls ``time.sleep`` (a blocking I/O call). Then it
    emits a transcript. ``mode="none"`` never blocks.
    """

    def __init__(self, mode: str = "sleep", block_ms: float = 500, every_s: float = 1.0,
                 first_after_s: float = 0.5) -> None:
        super().__init__()
        if mode not in ("cpu", "sleep", "none"):
            raise ValueError(f"BlockingSTT mode must be cpu, sleep or none, got {mode!r}")
        self.mode = mode
        self.block_s = block_ms / 1000
        self.every_s = every_s
        self._next = time.monotonic() + first_after_s
        self.blocks = 0

    async def process_audio(self, pcm_data: PcmData,
                            participant: Participant | None = None) -> None:
        now = time.monotonic()
        if self.mode == "none" or now < self._next:
            return
        if self.mode == "cpu":
            busy_cpu(self.block_s)
        else:
            time.sleep(self.block_s)  # noqa: ASYNC251 - the blocking call is the point
        self.blocks += 1
        self._next = now + self.every_s
        self._emit_transcript_event(f"block {self.blocks}", participant)


class EnergyTurn(TurnDetector):
    """Turn detection by level: started on the first chunk above ``threshold``
    (RMS, full scale 1.0), ended after ``silence_ms`` below it."""

    def __init__(self, threshold: float = 0.1, silence_ms: float = 200) -> None:
        super().__init__()
        self.threshold = threshold
        self.silence_chunks = max(1, int(silence_ms // CHUNK_MS))
        self._in_turn = False
        self._quiet = 0

    async def process_audio(self, audio_data: PcmData, participant: Participant | None = None,
                            conversation: Any = None) -> None:
        samples = audio_data.to_float32().samples
        loud = float(np.sqrt(np.mean(np.square(samples)))) > self.threshold
        if loud and not self._in_turn:
            self._in_turn, self._quiet = True, 0
            self._emit_turn_started_event(participant, confidence=1.0)
        elif self._in_turn:
            self._quiet = 0 if loud else self._quiet + 1
            if self._quiet >= self.silence_chunks:
                self._in_turn = False
                self._emit_turn_ended_event(participant, confidence=1.0)


class ToneTTS(TTS):
    """A TTS that 'synthesises' ``reply_ms`` of tone per text, ``speed`` x real time."""

    def __init__(self, reply_ms: float = 2000, speed: float = 10.0) -> None:
        super().__init__()
        self.chunks = max(1, int(reply_ms // CHUNK_MS))
        self.step_s = CHUNK_MS / 1000 / speed
        self._stop = False

    async def stream_audio(self, text: str, *args: Any, **kwargs: Any) -> AsyncIterator[PcmData]:
        self._stop = False
        return self._generate()

    async def _generate(self) -> AsyncIterator[PcmData]:
        for index in range(self.chunks):
            if self._stop:
                return
            await asyncio.sleep(self.step_s)
            yield tone(index, 0.2, freq=220.0)

    async def stop_audio(self) -> None:
        self._stop = True


class Replier(Node):
    """The 'LLM': publishes a reply text at each of ``at_s`` (seconds after start).

    Params: ``at_s`` (list), ``text``.
    """

    async def run(self, ctx: NodeContext) -> None:
        await ctx.wait_started()
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        for index, at in enumerate(self.params["at_s"]):
            await asyncio.sleep(max(0.0, t0 + float(at) - loop.time()))
            ctx.publish("text", str(self.params.get("text", "Here is a long answer.")),
                        final=True, response_id=f"reply-{index}")


class UserScript(Node):
    """The user's microphone: 20 ms chunks in real time, quiet noise except
    ``speech_ms`` of loud tone from each of ``onsets_s``; logs each onset
    (``onset_ns``: when that chunk is due in real time; ``published_ns``).

    Params: ``onsets_s`` (list), ``speech_ms``, ``duration_s``, ``log``.
    """

    async def run(self, ctx: NodeContext) -> None:
        log = JsonLog(self.params["log"])
        onsets = [float(s) for s in self.params["onsets_s"]]
        speech_chunks = int(float(self.params.get("speech_ms", 300)) // CHUNK_MS)
        total = int(float(self.params["duration_s"]) * 1000 // CHUNK_MS)
        starts = {round(s * 1000 / CHUNK_MS) for s in onsets}
        await ctx.wait_started()
        loop = asyncio.get_running_loop()
        t0, t0_ns = loop.time(), time.time_ns()
        speaking_until = -1
        try:
            for index in range(total):
                if index in starts:
                    speaking_until = index + speech_chunks
                    # due: when the chunk is captured in real time, even if this
                    # loop is late to publish it (a stalled loop hears the user late).
                    log.write(onset_ns=t0_ns + index * CHUNK_MS * 1_000_000,
                              published_ns=time.time_ns(), index=index)
                ctx.publish("audio", tone(index, 0.5 if index < speaking_until else 0.001))
                await asyncio.sleep(max(0.0, t0 + (index + 1) * CHUNK_MS / 1000 - loop.time()))
        finally:
            log.close()


class PlayLog(PlaybackSink):
    """The local plugins' simulated real-time speaker (``PlaybackSink``),
    logging when each piece of audio leaves it and of which epoch.

    Params: ``log``; the speaker's own parameters as in ``local.wav_sink``.
    """

    def __init__(self, log: str, sample_rate: int = RATE, channels: int = 1,
                 realtime: bool = True, playback_interval_ms: float = 100,
                 idle_ms: float = 250, max_buffer_s: float = 120) -> None:
        super().__init__(sample_rate, channels, realtime, playback_interval_ms, idle_ms,
                         max_buffer_s, log=log)
        self._log = JsonLog(log)

    def _played(self, samples: SampleArray) -> None:
        reply = self._playout.current
        # known_epoch: the epoch this process had been told of when the piece left.
        known = self._ctx.epoch if self._ctx is not None else -1
        self._log.write(played_ns=time.time_ns(), samples=int(samples.shape[-1]),
                        epoch=-1 if reply is None else reply.epoch, known_epoch=known)

    async def on_epoch(self, epoch: int) -> None:
        self._log.write(epoch_ns=time.time_ns(), new_epoch=epoch)
        await super().on_epoch(epoch)

    def _close_output(self) -> None:
        self._log.close()
