"""Turn-taking events."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from va_actors.core.events.base import PluginBaseEvent, PluginErrorEvent


@dataclass(kw_only=True)
class TurnStartedEvent(PluginBaseEvent):
    """The user started speaking."""

    type: str = field(default="plugin.turn_started", init=False)
    confidence: float = 0.5
    custom: dict[str, Any] = field(default_factory=dict)


@dataclass(kw_only=True)
class TurnEndedEvent(PluginBaseEvent):
    """The user finished a turn (``eager_end_of_turn``: a speculative end)."""

    type: str = field(default="plugin.turn_ended", init=False)
    confidence: float = 0.5
    trailing_silence_ms: float | None = None
    duration_ms: float | None = None
    eager_end_of_turn: bool = False
    custom: dict[str, Any] = field(default_factory=dict)


@dataclass(kw_only=True)
class TurnDetectionErrorEvent(PluginErrorEvent):
    """The turn detector failed."""

    type: str = field(default="plugin.turn_detection_error", init=False)
