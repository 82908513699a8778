"""The producer's replay ring: what one output stream published lately, as sent.

Bounded both in time (``seconds``: entries older than that are evicted) and
in bytes (the oldest go first when a new one would pass ``max_bytes``).
Video never goes in a ring: the newest frame wins, an old one is worthless.
A lookup returns what came after a given seq and how many messages after it
are already gone (too old), which the producer counts and tells the consumer.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from va_actors.wire.codec import Frame

__all__ = ["Lookup", "ReplayRing", "RingEntry", "RingLimits"]


@dataclass(frozen=True)
class RingLimits:
    """How much a ring keeps (``replay_s`` / ``replay_bytes`` of the producing actor)."""

    seconds: float = 5.0
    max_bytes: int = 4 * 2**20

    @property
    def enabled(self) -> bool:
        """Both bounds leave room for something."""
        return self.seconds > 0 and self.max_bytes > 0


@dataclass(frozen=True)
class RingEntry:
    """One published message, its frames as they went out."""

    seq: int
    ts_ns: int
    at: float
    frames: tuple[bytes, ...]
    nbytes: int


@dataclass(frozen=True)
class Lookup:
    """The answer to "everything after seq ``after``"."""

    after: int
    entries: list[RingEntry] = field(default_factory=list)
    missed: int = 0


class ReplayRing:
    """The recent messages of one stream of one producer incarnation.

    Args:
        limits: the bounds.
        started_ns: when this incarnation started (wall clock): a consumer
            whose last message is older saw the previous incarnation, whose
            sequence numbers mean nothing here.
        clock: monotonic seconds (tests pass their own).
    """

    def __init__(self, limits: RingLimits, started_ns: int,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits
        self.started_ns = started_ns
        self._clock = clock
        self._entries: deque[RingEntry] = deque()
        self._bytes = 0
        self.last_seq = -1
        """The newest seq appended (-1: none yet)."""
        self._evicted_ts = -1
        """Publish time of the newest evicted entry (-1: none evicted)."""

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def nbytes(self) -> int:
        """Bytes held."""
        return self._bytes

    def append(self, seq: int, ts_ns: int, frames: Sequence[Frame]) -> None:
        """Keep message ``seq`` (its frames are copied unless they are bytes already)."""
        kept = tuple(f if isinstance(f, bytes) else bytes(f) for f in frames)
        size = sum(len(f) for f in kept)
        self.last_seq = seq
        if size > self.limits.max_bytes or not self.limits.enabled:
            self._evict_all()  # one too big for the ring: what came before is a gap
            self._evicted_ts = ts_ns
            return
        self._entries.append(RingEntry(seq, ts_ns, self._clock(), kept, size))
        self._bytes += size
        while self._bytes > self.limits.max_bytes:
            self._evict()
        self._expire()

    def lookup(self, after: int, since_ns: int) -> Lookup:
        """Everything after seq ``after`` (published since ``since_ns``), and what is gone.

        ``after`` > the newest seq, or a ``since_ns`` older than this
        incarnation, means the producer restarted since the consumer's last
        message: then everything this incarnation published counts. ``after``
        = -1 (a source the consumer never heard from) takes what was published
        since ``since_ns``; its ``missed`` counts every evicted message of
        this incarnation when one was evicted after ``since_ns`` (an upper
        bound: seqs do not say when the older ones were published).
        """
        self._expire()
        restarted = after > self.last_seq or since_ns < self.started_ns
        start = -1 if restarted else after
        if start >= 0:
            entries = [e for e in self._entries if e.seq > start]
        else:
            entries = [e for e in self._entries if e.ts_ns >= since_ns]
        oldest = self._entries[0].seq if self._entries else self.last_seq + 1
        missed = max(0, oldest - start - 1) if self._evicted_ts >= since_ns else 0
        return Lookup(start, entries, missed)

    # -- bounds ----------------------------------------------------------------------
    def _expire(self) -> None:
        horizon = self._clock() - self.limits.seconds
        while self._entries and self._entries[0].at < horizon:
            self._evict()

    def _evict(self) -> None:
        entry = self._entries.popleft()
        self._bytes -= entry.nbytes
        self._evicted_ts = entry.ts_ns

    def _evict_all(self) -> None:
        while self._entries:
            self._evict()
