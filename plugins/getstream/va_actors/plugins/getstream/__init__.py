"""Stream's video edge as a va-actors actor (``getstream.edge``).

The getstream SDK is imported only when the edge joins a call, so the class
(and ``va-launch check``) needs neither the SDK nor the credentials.
"""

from va_actors.plugins.getstream.edge import StreamEdge
from va_actors.plugins.getstream.events import (
    CallEndedEvent,
    ParticipantJoinedEvent,
    ParticipantLeftEvent,
)

__all__ = ["CallEndedEvent", "ParticipantJoinedEvent", "ParticipantLeftEvent", "StreamEdge"]
