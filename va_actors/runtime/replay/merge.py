"""The consumer's side of a replay: hold live input, take the replay, then merge.

While a replay of a topic is pending, live messages of that topic are held
and the replayed ones are collected per source. A source's answer counts
once its end marker arrives and what came matches it (``count`` messages,
``first`` .. ``last`` in order); an answer with a hole (the subscription
was not live yet when the producer sent part of it) is thrown away and the
host asks again. Once every source of the topic has answered, the replay
goes out first, then the held live messages that are newer than it, in
arrival order: no duplicate, no gap. A pending replay that has no valid
answer by its deadline is given up: the held messages go out as they are.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from va_actors.runtime.replay.protocol import ReplayEnd
from va_actors.wire.codec import Message

__all__ = ["MAX_HELD", "MergeCounters", "ReplayMerge"]

MAX_HELD = 100_000
"""Live messages held per topic at most (a bound against a runaway, not a tuning knob)."""


@dataclass
class MergeCounters:
    """What the merge did (the host reports them under ``replay`` in heartbeats)."""

    replayed_in: int = 0
    """Replayed messages handed on."""
    too_old_in: int = 0
    """Messages the producers no longer held when asked."""
    duplicates: int = 0
    """Held live or repeated replayed messages dropped as already handed on."""
    timeouts: int = 0
    """Topics given up without a complete answer."""
    retries: int = 0
    """Answers thrown away for a hole (asked again)."""


@dataclass
class _Pending:
    sources: int
    deadline: float
    held: list[Message] = field(default_factory=list)
    answers: dict[str, list[Message]] = field(default_factory=dict)
    done: dict[str, ReplayEnd] = field(default_factory=dict)


class ReplayMerge:
    """Pending replays of one consumer, by input topic."""

    def __init__(self) -> None:
        self._pending: dict[str, _Pending] = {}
        self.counters = MergeCounters()

    def begin(self, topic: str, sources: int, deadline: float) -> None:
        """Expect an answer from ``sources`` producer instances for ``topic`` by ``deadline``."""
        self._pending[topic] = _Pending(max(1, sources), deadline)

    def pending(self) -> list[str]:
        """Topics still waiting for an answer."""
        return list(self._pending)

    def live(self, msg: Message) -> list[Message]:
        """A live message: held while its topic is pending, else handed straight on."""
        pending = self._pending.get(msg.topic)
        if pending is None:
            return [msg]
        if len(pending.held) < MAX_HELD:
            pending.held.append(msg)
        else:  # a live message beyond the bound goes on: better out of order than lost
            return [msg]
        return []

    def replayed(self, msg: Message) -> None:
        """A replayed message addressed to this consumer."""
        pending = self._pending.get(msg.topic)
        if pending is None or msg.source in pending.done:
            self.counters.duplicates += 1  # an answer to a request asked again
            return
        pending.answers.setdefault(msg.source, []).append(msg)

    def end(self, topic: str, source: str, end: ReplayEnd) -> list[Message]:
        """``source`` finished its answer; return what to hand on now (all, once complete)."""
        pending = self._pending.get(topic)
        if pending is None or source in pending.done:
            return []
        got = pending.answers.pop(source, [])
        seqs = [m.seq for m in got]
        if len(got) != end.count or (got and (seqs[0] != end.first or seqs[-1] != end.last
                                              or seqs != sorted(set(seqs)))):
            self.counters.retries += 1  # part of it went out before we listened
            return []
        pending.done[source] = end
        pending.answers[source] = got
        if len(pending.done) < pending.sources:
            return []
        return self._release(topic)

    def expire(self, now: float) -> list[Message]:
        """Give up the topics past their deadline; return what they held."""
        out: list[Message] = []
        for topic in [t for t, p in self._pending.items() if now >= p.deadline]:
            self.counters.timeouts += 1
            out.extend(self._release(topic))
        return out

    def _release(self, topic: str) -> list[Message]:
        pending = self._pending.pop(topic)
        out: list[Message] = []
        newest: dict[str, tuple[int, int]] = {}
        for source, end in pending.done.items():
            answer = pending.answers.get(source, [])
            out.extend(answer)
            self.counters.replayed_in += len(answer)
            self.counters.too_old_in += end.missed
            if answer:
                newest[source] = (answer[-1].seq, answer[-1].ts_ns)
        for msg in pending.held:
            seq, ts = newest.get(msg.source, (-1, -1))
            # Also newer in time: a producer that restarted meanwhile counts from 0 again.
            if msg.seq <= seq and msg.ts_ns <= ts:
                self.counters.duplicates += 1
            else:
                out.append(msg)
        return out
