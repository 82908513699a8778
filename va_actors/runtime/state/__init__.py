"""Session state that outlives the actor holding it: the conversation store."""

from va_actors.runtime.state.store import (
    STATE_FILE,
    ConversationStore,
    ReplyRecord,
    ReplyState,
    StateError,
    StoredMessage,
    StoredTool,
)

__all__ = ["STATE_FILE", "ConversationStore", "ReplyRecord", "ReplyState", "StateError",
           "StoredMessage", "StoredTool"]
