"""What the Stream edge reports about the call (Vision Agents' edge event names)."""

from __future__ import annotations

from dataclasses import dataclass, field

from va_actors.core.events.base import PluginBaseEvent


@dataclass(kw_only=True)
class ParticipantJoinedEvent(PluginBaseEvent):
    """Someone joined the call (``participant`` carries their user and session ids)."""

    type: str = field(default="plugin.edge.participant_joined", init=False)
    name: str = ""


@dataclass(kw_only=True)
class ParticipantLeftEvent(PluginBaseEvent):
    """Someone left the call."""

    type: str = field(default="plugin.edge.participant_left", init=False)


@dataclass(kw_only=True)
class CallEndedEvent(PluginBaseEvent):
    """The call is over; the edge has left it and does not rejoin."""

    type: str = field(default="plugin.edge.call_ended", init=False)
    reason: int = 0
