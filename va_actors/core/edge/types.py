"""Participant and user records, as Vision Agents' edge types define them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class User:
    """A user known to the session (the agent itself or a human)."""

    id: str = ""
    name: str = ""
    image: str | None = None
    custom: dict[str, Any] = field(default_factory=dict)


@dataclass
class Participant:
    """One participant of a call.

    ``original`` holds the transport's own participant object in-process; it is
    not sent across processes (only ``user_id`` and ``id`` are).
    """

    original: Any = None
    user_id: str = ""
    id: str = ""
