"""Turn detection: subclass ``turn_detection.TurnDetector``."""

from va_actors.core.turn_detection import events
from va_actors.core.turn_detection.events import (
    TurnDetectionErrorEvent,
    TurnEndedEvent,
    TurnStartedEvent,
)
from va_actors.core.turn_detection.turn_detection import TurnDetector

__all__ = [
    "TurnDetectionErrorEvent",
    "TurnDetector",
    "TurnEndedEvent",
    "TurnStartedEvent",
    "events",
]
