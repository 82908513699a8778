"""What an LLM's reply is made of: streamed deltas, one final, the legacy response event."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, TypeVar

__all__ = ["LLMResponseDelta", "LLMResponseEvent", "LLMResponseFinal"]

T = TypeVar("T")


@dataclass
class LLMResponseEvent(Generic[T]):
    """What a legacy ``simple_response`` returns: the provider's response and its text."""

    original: T
    text: str
    exception: Exception | None = None


@dataclass
class LLMResponseDelta:
    """A piece of streamed reply text.

    ``epoch`` is the epoch in force when the reply started; ``item_id`` names
    the reply's message in the conversation (both set by :meth:`LLM.respond`).
    """

    delta: str
    content_index: int | None = None
    item_id: str | None = None
    output_index: int | None = None
    sequence_number: int | None = None
    is_first_chunk: bool = False
    time_to_first_token_ms: float | None = None
    epoch: int = 0


@dataclass
class LLMResponseFinal:
    """The end of a reply: its whole text (after every tool round).

    ``interrupted``: the reply was cut off (barge-in) and ``text`` is what had
    been produced. ``error``: the provider failed and ``text`` is what had
    been produced before.
    """

    text: str = ""
    item_id: str | None = None
    latency_ms: float | None = None
    time_to_first_token_ms: float | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    total_tokens: int | None = None
    model: str | None = None
    original: Any = None
    interrupted: bool = False
    error: str | None = None
    epoch: int = 0
