"""Conversation history: ordered messages an LLM builds its prompt from.

Messages are upserted by id so streamed text (deltas, replacements, then a
final) lands in one message, and :meth:`Conversation.truncate_message` cuts an
interrupted reply down to what the user actually heard.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

logger = logging.getLogger(__name__)


def _new_id() -> str:
    return uuid.uuid4().hex


@dataclass
class Message:
    """One message of a conversation.

    ``completed`` is False while text is still streaming in; ``interrupted``
    marks an agent reply the user cut off (its ``content`` is then what was
    heard, when the pipeline reported it).
    """

    role: str
    content: str = ""
    user_id: str | None = None
    id: str = field(default_factory=_new_id)
    completed: bool = True
    interrupted: bool = False
    timestamp: float = field(default_factory=time.time)

    def to_chat_message(self) -> dict[str, Any]:
        """The message in OpenAI chat format: ``{"role", "content"}``."""
        return {"role": self.role, "content": self.content}


@dataclass
class _Part:
    index: int
    seq: int
    text: str


class Conversation:
    """An ordered, id-addressable list of messages.

    Args:
        messages: initial messages.
        max_messages: keep at most this many (the oldest non-system messages
            are dropped first); None keeps everything.
    """

    def __init__(self, messages: Iterable[Message] = (), *,
                 max_messages: int | None = None) -> None:
        if max_messages is not None and max_messages < 1:
            raise ValueError(f"max_messages must be at least 1, got {max_messages}")
        self.max_messages = max_messages
        self._messages: list[Message] = []
        self._parts: dict[str, list[_Part]] = {}
        self._seq = 0
        for message in messages:
            self.append(message)

    # -- reading --------------------------------------------------------------
    @property
    def messages(self) -> list[Message]:
        """The messages, oldest first (a copy of the list; the messages are live)."""
        return list(self._messages)

    def __len__(self) -> int:
        return len(self._messages)

    def __iter__(self) -> Iterator[Message]:
        return iter(list(self._messages))

    def get(self, message_id: str) -> Message | None:
        """The message with ``message_id``, if present."""
        for message in self._messages:
            if message.id == message_id:
                return message
        return None

    def to_chat_messages(self, *, exclude_ids: Iterable[str] = ()) -> list[dict[str, Any]]:
        """History in OpenAI chat format.

        Messages still streaming (not completed) and empty ones are left out:
        a model must not see half a sentence as if it had been said.
        """
        excluded = set(exclude_ids)
        return [
            m.to_chat_message() for m in self._messages
            if m.id not in excluded and m.completed and m.content.strip()
        ]

    # -- writing --------------------------------------------------------------
    def append(self, message: Message) -> Message:
        """Add a :class:`Message` at the end."""
        if self.get(message.id) is not None:
            raise ValueError(f"a message with id {message.id!r} is already in the conversation")
        self._messages.append(message)
        self._trim()
        return message

    def add_message(self, role: str, content: str, *, user_id: str | None = None,
                    message_id: str | None = None, completed: bool = True) -> Message:
        """Add a new message at the end and return it."""
        return self.append(Message(role=role, content=content, user_id=user_id,
                                   id=message_id or _new_id(), completed=completed))

    async def send_message(self, role: str, user_id: str | None = None, content: str = "",
                           message_id: str | None = None) -> Message:
        """Add a completed message (Vision Agents' async spelling of add_message)."""
        return self.add_message(role, content, user_id=user_id, message_id=message_id)

    def upsert_message(self, role: str, content: str = "", message_id: str | None = None,
                       completed: bool = True, replace: bool = False, *,
                       user_id: str | None = None,
                       content_index: int | None = None) -> Message:
        """Create or update a message by id.

        A new id (or None) adds a message. For an existing one, ``replace``
        sets its text, otherwise ``content`` is a delta appended in
        ``content_index`` order (deltas may arrive out of order). A completed
        message is no longer changed.
        """
        existing = self.get(message_id) if message_id is not None else None
        if existing is None:
            message = self.add_message(role, "", user_id=user_id, message_id=message_id,
                                       completed=False)
            self._apply(message, content, replace=True, content_index=content_index)
            self._set_completed(message, completed)
            return message
        if existing.role != role:
            raise ValueError(f"message {message_id!r} has role {existing.role!r}, "
                             f"not {role!r}")
        if existing.completed:
            logger.debug("ignoring an update of completed message %s", message_id)
            return existing
        if user_id is not None:
            existing.user_id = user_id
        self._apply(existing, content, replace=replace, content_index=content_index)
        self._set_completed(existing, completed)
        return existing

    def truncate_message(self, message_id: str, heard_text: str) -> Message | None:
        """Cut an interrupted reply down to ``heard_text``, what the user actually heard.

        The message is marked completed and interrupted. If nothing was heard
        it is removed (returns None), so the model never sees words the user
        did not hear.
        """
        message = self.get(message_id)
        if message is None:
            logger.debug("truncate_message: no message %s", message_id)
            return None
        if not heard_text.strip():
            self.remove_message(message_id)
            return None
        message.content = heard_text
        message.interrupted = True
        self._set_completed(message, True)
        return message

    def remove_message(self, message_id: str) -> bool:
        """Remove a message; returns whether it was present."""
        before = len(self._messages)
        self._messages = [m for m in self._messages if m.id != message_id]
        self._parts.pop(message_id, None)
        return len(self._messages) != before

    def clear(self) -> None:
        """Remove every message."""
        self._messages.clear()
        self._parts.clear()

    # -- internals ------------------------------------------------------------
    def _apply(self, message: Message, content: str, *, replace: bool,
               content_index: int | None) -> None:
        parts = self._parts.setdefault(message.id, [])
        if replace:
            parts.clear()
        index = content_index if content_index is not None else (
            max((p.index for p in parts), default=0))
        self._seq += 1
        parts.append(_Part(index, self._seq, content))
        parts.sort(key=lambda p: (p.index, p.seq))
        message.content = "".join(p.text for p in parts)

    def _set_completed(self, message: Message, completed: bool) -> None:
        message.completed = completed
        if completed:
            self._parts.pop(message.id, None)

    def _trim(self) -> None:
        if self.max_messages is None:
            return
        while len(self._messages) > self.max_messages:
            victim = next((m for m in self._messages if m.role != "system"), self._messages[0])
            self.remove_message(victim.id)
