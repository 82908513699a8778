"""Conversation: ordered, upsertable messages; truncation to what was heard."""

from __future__ import annotations

import pytest

from va_actors.core.llm.conversation import Conversation, Message


def test_add_and_chat_format() -> None:
    conv = Conversation()
    conv.add_message("system", "be brief")
    user = conv.add_message("user", "hi", user_id="u1")
    conv.add_message("assistant", "hello")
    assert user.user_id == "u1"
    assert len(conv) == 3
    assert conv.to_chat_messages() == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello"},
    ]
    assert conv.get(user.id) is user
    with pytest.raises(ValueError, match="already"):
        conv.append(Message(role="user", content="x", id=user.id))


def test_upsert_deltas_replacement_and_completion() -> None:
    conv = Conversation()
    msg = conv.upsert_message("assistant", "Hel", "m1", completed=False)
    conv.upsert_message("assistant", "lo", "m1", completed=False)
    assert msg.content == "Hello" and not msg.completed
    assert conv.to_chat_messages() == []  # still streaming: not shown to a model
    conv.upsert_message("assistant", "Hello there", "m1", completed=True, replace=True)
    assert msg.content == "Hello there" and msg.completed
    conv.upsert_message("assistant", "ignored", "m1")  # completed messages do not change
    assert msg.content == "Hello there"
    assert len(conv) == 1


def test_out_of_order_deltas_by_content_index() -> None:
    conv = Conversation()
    conv.upsert_message("assistant", "world", "m", completed=False, content_index=1)
    conv.upsert_message("assistant", "hello ", "m", completed=False, content_index=0)
    conv.upsert_message("assistant", "!", "m", completed=True, content_index=2)
    assert conv.get("m") is not None
    assert conv.get("m").content == "hello world!"  # type: ignore[union-attr]


def test_upsert_role_mismatch_is_an_error() -> None:
    conv = Conversation()
    conv.upsert_message("user", "a", "m", completed=False)
    with pytest.raises(ValueError, match="role 'user'"):
        conv.upsert_message("assistant", "b", "m")


def test_truncate_keeps_only_what_was_heard() -> None:
    conv = Conversation()
    conv.add_message("user", "tell me a story")
    reply = conv.add_message("assistant", "Once upon a time there was a dragon.")
    truncated = conv.truncate_message(reply.id, "Once upon a time")
    assert truncated is reply
    assert reply.content == "Once upon a time"
    assert reply.interrupted and reply.completed
    assert conv.to_chat_messages()[-1] == {"role": "assistant", "content": "Once upon a time"}


def test_truncate_with_nothing_heard_removes_the_message() -> None:
    conv = Conversation()
    reply = conv.add_message("assistant", "Never heard.")
    assert conv.truncate_message(reply.id, "  ") is None
    assert len(conv) == 0
    assert conv.truncate_message("missing", "x") is None


def test_max_messages_drops_oldest_non_system() -> None:
    conv = Conversation(max_messages=3)
    conv.add_message("system", "rules")
    for i in range(4):
        conv.add_message("user", f"m{i}")
    assert [m.content for m in conv] == ["rules", "m2", "m3"]
    with pytest.raises(ValueError):
        Conversation(max_messages=0)


def test_remove_and_clear() -> None:
    conv = Conversation([Message(role="user", content="a", id="1")])
    assert conv.remove_message("1") is True
    assert conv.remove_message("1") is False
    conv.add_message("user", "b")
    conv.clear()
    assert conv.messages == []
