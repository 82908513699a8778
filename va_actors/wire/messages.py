"""Message kinds and the small value types that only exist on the wire."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any


class Kind(enum.StrEnum):
    """What a message carries; decides its header fields and payload frames."""

    AUDIO = "audio"
    VIDEO = "video"
    EVENT = "event"
    TEXT = "text"
    CONTROL = "control"


@dataclass(frozen=True)
class TextChunk:
    """A piece of agent text (LLM reply delta, or the whole reply when ``final``).

    ``response_id`` groups the chunks of one reply; ``index`` orders them.
    """

    text: str
    final: bool = False
    response_id: str | None = None
    index: int = 0


@dataclass(frozen=True)
class Control:
    """A control-plane message: ``op`` plus its arguments (see docs/wire.md)."""

    op: str
    args: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class InputRef:
    """Which input message a result was computed from (replicas, processors).

    ``ts_ns`` is the input's publish time: result time minus it is how stale
    the result is.
    """

    source: str
    seq: int
    pts: int | None = None
    ts_ns: int | None = None
