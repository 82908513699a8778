"""A bounded asyncio queue of PcmData that drops the oldest audio when full."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable, Generator
from typing import Any

import numpy as np

from va_actors.core.audio.pcm import PcmData
from va_actors.core.audio.samples import AudioFormat, SampleArray, _convert_samples, _mix_channels

logger = logging.getLogger(__name__)

_WARN_INTERVAL_S = 1.0


class AudioQueue:
    """Asyncio queue of :class:`PcmData` holding at most ``buffer_limit_ms`` of audio.

    ``put``/``put_nowait`` never block: when the buffered duration would
    exceed the limit, the oldest audio is dropped (whole items first, then
    the front of the oldest remaining item), counted in :attr:`dropped_ms`
    and :attr:`dropped_items`, and a warning is logged at most once a second.
    The first item fixes :attr:`sample_rate`; later mismatches only warn.

    Reads: :meth:`get` / :meth:`get_nowait` return whole items;
    :meth:`get_samples` / :meth:`get_duration` return exactly the requested
    amount across item boundaries (pushing any remainder back to the front).

    Args:
        buffer_limit_ms: maximum buffered audio in milliseconds.
        max_duration_ms: keyword alias of ``buffer_limit_ms``.

    Not thread-safe: use it from one event loop.
    """

    def __init__(
        self,
        buffer_limit_ms: float | None = None,
        *,
        max_duration_ms: float | None = None,
    ) -> None:
        limit = _resolve_limit(buffer_limit_ms, max_duration_ms)
        self.buffer_limit_ms: float = limit
        self.dropped_ms: float = 0.0
        self.dropped_items: int = 0
        self._buffer: deque[PcmData] = deque()
        self._total_samples = 0
        self._duration_ms = 0.0
        self._sample_rate: int | None = None
        self._not_empty = asyncio.Event()
        self._last_warning = -_WARN_INTERVAL_S

    def __repr__(self) -> str:
        return (
            f"AudioQueue(items={len(self._buffer)}, duration_ms={self._duration_ms:.1f}, "
            f"limit_ms={self.buffer_limit_ms}, dropped_ms={self.dropped_ms:.1f})"
        )

    @property
    def max_duration_ms(self) -> float:
        """Alias of :attr:`buffer_limit_ms`."""
        return self.buffer_limit_ms

    @property
    def sample_rate(self) -> int | None:
        """Rate of the first item ever queued (None before that)."""
        return self._sample_rate

    @property
    def duration_ms(self) -> float:
        """Audio currently buffered, in milliseconds."""
        return self._duration_ms

    def empty(self) -> bool:
        """True when no audio is queued."""
        return not self._buffer

    def qsize(self) -> int:
        """Number of queued items."""
        return len(self._buffer)

    def clear(self) -> None:
        """Drop everything queued (not counted as dropped)."""
        self._buffer.clear()
        self._total_samples = 0
        self._duration_ms = 0.0
        self._not_empty.clear()

    async def put(self, item: PcmData) -> None:
        """Queue ``item``; never waits (same as :meth:`put_nowait`)."""
        self.put_nowait(item)

    def put_nowait(self, item: PcmData) -> None:
        """Queue ``item``, dropping the oldest audio beyond the limit.

        Raises:
            TypeError: ``item`` is not a PcmData.
        """
        if not isinstance(item, PcmData):
            raise TypeError(f"AudioQueue only accepts PcmData, got {type(item).__name__}")
        if self._sample_rate is None:
            self._sample_rate = item.sample_rate
        elif item.sample_rate != self._sample_rate:
            logger.warning(
                "AudioQueue sample rate mismatch: queue has %d Hz, item has %d Hz",
                self._sample_rate,
                item.sample_rate,
            )
        self._push(item, front=False)
        self._enforce_limit()

    async def get(self) -> PcmData:
        """Remove and return the oldest item, waiting until one is available."""
        while not self._buffer:
            await self._not_empty.wait()
        return self._pop()

    def get_nowait(self) -> PcmData:
        """Remove and return the oldest item.

        Raises:
            asyncio.QueueEmpty: nothing is queued.
        """
        if not self._buffer:
            raise asyncio.QueueEmpty("AudioQueue is empty")
        return self._pop()

    def get_samples(self, num_samples: int, timeout: float = 0.1) -> QueuedAudio:
        """Remove and return exactly ``num_samples`` samples per channel.

        Collects across items; the unused part of the last item goes back to
        the front; when the queue runs dry after something was collected, the
        result is shorter. Items whose format or channel count differ from the
        first one collected are converted to it.

        Usable at once (the guide: ``audio = queue.get_samples(num_samples=16000)``)
        or awaited (Vision Agents: ``await queue.get_samples(...)``): see
        :class:`QueuedAudio`. Awaited on an empty queue, it waits up to
        ``timeout`` seconds and raises ``asyncio.QueueEmpty`` if no audio came.

        Raises:
            ValueError: ``num_samples`` is not positive.
        """
        if num_samples <= 0:
            raise ValueError(f"num_samples must be > 0, got {num_samples!r}")
        if self._buffer:
            return QueuedAudio.of(self._take(num_samples))

        async def wait_and_take() -> PcmData:
            await self._wait_for_item(timeout)
            return self._take(num_samples)

        return QueuedAudio.waiting(self._sample_rate or 16000, wait_and_take)

    def get_duration(self, duration_ms: float, timeout: float = 0.1) -> QueuedAudio:
        """Like :meth:`get_samples` for ``duration_ms`` at the queue's rate.

        100 ms at 16 kHz is 1600 samples. Before the first item has set the
        rate, the read is empty (awaited: waits up to ``timeout`` for one,
        ``asyncio.QueueEmpty`` after).
        """
        if not duration_ms > 0:
            raise ValueError(f"duration_ms must be > 0, got {duration_ms!r}")
        if self._sample_rate is not None:
            return self.get_samples(self._samples_for(duration_ms), timeout)

        async def wait_and_take() -> PcmData:
            await self._wait_for_item(timeout)
            return self._take(self._samples_for(duration_ms))

        return QueuedAudio.waiting(16000, wait_and_take)

    def _samples_for(self, duration_ms: float) -> int:
        return max(1, round(duration_ms * (self._sample_rate or 0) / 1000))

    def _take(self, num_samples: int) -> PcmData:
        first = self._buffer[0]
        parts: list[SampleArray] = []
        collected = 0
        while collected < num_samples and self._buffer:
            item = self._pop()
            wanted = num_samples - collected
            if item.num_samples > wanted:
                self._push(item._like(item.samples[..., wanted:], pts=item._pts_at(wanted)), True)
                item = item._like(item.samples[..., :wanted])
            parts.append(_conform(item, first))
            collected += item.num_samples
        samples = parts[0] if len(parts) == 1 else np.concatenate(parts, axis=-1)
        return first._like(samples)

    def get_buffer_info(self) -> dict[str, Any]:
        """Snapshot of the buffer state and drop counters."""
        return {
            "buffer_limit_ms": self.buffer_limit_ms,
            "current_duration_ms": self._duration_ms,
            "total_samples": self._total_samples,
            "sample_rate": self._sample_rate,
            "num_chunks": len(self._buffer),
            "queue_size": len(self._buffer),
            "dropped_ms": self.dropped_ms,
            "dropped_items": self.dropped_items,
        }

    # ------------------------------------------------------------ internals

    async def _wait_for_item(self, wait_s: float) -> None:
        """Return once an item is queued; QueueEmpty after ``wait_s`` seconds."""
        if self._buffer:
            return
        try:
            async with asyncio.timeout(wait_s):
                while not self._buffer:
                    await self._not_empty.wait()
        except TimeoutError:
            raise asyncio.QueueEmpty(f"no audio arrived within {wait_s} s") from None

    def _push(self, item: PcmData, front: bool) -> None:
        if front:
            self._buffer.appendleft(item)
        else:
            self._buffer.append(item)
        self._total_samples += item.num_samples
        self._duration_ms += item.duration_ms
        self._not_empty.set()

    def _pop(self) -> PcmData:
        item = self._buffer.popleft()
        self._total_samples -= item.num_samples
        self._duration_ms -= item.duration_ms
        if not self._buffer:
            self._not_empty.clear()
            # Resync so float error cannot accumulate over a long session.
            self._duration_ms = 0.0
        return item

    def _enforce_limit(self) -> None:
        excess_ms = self._duration_ms - self.buffer_limit_ms
        if excess_ms <= 1e-9:
            return
        dropped_ms = 0.0
        while self._buffer and self._buffer[0].duration_ms <= excess_ms - dropped_ms + 1e-9:
            dropped_ms += self._pop().duration_ms
            self.dropped_items += 1
        if self._buffer and excess_ms - dropped_ms > 1e-9:
            dropped_ms += self._trim_oldest(excess_ms - dropped_ms)
        self.dropped_ms += dropped_ms
        self._warn_drop(dropped_ms)

    def _trim_oldest(self, excess_ms: float) -> float:
        """Cut ``excess_ms`` (rounded up to whole samples) off the oldest item."""
        oldest = self._pop()
        cut = min(oldest.num_samples, math.ceil(excess_ms * oldest.sample_rate / 1000 - 1e-9))
        self._push(oldest._like(oldest.samples[..., cut:], pts=oldest._pts_at(cut)), True)
        return cut * 1000.0 / oldest.sample_rate

    def _warn_drop(self, dropped_ms: float) -> None:
        now = time.monotonic()
        if now - self._last_warning >= _WARN_INTERVAL_S:
            self._last_warning = now
            logger.warning(
                "AudioQueue over its %.0f ms limit: dropped %.1f ms of the oldest audio "
                "(%.1f ms in total so far)",
                self.buffer_limit_ms,
                dropped_ms,
                self.dropped_ms,
            )


class QueuedAudio(PcmData):
    """Audio read from an :class:`AudioQueue`: a PcmData at once, and awaitable.

    Vision Agents' reads are coroutines (``await queue.get_duration(20)``);
    the plugin guide calls them without ``await``. Both work: without
    ``await`` this is what was queued (empty if nothing was); awaiting it
    gives the same audio, or, for a read that found the queue empty, waits
    for audio as the coroutine did. Nothing is left "never awaited".
    """

    _pending: Callable[[], Awaitable[PcmData]] | None = None

    @classmethod
    def of(cls, pcm: PcmData) -> QueuedAudio:
        """``pcm`` as a read that is already complete."""
        out = cls.__new__(cls)
        out.__dict__.update(pcm.__dict__)
        return out

    @classmethod
    def waiting(cls, sample_rate: int,
                read: Callable[[], Awaitable[PcmData]]) -> QueuedAudio:
        """An empty read that, awaited, waits with ``read()``."""
        out = cls(sample_rate, AudioFormat.S16)
        out._pending = read
        return out

    def __await__(self) -> Generator[Any, None, PcmData]:
        if self._pending is None:
            return self
        return (yield from self._pending().__await__())


def _resolve_limit(buffer_limit_ms: float | None, max_duration_ms: float | None) -> float:
    if buffer_limit_ms is None and max_duration_ms is None:
        raise TypeError("AudioQueue needs buffer_limit_ms (or its alias max_duration_ms)")
    both = buffer_limit_ms is not None and max_duration_ms is not None
    if both and buffer_limit_ms != max_duration_ms:
        raise ValueError(
            f"buffer_limit_ms={buffer_limit_ms!r} and max_duration_ms={max_duration_ms!r} "
            "disagree; pass only one"
        )
    limit = buffer_limit_ms if buffer_limit_ms is not None else max_duration_ms
    if not isinstance(limit, int | float) or isinstance(limit, bool) or not limit > 0:
        raise ValueError(f"buffer_limit_ms must be a positive number, got {limit!r}")
    return float(limit)


def _conform(item: PcmData, like: PcmData) -> SampleArray:
    """``item``'s samples in ``like``'s format and channel count."""
    samples = _convert_samples(item.samples, like.format)
    return _mix_channels(samples, item.channels, like.channels)
