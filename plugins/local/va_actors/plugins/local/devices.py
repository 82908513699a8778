"""Real audio devices through sounddevice (PortAudio): a microphone and a speaker.

sounddevice is optional (the ``devices`` extra). Without it, or without a
device, these actors publish a TransportErrorEvent naming what is missing
instead of failing the pipeline.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import threading
from types import ModuleType
from typing import Any

import numpy as np

from va_actors.core.audio import AudioFormat, AudioFramer, PcmData
from va_actors.core.audio.pcm import SampleArray
from va_actors.core.edge.playback import PlaybackSink
from va_actors.core.edge.playout import interleaved_bytes
from va_actors.core.node import Node, NodeContext
from va_actors.core.params import positive_int

from ._common import (
    FRAME_MS,
    PLUGIN_NAME,
    participant_for,
    publish_finished,
    report_error,
)
from .audio_sources import AudioTimeline

_INSTALL_HINT = "install it with: pip install 'va-actors-plugin-local[devices]'"
_MIC_QUEUE_BLOCKS = 50  # 1 s of 20 ms blocks between the device thread and the loop
_SPEAKER_BUFFER_MS = 200  # device-side queue; the playout buffer holds the rest


def load_sounddevice() -> tuple[ModuleType | None, str]:
    """The sounddevice module, or None and the reason it cannot be used."""
    try:
        return importlib.import_module("sounddevice"), ""
    except ImportError:
        return None, f"the sounddevice package is not installed; {_INSTALL_HINT}"
    except OSError as exc:  # sounddevice raises this when libportaudio is missing
        return None, (f"the PortAudio library could not be loaded ({exc}); install it "
                      "(Debian: apt-get install libportaudio2)")


def _device_name(device: int | str | None) -> str:
    return "the default device" if device is None else f"device {device!r}"


class MicrophoneSource(Node):
    """Captures a real microphone with sounddevice.

    Publishes 20 ms s16 chunks on ``audio`` with pts counting samples. Blocks
    the loop cannot take in time are dropped and counted (``overflow``), as
    are overruns the device reports. Without sounddevice, PortAudio or an
    input device, a TransportErrorEvent on ``events`` says which is missing,
    followed by a SourceFinishedEvent.

    Args:
        device: sounddevice device index or name (default: the system's).
        sample_rate: capture rate.
        channels: capture channels.
        participant: user id / id of the participant attached to the audio.
    """

    def __init__(
        self,
        device: int | str | None = None,
        sample_rate: int = 48000,
        channels: int = 1,
        participant: str = "user",
    ) -> None:
        super().__init__(device=device, sample_rate=sample_rate, channels=channels,
                         participant=participant)
        self.device = device
        self.sample_rate = positive_int(sample_rate, "sample_rate")
        self.channels = positive_int(channels, "channels")
        self.participant = participant_for(participant)
        self._queue: asyncio.Queue[SampleArray] = asyncio.Queue(_MIC_QUEUE_BLOCKS)

    async def run(self, ctx: NodeContext) -> None:
        """Open the device once the consumers are ready and publish what it captures."""
        await ctx.wait_started()
        timeline = AudioTimeline(ctx, self.participant, False, self.sample_rate, self.channels)
        stream = self._open(ctx)
        if stream is not None:
            with stream:
                await self._forward(timeline)
        publish_finished(ctx, timeline.sent_ms)

    def _open(self, ctx: NodeContext) -> Any:
        what = f"microphone ({_device_name(self.device)})"
        sd, missing = load_sounddevice()
        if sd is None:
            report_error(ctx, f"cannot open the {what}: {missing}",
                         code="missing_dependency", context=what)
            return None
        loop = asyncio.get_running_loop()

        def on_block(indata: Any, frames: int, time: Any, status: Any) -> None:
            # PortAudio's thread: hand a copy to the loop, never block here.
            with contextlib.suppress(RuntimeError):  # loop closed at shutdown
                loop.call_soon_threadsafe(self._receive, ctx, np.array(indata), bool(status))

        try:
            sd.check_input_settings(device=self.device, channels=self.channels,
                                    dtype="int16", samplerate=self.sample_rate)
            return sd.InputStream(device=self.device, samplerate=self.sample_rate,
                                  channels=self.channels, dtype="int16",
                                  blocksize=self.sample_rate * FRAME_MS // 1000,
                                  callback=on_block)
        except Exception as exc:  # PortAudioError, ValueError: no such device / format
            report_error(ctx, f"cannot open the {what}: {exc}", code="no_device", context=what)
            return None

    def _receive(self, ctx: NodeContext, block: SampleArray, overflowed: bool) -> None:
        if overflowed:
            ctx.count_drop("overflow")
        try:
            self._queue.put_nowait(block)
        except asyncio.QueueFull:
            ctx.count_drop("overflow")

    async def _forward(self, timeline: AudioTimeline) -> None:
        framer = AudioFramer(FRAME_MS)
        while True:
            block = await self._queue.get()  # (frames, channels) from PortAudio
            pcm = PcmData(self.sample_rate, AudioFormat.S16, np.ascontiguousarray(block.T),
                          channels=self.channels)
            for chunk in framer.push(pcm):
                await timeline.send(chunk)


class _DeviceQueue:
    """Bytes on their way to a PortAudio output callback (which runs on its own thread)."""

    def __init__(self, max_bytes: int, frame_bytes: int) -> None:
        self._lock = threading.Lock()
        self._data = bytearray()
        self._max = max_bytes - max_bytes % frame_bytes

    def push(self, data: bytes) -> int:
        """Queue ``data``; return how many bytes of the oldest had to go."""
        with self._lock:
            self._data += data
            over = max(0, len(self._data) - self._max)
            del self._data[:over]
        return over

    def pull(self, size: int) -> bytes:
        """Up to ``size`` bytes, zero-filled to ``size`` (silence on underrun)."""
        with self._lock:
            out = bytes(self._data[:size])
            del self._data[:size]
        return out + bytes(size - len(out))

    def clear(self) -> None:
        """Drop everything not yet pulled."""
        with self._lock:
            self._data.clear()


class SpeakerSink(PlaybackSink):
    """A real speaker: the simulated speaker of WavSink, played on a sound device.

    The playout buffer drains at real time exactly as in
    :class:`~va_actors.plugins.local.WavSink` (same playback events, same
    barge-in behaviour) and each played block goes to a sounddevice output
    stream through a short device queue (200 ms; a barge-in clears it too).
    Without sounddevice, PortAudio or an output device, a TransportErrorEvent
    on ``events`` says which is missing and playback is only simulated.

    Args:
        device: sounddevice device index or name (default: the system's).
        sample_rate, channels: output format (input is converted).
        playback_interval_ms: period of the playback events while playing.
        idle_ms: how long the buffer must stay empty before playback counts
            as stopped.
        max_buffer_s: most audio held; beyond it the oldest is dropped (counted).
    """

    plugin_name = PLUGIN_NAME

    def __init__(
        self,
        device: int | str | None = None,
        sample_rate: int = 48000,
        channels: int = 1,
        playback_interval_ms: float = 100,
        idle_ms: float = 250,
        max_buffer_s: float = 120,
    ) -> None:
        super().__init__(sample_rate, channels, True, playback_interval_ms, idle_ms,
                         max_buffer_s, device=device)
        self.device = device
        self._stream: Any = None
        frame_bytes = 2 * self.channels
        self._chunk_bytes = self.sample_rate * FRAME_MS // 1000 * frame_bytes
        self._queue = _DeviceQueue(
            self.sample_rate * _SPEAKER_BUFFER_MS // 1000 * frame_bytes, frame_bytes)

    async def start(self, ctx: NodeContext) -> None:
        """Open the output device (an error event if it cannot be)."""
        await super().start(ctx)
        what = f"speaker ({_device_name(self.device)})"
        sd, missing = load_sounddevice()
        if sd is None:
            report_error(ctx, f"cannot open the {what}: {missing}; playback is only simulated",
                         code="missing_dependency", context=what)
            return
        try:
            sd.check_output_settings(device=self.device, channels=self.channels,
                                     dtype="int16", samplerate=self.sample_rate)
            self._stream = sd.RawOutputStream(
                device=self.device, samplerate=self.sample_rate, channels=self.channels,
                dtype="int16", latency="low", callback=self._on_device)
            self._stream.start()
        except Exception as exc:  # PortAudioError, ValueError: no such device / format
            self._stream = None
            report_error(ctx, f"cannot open the {what}: {exc}; playback is only simulated",
                         code="no_device", context=what)

    def _on_device(self, outdata: Any, frames: int, time: Any, status: Any) -> None:
        outdata[:] = self._queue.pull(len(outdata))

    def _played(self, samples: SampleArray) -> None:
        if self._stream is None:
            return
        over = self._queue.push(interleaved_bytes(samples))
        if over and self._ctx is not None:  # counted in 20 ms chunks, rounded up
            self._ctx.count_drop("overflow", -(-over // self._chunk_bytes))

    def _discard_output(self) -> None:
        self._queue.clear()

    def _close_output(self) -> None:
        if self._stream is not None:
            with contextlib.suppress(Exception):
                self._stream.stop()
                self._stream.close()
            self._stream = None
