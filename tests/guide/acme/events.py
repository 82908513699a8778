"""Acme's own events (the guide's optional ``events.py``)."""

# ruff: noqa: UP045 - kept in the guide's typing style (Optional, List, Dict)

from dataclasses import dataclass, field
from typing import Any, Optional

from va_actors.core.events import PluginBaseEvent


@dataclass
class AcmeUsageEvent(PluginBaseEvent):
    """Acme billed some audio."""

    type: str = field(default="plugin.acme.usage", init=False)
    audio_ms: float = 0.0
    model: Optional[str] = None
    details: dict[str, Any] = field(default_factory=dict)
