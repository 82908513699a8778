"""The LLM driver's side of the conversation store: write as turns go, restore on start.

A store that fails (disk full, file removed) must not cost the user the
conversation in progress: every write here logs one warning naming the
file and the rest of the session goes on in memory.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from va_actors.core.llm.conversation import Conversation, Message
from va_actors.runtime.state.store import (
    ConversationStore,
    ReplyRecord,
    ReplyState,
    StateError,
    StoredMessage,
)

__all__ = ["ConversationRecorder"]

logger = logging.getLogger("va_actors.runtime.state")

T = TypeVar("T")


class ConversationRecorder:
    """Keeps one LLM's conversation and reply progress in a :class:`ConversationStore`.

    Args:
        store: the open store.
        instance: the actor instance (named in warnings).
    """

    def __init__(self, store: ConversationStore, instance: str) -> None:
        self.store = store
        self._instance = instance
        self._failed = False

    @classmethod
    def open(cls, path: str, session: str, run: str, instance: str) -> ConversationRecorder | None:
        """The recorder for ``path``, or None (logged) if it cannot be opened."""
        if not path:
            return None
        try:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            return cls(ConversationStore(path, session, run), instance)
        except (OSError, StateError) as exc:
            logger.warning("%s: no conversation store, history stays in memory: %s",
                           instance, exc)
            return None

    @classmethod
    def for_host(cls, host: Any) -> ConversationRecorder | None:
        """The recorder an actor host's spec names (``state_store``), or None."""
        spec = getattr(host, "spec", None)
        if spec is None:
            return None
        return cls.open(getattr(spec, "state_store", ""), getattr(spec, "session", ""),
                        getattr(spec, "run", ""), str(getattr(host, "instance", "")))

    # -- restore ------------------------------------------------------------------------
    def restore(self, conversation: Conversation, *, keep_user: bool = False,
                ) -> ReplyRecord | None:
        """Put the stored conversation into ``conversation`` (if it is empty).

        Returns the reply a crash cut off mid-generation in this run, whose
        user message is then left out (re-running the turn adds it back)
        unless ``keep_user`` (a Realtime session answers it where it stands).
        """
        messages: list[StoredMessage] = self._guard(self.store.messages, [])
        pending = self._guard(self.store.last_reply, None)
        if pending is not None and (pending.state is not ReplyState.GENERATING
                                    or pending.run != self.store.run):
            pending = None
        if pending is not None and not keep_user and messages and messages[-1].role == "user":
            messages = messages[:-1]
        if len(conversation) == 0:
            for stored in messages:
                conversation.append(Message(role=stored.role, content=stored.content,
                                            user_id=stored.user_id, id=stored.id,
                                            interrupted=stored.interrupted,
                                            timestamp=stored.ts))
        if messages:
            logger.info("%s: restored %d messages of the conversation", self._instance,
                        len(messages))
        return pending

    def instructions(self) -> str | None:
        """Instructions an edge set for this session (None: the plugin's own)."""
        return self._guard(self.store.instructions, None)

    # -- write --------------------------------------------------------------------------
    def save(self, conversation: Conversation) -> None:
        """Store the conversation's settled messages (what a restarted LLM should see)."""
        messages = [StoredMessage(m.id, m.role, m.content, m.user_id, m.interrupted,
                                  m.timestamp)
                    for m in conversation.messages if m.completed and m.content.strip()]
        self._guard(lambda: self.store.save_messages(messages), None)

    def set_instructions(self, text: str) -> None:
        self._guard(lambda: self.store.set_instructions(text), None)

    def clear(self) -> None:
        self._guard(self.store.clear, None)

    def begin(self, response_id: str, epoch: int, user_text: str) -> None:
        self._guard(lambda: self.store.begin_reply(response_id, epoch, user_text), None)

    def rename(self, old: str, new: str) -> None:
        self._guard(lambda: self.store.rename_reply(old, new), None)

    def sent(self, response_id: str, text: str, chunks: int) -> None:
        self._guard(lambda: self.store.reply_sent(response_id, text, chunks), None)

    def end(self, response_id: str, text: str, state: ReplyState) -> None:
        self._guard(lambda: self.store.end_reply(response_id, text, state), None)

    def heard(self, response_id: str, heard: str) -> None:
        self._guard(lambda: self.store.reply_heard(response_id, heard), None)

    def tool_started(self, response_id: str, call_id: str, name: str, arguments: Any) -> None:
        self._guard(lambda: self.store.tool_started(response_id, call_id, name, arguments),
                    None)

    def tool_ended(self, response_id: str, call_id: str, result: Any) -> None:
        self._guard(lambda: self.store.tool_ended(response_id, call_id, result), None)

    def close(self) -> None:
        self._guard(self.store.close, None)

    def _guard(self, call: Callable[[], T], default: T) -> T:
        try:
            return call()
        except StateError as exc:
            if not self._failed:
                self._failed = True
                logger.warning("%s: the conversation store failed; the session goes on in "
                               "memory: %s", self._instance, exc)
            return default
