"""The OpenAI Realtime GA protocol as the gateway speaks it: ids, errors, events, items.

Shapes follow the GA reference (developers.openai.com, realtime client and
server events; the openai-python ``types/realtime`` models): every server
event has ``type`` and ``event_id``; items are ``realtime.item`` objects.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

JSON = dict[str, Any]

CLIENT_EVENTS = (
    "session.update",
    "input_audio_buffer.append",
    "input_audio_buffer.commit",
    "input_audio_buffer.clear",
    "conversation.item.create",
    "conversation.item.retrieve",
    "conversation.item.truncate",
    "conversation.item.delete",
    "response.create",
    "response.cancel",
    "output_audio_buffer.clear",
)
"""Every client event type of the GA protocol (some answered with an error, see README)."""

INVALID_REQUEST = "invalid_request_error"
SERVER_ERROR = "server_error"


def new_id(prefix: str) -> str:
    """An id like the API's own (``event_...``, ``item_...``, ``resp_...``, ``sess_...``)."""
    return f"{prefix}_{uuid.uuid4().hex[:22]}"


@dataclass
class ClientError(Exception):
    """A client event the gateway cannot accept; sent back as an ``error`` event.

    Never fatal: the session stays open, as with the API.
    """

    message: str
    code: str = "invalid_value"
    param: str | None = None
    event_id: str | None = None
    kind: str = INVALID_REQUEST

    def __str__(self) -> str:
        return self.message

    def event(self) -> JSON:
        """The ``error`` server event."""
        return server_event("error", error={
            "type": self.kind, "code": self.code, "message": self.message,
            "param": self.param, "event_id": self.event_id})


def server_event(kind: str, **fields: Any) -> JSON:
    """A server event of type ``kind`` with a fresh ``event_id``."""
    return {"type": kind, "event_id": new_id("event"), **fields}


def user_audio_item(item_id: str, transcript: str | None) -> JSON:
    """A user message made of committed input audio (its transcript once known)."""
    return _message(item_id, "user", "completed",
                    [{"type": "input_audio", "transcript": transcript}])


def user_text_item(item_id: str, texts: list[str]) -> JSON:
    """A user message of ``input_text`` parts."""
    return _message(item_id, "user", "completed",
                    [{"type": "input_text", "text": text} for text in texts])


def assistant_item(item_id: str, status: str, text_only: bool, text: str | None) -> JSON:
    """An assistant message: no content while in progress, then its audio's transcript."""
    if text is None:
        content: list[JSON] = []
    elif text_only:
        content = [{"type": "output_text", "text": text}]
    else:
        content = [{"type": "output_audio", "transcript": text}]
    return _message(item_id, "assistant", status, content)


def content_part(text_only: bool, text: str) -> JSON:
    """The ``part`` of ``response.content_part.added`` / ``.done``."""
    return {"type": "text", "text": text} if text_only else {"type": "audio", "transcript": text}


def _message(item_id: str, role: str, status: str, content: list[JSON]) -> JSON:
    return {"id": item_id, "object": "realtime.item", "type": "message", "status": status,
            "role": role, "content": content}
