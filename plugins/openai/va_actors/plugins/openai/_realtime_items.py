"""The conversation as the server holds it, kept so a new socket can be given it back.

A Realtime session keeps the conversation on the server; when the socket
drops, that conversation is gone. :class:`ConversationItems` mirrors it item
by item (server ids, server order): user and assistant text (user audio by
its transcript; assistant audio by the transcript of what the user heard),
function calls and their outputs. :meth:`ConversationItems.restore_events`
turns it into the ``conversation.item.create`` events that rebuild it.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["ConversationItems", "Item"]

logger = logging.getLogger(__name__)

_TEXT_KEYS = {"input_text": "text", "output_text": "text", "text": "text",
              "input_audio": "transcript", "output_audio": "transcript", "audio": "transcript"}


@dataclass
class Item:
    """One conversation item.

    ``text`` is a message's text (for audio: its transcript, cut to what was
    heard after a truncation); ``audio`` says the message was spoken.
    """

    id: str
    type: str
    role: str | None = None
    text: str = ""
    audio: bool = False
    call_id: str | None = None
    name: str | None = None
    arguments: str = ""
    output: str | None = None
    truncated: bool = False


def _content_text(content: object) -> tuple[str, bool]:
    """The text of a message's content parts, and whether one of them is audio."""
    texts: list[str] = []
    audio = False
    for part in content if isinstance(content, list) else []:
        if not isinstance(part, Mapping):
            continue
        kind = str(part.get("type") or "")
        audio = audio or "audio" in kind
        value = part.get(_TEXT_KEYS.get(kind, "text"))
        if isinstance(value, str):
            texts.append(value)
    return "".join(texts), audio


class ConversationItems:
    """An ordered, id-keyed mirror of the server's conversation (at most ``max_items``)."""

    def __init__(self, max_items: int = 256) -> None:
        if max_items < 1:
            raise ValueError(f"max_items must be at least 1, got {max_items}")
        self.max_items = max_items
        self._items: OrderedDict[str, Item] = OrderedDict()

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[Item]:
        return iter(list(self._items.values()))

    def get(self, item_id: str | None) -> Item | None:
        """The item with ``item_id``, if known."""
        return self._items.get(item_id) if item_id is not None else None

    def add(self, item: Item) -> Item:
        """Add ``item`` at the end (or return the one already known under its id)."""
        known = self._items.get(item.id)
        if known is not None:
            return known
        self._items[item.id] = item
        while len(self._items) > self.max_items:
            self._items.popitem(last=False)
        return item

    def upsert(self, data: Mapping[str, Any]) -> Item | None:
        """Take an item as the server sent it (``conversation.item.added`` / ``.done``).

        Known items keep the text gathered from deltas when the server's copy
        has none (it omits audio transcripts while streaming) and keep a
        truncated text as it is.
        """
        item_id, kind = data.get("id"), data.get("type")
        if not isinstance(item_id, str) or not isinstance(kind, str):
            return None
        item = self.add(Item(id=item_id, type=kind))
        if kind == "message":
            role = data.get("role")
            item.role = role if isinstance(role, str) else item.role
            text, audio = _content_text(data.get("content"))
            item.audio = item.audio or audio
            if text and not item.truncated:
                item.text = text
        elif kind == "function_call":
            for name in ("call_id", "name"):
                value = data.get(name)
                if isinstance(value, str):
                    setattr(item, name, value)
            arguments = data.get("arguments")
            if isinstance(arguments, str) and arguments:
                item.arguments = arguments
        elif kind == "function_call_output":
            call_id, output = data.get("call_id"), data.get("output")
            item.call_id = call_id if isinstance(call_id, str) else item.call_id
            item.output = output if isinstance(output, str) else item.output
        return item

    def append_text(self, item_id: str, delta: str, *, role: str = "assistant") -> Item:
        """Add streamed text (a transcript delta) to a message, creating it if new."""
        item = self.add(Item(id=item_id, type="message", role=role))
        if not item.truncated:
            item.text += delta
        return item

    def set_text(self, item_id: str, text: str, *, role: str) -> Item:
        """Set a message's whole text (a final transcript), unless it was truncated."""
        item = self.add(Item(id=item_id, type="message", role=role))
        if not item.truncated:
            item.text = text
        return item

    def truncate(self, item_id: str, heard_text: str) -> None:
        """A message was cut off: it now holds only what the user heard."""
        item = self._items.get(item_id)
        if item is not None:
            item.text = heard_text
            item.truncated = True

    def remove(self, item_id: str) -> None:
        """The server deleted an item."""
        self._items.pop(item_id, None)

    def restore_events(self, pending_calls: set[str] | frozenset[str] = frozenset()
                       ) -> list[dict[str, Any]]:
        """``conversation.item.create`` events that rebuild the conversation, in order.

        Messages go back as text (``input_text`` for the user, ``output_text``
        for the assistant); audio itself cannot be restored. A message with
        no text (user audio never transcribed) is left out, and so is a
        function call with no output unless its call id is in
        ``pending_calls`` (a tool still running: its output follows later).
        """
        answered = {i.call_id for i in self._items.values()
                    if i.type == "function_call_output" and i.call_id}
        calls = {i.call_id for i in self._items.values()
                 if i.type == "function_call" and i.call_id}
        events: list[dict[str, Any]] = []
        skipped = 0
        for item in self._items.values():
            body = self._restored(item, answered, calls, pending_calls)
            if body is None:
                skipped += 1
            else:
                events.append({"type": "conversation.item.create", "item": body})
        if skipped:
            logger.info("restoring the conversation: %d item(s) without text or answer "
                        "left out", skipped)
        return events

    @staticmethod
    def _restored(item: Item, answered: set[str], calls: set[str],
                  pending: set[str] | frozenset[str]) -> dict[str, Any] | None:
        if item.type == "message" and item.role in ("user", "assistant", "system"):
            if not item.text.strip():
                return None
            part = "output_text" if item.role == "assistant" else "input_text"
            return {"id": item.id, "type": "message", "role": item.role,
                    "content": [{"type": part, "text": item.text}]}
        if item.type == "function_call" and item.call_id and item.name:
            if item.call_id not in answered and item.call_id not in pending:
                return None
            return {"id": item.id, "type": "function_call", "call_id": item.call_id,
                    "name": item.name, "arguments": item.arguments or "{}"}
        if item.type == "function_call_output" and item.call_id in calls:
            return {"id": item.id, "type": "function_call_output", "call_id": item.call_id,
                    "output": item.output or ""}
        return None
