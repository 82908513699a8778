"""The replay request, the end-of-replay marker, and the header field that addresses a replay.

Path of a request: consumer host -> ``sys.report`` (op ``replay``) ->
supervisor -> ``sys.ctl`` (op ``replay``, ``targets`` = the producing
actor's instances) -> producer host. The answer goes out on the producer's
normal data socket: the replayed messages as they were first sent plus the
header field :data:`REPLAY_TO`, then one ``control`` message ``replay_end``
on the same topic. Every other subscriber drops what carries
:data:`REPLAY_TO` naming someone else, without counting it as a drop.
"""

from __future__ import annotations

import contextvars
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["END_OP", "HANDLING_REPLAY", "REPLAYED", "REPLAY_TO", "REQUEST_OP", "ReplayEnd",
           "ReplayRequest", "Seen"]

REPLAY_TO = "replay_to"
REPLAYED = "replayed"
"""Header field (True) on what a restarted consumer publishes while it handles replayed
input: it speaks of the past (the user's words before the restart), so the supervisor
never takes a turn start in it for a barge-in now."""
HANDLING_REPLAY: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "va_handling_replay", default=False)
"""True while the host hands a replayed message to its driver."""
"""Header field of a replayed message (and of its end marker): the consumer instance."""
REQUEST_OP = "replay"
"""Control op of the request, on ``sys.report`` and then on ``sys.ctl``."""
END_OP = "replay_end"
"""Control op of the marker that ends one producer's answer."""

Seen = dict[str, tuple[int, int]]
"""source instance -> (last seq handed on, its publish time in ns)."""


def _int(value: object, default: int = 0) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


@dataclass(frozen=True)
class ReplayRequest:
    """A restarted consumer asks for one input topic.

    Attributes:
        to: the consumer instance (what the answer is addressed to).
        topic: the input topic.
        since_ns: when the consumer's earliest incarnation whose input is
            not accounted for started (wall clock, ns): for a source with no
            entry in ``seen``, what was published since then is missed.
        seen: the last message handed on per source.
    """

    to: str
    topic: str
    since_ns: int
    seen: Seen = field(default_factory=dict)

    def to_args(self) -> dict[str, Any]:
        """The control message's args."""
        return {"to": self.to, "topic": self.topic, "since_ns": self.since_ns,
                "seen": {src: [seq, ts] for src, (seq, ts) in self.seen.items()}}

    @classmethod
    def from_args(cls, args: Mapping[str, Any]) -> ReplayRequest:
        """Parse :meth:`to_args` output; raise ValueError when it is not one."""
        to, topic = args.get("to"), args.get("topic")
        if not isinstance(to, str) or not isinstance(topic, str) or not to or not topic:
            raise ValueError(f"replay request without 'to' and 'topic': {dict(args)!r}")
        raw = args.get("seen")
        seen: Seen = {}
        for src, pair in (raw.items() if isinstance(raw, Mapping) else ()):
            if isinstance(src, str) and isinstance(pair, list | tuple) and len(pair) == 2:
                seen[src] = (_int(pair[0], -1), _int(pair[1]))
        return cls(to, topic, _int(args.get("since_ns")), seen)


@dataclass(frozen=True)
class ReplayEnd:
    """What one producer's answer held: the consumer checks it got all of it.

    Attributes:
        after: the replay starts after this seq (-1: from the producer's
            first message, when it restarted since the consumer's last one).
        first, last: seqs of the first and last replayed message (-1: none).
        count: messages replayed.
        missed: messages after ``after`` the ring no longer held (too old).
    """

    after: int
    first: int
    last: int
    count: int
    missed: int

    def to_args(self) -> dict[str, Any]:
        """The marker's args."""
        return {"after": self.after, "first": self.first, "last": self.last,
                "count": self.count, "missed": self.missed}

    @classmethod
    def from_args(cls, args: Mapping[str, Any]) -> ReplayEnd:
        """Parse :meth:`to_args` output (missing numbers read as an empty answer)."""
        return cls(_int(args.get("after"), -1), _int(args.get("first"), -1),
                   _int(args.get("last"), -1), _int(args.get("count")),
                   _int(args.get("missed")))
