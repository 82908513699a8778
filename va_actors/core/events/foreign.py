"""Events whose class this process does not know.

A consumer receives events from plugins it never imports (a recorder behind
an OCR stage, a debugging node). Rather than dropping them, the wire decoder
hands such an event on as a :class:`ForeignEvent` holding its ``type`` and
its fields as plain data.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from va_actors.core.events.base import BaseEvent

__all__ = ["ForeignEvent"]


@dataclass(kw_only=True)
class ForeignEvent(BaseEvent):
    """An event of an unregistered ``type``.

    Attributes:
        event_type: the sender's ``type`` string (e.g. ``plugin.rapidocr.text``).
        data: the sender's fields as decoded from the wire (binary values are
            blob references, see ``blobs``).
        blobs: the binary values the fields refer to.
    """

    type: str = field(default="base.foreign", init=False)
    event_type: str = ""
    data: dict[str, Any] = field(default_factory=dict)
    blobs: list[bytes] = field(default_factory=list)

    def __getitem__(self, key: str) -> Any:
        """``event["text"]``: a field of the original event."""
        return self.data[key]
