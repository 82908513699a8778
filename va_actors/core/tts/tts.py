"""TTS base class: output format, automatic resampling, epochs."""

from __future__ import annotations

import abc
import asyncio
import contextlib
import inspect
import logging
import time
import uuid
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from va_actors.core.audio.pcm import AudioFormat, PcmData
from va_actors.core.audio.resampler import Resampler
from va_actors.core.edge.types import Participant
from va_actors.core.epochs import in_interrupt, install_interrupt
from va_actors.core.events.manager import EventManager
from va_actors.core.tts.events import (
    TTSAudioEvent,
    TTSErrorEvent,
    TTSSynthesisCompleteEvent,
    TTSSynthesisStartEvent,
)

logger = logging.getLogger(__name__)

_SENTINEL = object()


@dataclass(frozen=True)
class AudioSpec:
    """A PCM format: rate, channel count and sample format."""

    sample_rate: int = 16000
    channels: int = 1
    format: AudioFormat = AudioFormat.S16

    def __post_init__(self) -> None:
        if self.sample_rate <= 0:
            raise ValueError(f"sample_rate must be positive, got {self.sample_rate}")
        if self.channels not in (1, 2):
            raise ValueError(f"channels must be 1 or 2, got {self.channels}")
        object.__setattr__(self, "format", AudioFormat(self.format))


@dataclass
class TTSOutputChunk:
    """One piece of synthesised audio, already in the TTS output format."""

    data: PcmData | None
    index: int
    final: bool
    text: str | None
    synthesis_id: str
    epoch: int


class _ChunkConverter:
    """Turns whatever ``stream_audio`` produced into output-format PcmData.

    One resampler per synthesis, so its filter state carries across chunks.
    """

    def __init__(self, output: AudioSpec, source: AudioSpec) -> None:
        self._source = source
        self._resampler = Resampler(output.sample_rate, output.channels, output.format)
        self._pending = b""
        width = 2 if source.format == AudioFormat.S16 else 4
        self._frame_bytes = width * source.channels

    def convert(self, item: object) -> PcmData | None:
        if isinstance(item, bytes | bytearray | memoryview):
            pcm = self._from_bytes(bytes(item))
            if pcm is None:
                return None
        elif isinstance(item, PcmData):
            pcm = item
        else:
            raise TypeError(
                f"stream_audio produced a {type(item).__name__}; expected PcmData or bytes "
                "(or an iterator of them)"
            )
        out = self._resampler.process(pcm)
        return out if out.samples.size else None

    def _from_bytes(self, data: bytes) -> PcmData | None:
        data = self._pending + data
        usable = len(data) - len(data) % self._frame_bytes
        self._pending = data[usable:]
        if usable == 0:
            return None
        src = self._source
        return PcmData.from_bytes(data[:usable], sample_rate=src.sample_rate,
                                  format=src.format, channels=src.channels)

    def flush(self) -> PcmData:
        return self._resampler.flush()


async def _iterate(result: object) -> AsyncIterator[object]:
    """Yield the items of a stream_audio result, never blocking the loop."""
    if isinstance(result, PcmData | bytes | bytearray | memoryview):
        yield result
    elif hasattr(result, "__aiter__"):
        async for item in result:
            yield item
    elif inspect.isgenerator(result) or isinstance(result, Iterator):
        # A sync generator may synthesise as it goes: pull it off the loop.
        while (item := await asyncio.to_thread(next, result, _SENTINEL)) is not _SENTINEL:
            yield item
    elif isinstance(result, Iterable):
        for item in result:
            yield item
    else:
        raise TypeError(f"stream_audio returned a {type(result).__name__}; expected PcmData, "
                        "bytes, or a (sync or async) iterator of them")


class TTS(abc.ABC):
    """Text-to-speech plugin base.

    Subclasses implement :meth:`stream_audio` (return PcmData, bytes, or a sync
    or async iterator of them, or be an async generator yielding them, in any
    rate: bytes are read in
    :attr:`source_format`) and :meth:`stop_audio`. The base converts
    everything to :attr:`output_format` (default 16 kHz mono s16) with a
    stateful resampler per synthesis, sends synthesis and audio events, and
    guarantees that after :meth:`interrupt` no chunk of an older epoch is
    emitted.
    """

    streaming: bool = False
    model: str = ""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        install_interrupt(cls)

    def __init__(self, provider_name: str | None = None) -> None:
        self.provider_name = provider_name or type(self).__name__
        self.events = EventManager()
        self.source_format: AudioSpec | None = None
        self._output = AudioSpec()
        self._epoch = 0

    # -- format and epoch --------------------------------------------------
    def set_output_format(self, sample_rate: int = 16000, channels: int = 1,
                          audio_format: AudioFormat | str = AudioFormat.S16) -> None:
        """Choose the format every emitted chunk is converted to."""
        self._output = AudioSpec(sample_rate, channels, AudioFormat(audio_format))

    @property
    def output_format(self) -> AudioSpec:
        """The format of emitted audio."""
        return self._output

    # Vision Agents' names for the output format (the guide's comments use them).
    @property
    def _desired_sample_rate(self) -> int:
        return self._output.sample_rate

    @property
    def _desired_channels(self) -> int:
        return self._output.channels

    @property
    def _desired_format(self) -> AudioFormat:
        return self._output.format

    @property
    def epoch(self) -> int:
        """The barge-in epoch; chunks carry the epoch their synthesis began in.

        :meth:`interrupt` moves it on by one, ``interrupt(epoch)`` to the
        session's epoch (the runtime keeps it equal to the session's).
        """
        return self._epoch

    async def interrupt(self, epoch: int | None = None) -> None:
        """Barge-in: stop emitting the current speech at once, then abort synthesis.

        Without ``epoch`` the epoch goes up by one; with it, the epoch becomes
        ``epoch`` if that is newer (an older or equal one changes nothing, so
        a repeated broadcast is harmless). Plugins may override this (with or
        without ``epoch``); the epoch still moves first, exactly once.
        """
        if not in_interrupt(self) and not self._advance_epoch(epoch):
            return
        try:
            await self.stop_audio()
        except Exception as exc:
            self._emit_error(exc, context="stop_audio")

    def _advance_epoch(self, epoch: int | None) -> bool:
        new = self._epoch + 1 if epoch is None else epoch
        if new <= self._epoch:
            return False
        self._epoch = new
        return True

    def _interrupt_failed(self, error: Exception) -> None:
        self._emit_error(error, context="interrupt")

    # -- plugin interface ----------------------------------------------------
    @abc.abstractmethod
    def stream_audio(self, text: str, *args: Any, **kwargs: Any) -> Any:
        """Synthesise ``text``; see the class docstring for what to return.

        Either ``async def`` returning PcmData, bytes or an iterator of them,
        or an async generator (``async def ...: yield chunk``, as in the guide).
        """

    @abc.abstractmethod
    async def stop_audio(self) -> None:
        """Abort any synthesis in flight (called by :meth:`interrupt`)."""

    async def close(self) -> None:
        """Stop speaking and release provider resources."""
        await self.interrupt()

    # -- driving -------------------------------------------------------------
    async def send(self, text: str, participant: Participant | None = None,
                   *args: Any, **kwargs: Any) -> None:
        """Synthesise ``text`` and send a :class:`TTSAudioEvent` per chunk."""
        async for chunk in self.send_iter(text, participant, *args, **kwargs):
            self._emit_chunk(chunk, participant)

    async def send_iter(self, text: str, participant: Participant | None = None,
                        *args: Any, **kwargs: Any) -> AsyncIterator[TTSOutputChunk]:
        """Synthesise ``text``, yielding output-format chunks; the last has ``final=True``.

        Returns early, with nothing more yielded, if :meth:`interrupt` is called.
        Empty text sends a TTSErrorEvent and yields nothing. Provider errors
        send a TTSErrorEvent and are re-raised.
        """
        if not isinstance(text, str) or not text.strip():
            self._emit_error(ValueError(f"TTS got empty text ({text!r}); nothing to say"),
                             context="input")
            return
        run = _Synthesis(self, text)
        self.events.send(TTSSynthesisStartEvent(text=text, synthesis_id=run.synthesis_id,
                                                model_name=self.model or None,
                                                plugin_name=self.provider_name))
        try:
            async for chunk in run.chunks(*args, **kwargs):
                yield chunk
        except Exception as exc:
            if run.epoch != self._epoch:
                # interrupt() ran and stop_audio() aborted the provider stream: the
                # failure is the interruption itself, not a synthesis error.
                run.interrupted = True
                logger.debug("%s: stream ended by interrupt (%s: %s)", self.provider_name,
                             type(exc).__name__, exc)
                return
            self._emit_error(exc, context="synthesis")
            raise
        finally:
            self.events.send(run.complete_event())

    def _emit_chunk(self, chunk: TTSOutputChunk, participant: Participant | None = None) -> None:
        """Send one chunk as a TTSAudioEvent, unless its epoch is over."""
        if chunk.epoch != self._epoch:
            return
        self.events.send(TTSAudioEvent(
            data=chunk.data, chunk_index=chunk.index, is_final_chunk=chunk.final,
            text_source=chunk.text, synthesis_id=chunk.synthesis_id, epoch=chunk.epoch,
            participant=participant, plugin_name=self.provider_name,
        ))

    def _emit_error(self, error: BaseException, *, context: str,
                    is_recoverable: bool = True) -> None:
        logger.warning("%s error (%s): %s: %s", self.provider_name, context,
                       type(error).__name__, error)
        self.events.send(TTSErrorEvent(error=error, context=context,
                                       is_recoverable=is_recoverable,
                                       plugin_name=self.provider_name))


class _Synthesis:
    """State of one ``send_iter`` call: epoch, timing, counts."""

    def __init__(self, tts: TTS, text: str) -> None:
        self.tts = tts
        self.text = text
        self.epoch = tts.epoch
        self.synthesis_id = uuid.uuid4().hex
        self.started = time.perf_counter()
        self.first_chunk_at: float | None = None
        self.index = 0
        self.audio_bytes = 0
        self.audio_ms = 0.0
        self.interrupted = False

    def _live(self) -> bool:
        if self.tts.epoch != self.epoch:
            self.interrupted = True
        return not self.interrupted

    def _chunk(self, pcm: PcmData | None, final: bool) -> TTSOutputChunk:
        if self.first_chunk_at is None:
            self.first_chunk_at = time.perf_counter()
        if pcm is not None:
            self.audio_bytes += pcm.samples.nbytes
            self.audio_ms += pcm.duration_ms
        chunk = TTSOutputChunk(pcm, self.index, final, self.text, self.synthesis_id, self.epoch)
        self.index += 1
        return chunk

    async def chunks(self, *args: Any, **kwargs: Any) -> AsyncIterator[TTSOutputChunk]:
        source = self.tts.source_format or self.tts.output_format
        converter = _ChunkConverter(self.tts.output_format, source)
        result = self.tts.stream_audio(self.text, *args, **kwargs)
        if inspect.isawaitable(result):  # async def returning audio (an async generator is not)
            result = await result
        if not self._live():
            return
        single = isinstance(result, PcmData | bytes | bytearray | memoryview)
        items = _iterate(result)
        try:
            async for item in items:
                if not self._live():
                    return
                pcm = converter.convert(item)
                if pcm is not None and not single:
                    yield self._chunk(pcm, final=False)
                elif pcm is not None:
                    tail = converter.flush()
                    # Copy: with no conversion needed, pcm is the plugin's own object.
                    yield self._chunk(pcm.copy().append(tail) if tail.samples.size else pcm,
                                      True)
                    return
        finally:
            await _close(result)
        if self._live():
            tail = converter.flush()
            yield self._chunk(tail if tail.samples.size else None, final=True)

    def complete_event(self) -> TTSSynthesisCompleteEvent:
        first = self.first_chunk_at or time.perf_counter()
        synth_ms = (first - self.started) * 1000.0
        return TTSSynthesisCompleteEvent(
            synthesis_id=self.synthesis_id, text=self.text, total_audio_bytes=self.audio_bytes,
            synthesis_time_ms=synth_ms, audio_duration_ms=self.audio_ms,
            chunk_count=self.index, interrupted=self.interrupted,
            real_time_factor=(synth_ms / self.audio_ms) if self.audio_ms else None,
            plugin_name=self.tts.provider_name,
        )


async def _close(result: object) -> None:
    aclose = getattr(result, "aclose", None)
    if aclose is not None:
        await aclose()
        return
    if inspect.isgenerator(result):
        # Cancelled while a worker thread is inside next(): closing now raises
        # "generator already executing". That step finishes on its own and its
        # output is dropped; stop_audio() is how plugins end the generator.
        with contextlib.suppress(ValueError):
            result.close()
