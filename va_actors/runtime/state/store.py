"""The conversation store: a session's conversation kept outside the actor that holds it.

An LLM or Realtime actor's history lives in its process; a kill -9 would
take it along. The driver therefore writes the conversation here as turns
complete (instructions, user turns, replies cut to what was heard, tool
calls and results), and the progress of the reply in flight (what text went
out, under which epoch), so that a restarted actor picks the session up where
the crashed one left it.

SQLite in WAL mode, one file per pipeline run (``state.db`` in the run
directory unless ``[pipeline] state`` names another file), or a PostgreSQL
server (``state = "postgresql://..."``, :mod:`.database`); one row set per
session. A committed write survives a kill -9 of the writer; each connection
is owned by one thread.
"""

from __future__ import annotations

import enum
import json
import time
from collections.abc import Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from va_actors.runtime.state.database import Cursor, StateError, file_bytes, is_url, open_database

__all__ = ["STATE_FILE", "ConversationStore", "ReplyRecord", "ReplyState", "StateError",
           "StoredMessage", "StoredTool", "store_bytes"]

STATE_FILE = "state.db"
"""The store's file name in the run directory (the default place)."""

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS messages (
    session TEXT NOT NULL, position INTEGER NOT NULL, id TEXT NOT NULL, role TEXT NOT NULL,
    content TEXT NOT NULL, user_id TEXT, interrupted INTEGER NOT NULL,
    ts DOUBLE PRECISION NOT NULL, PRIMARY KEY (session, position))""",
    """CREATE TABLE IF NOT EXISTS instructions (
    session TEXT PRIMARY KEY, text TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS replies (
    session TEXT NOT NULL, response_id TEXT NOT NULL, n BIGINT NOT NULL, run TEXT NOT NULL,
    epoch BIGINT NOT NULL, user_text TEXT NOT NULL, sent TEXT NOT NULL, chunks BIGINT NOT NULL,
    state TEXT NOT NULL, heard TEXT NOT NULL, ts DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (session, response_id))""",
    """CREATE TABLE IF NOT EXISTS tools (
    session TEXT NOT NULL, response_id TEXT NOT NULL, call_id TEXT NOT NULL, n BIGINT NOT NULL,
    name TEXT NOT NULL, arguments TEXT NOT NULL, result TEXT, ts DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (session, response_id, call_id))""",
)
"""Portable SQL (SQLite and PostgreSQL); ``n`` orders a session's rows."""


class ReplyState(enum.StrEnum):
    """Where a reply stands."""

    GENERATING = "generating"
    """The LLM was still producing it (a crash now leaves it half-said)."""
    DONE = "done"
    """All of its text went out."""
    CUT = "cut"
    """The user interrupted it, or a newer turn superseded it: never re-run."""


@dataclass(frozen=True)
class StoredMessage:
    """One conversation message as stored."""

    id: str
    role: str
    content: str
    user_id: str | None = None
    interrupted: bool = False
    ts: float = 0.0


@dataclass(frozen=True)
class ReplyRecord:
    """The progress of one reply.

    Attributes:
        response_id: the reply's id (its text chunks carry it).
        run: the pipeline run that produced it (a stored file may outlive runs).
        epoch: the epoch its chunks were published under.
        user_text: the whole user turn it answers.
        sent: the text published so far (all of it once ``DONE``).
        chunks: text chunks published so far (the next one's index).
        state: see :class:`ReplyState`.
        heard: what the user heard of it, as the output last reported.
    """

    response_id: str
    run: str
    epoch: int
    user_text: str
    sent: str
    chunks: int
    state: ReplyState
    heard: str = ""


@dataclass(frozen=True)
class StoredTool:
    """One tool call of a reply, with its result once it returned."""

    response_id: str
    call_id: str
    name: str
    arguments: Any
    result: Any = None
    done: bool = False


class ConversationStore:
    """One session's conversation in a SQLite file or on a PostgreSQL server.

    Args:
        target: the database file (created with its tables if missing), or a
            ``postgresql://`` URL (:mod:`.database`).
        session: the session id rows are kept under.
        run: this pipeline run's id (a reply of another run is never re-run).
    """

    def __init__(self, target: str | Path, session: str, run: str = "") -> None:
        self.target = str(target)
        self.session = session
        self.run = run
        self._db = open_database(self.target)
        try:
            with self._db.write() as db:
                for statement in _SCHEMA:
                    db.execute(statement)
        except StateError:
            self._db.close()
            raise

    @property
    def where(self) -> str:
        """The store as messages name it (no credentials)."""
        return self._db.where

    def close(self) -> None:
        """Close the connection (writes are already committed)."""
        self._db.close()

    def _write(self) -> AbstractContextManager[Cursor]:
        return self._db.write()

    def _query(self, sql: str, args: tuple[Any, ...]) -> list[Any]:
        return self._db.query(sql, args)

    # -- the conversation ---------------------------------------------------------------
    def save_messages(self, messages: Iterable[StoredMessage]) -> None:
        """Replace the session's conversation with ``messages`` (one transaction)."""
        rows = [(self.session, i, m.id, m.role, m.content, m.user_id, int(m.interrupted),
                 m.ts or time.time()) for i, m in enumerate(messages)]
        with self._write() as db:
            db.execute("DELETE FROM messages WHERE session = ?", (self.session,))
            if rows:
                db.executemany("INSERT INTO messages VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)

    def messages(self) -> list[StoredMessage]:
        """The session's conversation, oldest first."""
        rows = self._query(
            "SELECT id, role, content, user_id, interrupted, ts FROM messages "
            "WHERE session = ? ORDER BY position", (self.session,))
        return [StoredMessage(i, role, content, user, bool(cut), ts)
                for i, role, content, user, cut, ts in rows]

    def set_instructions(self, text: str) -> None:
        """Record the session's instructions (the system prompt)."""
        with self._write() as db:
            db.execute("INSERT INTO instructions VALUES (?, ?) ON CONFLICT (session) "
                       "DO UPDATE SET text = excluded.text", (self.session, text))

    def instructions(self) -> str | None:
        """The session's instructions, if some were recorded."""
        rows = self._query("SELECT text FROM instructions WHERE session = ?", (self.session,))
        return str(rows[0][0]) if rows else None

    def clear(self) -> None:
        """Forget the session's conversation (a fresh conversation began)."""
        with self._write() as db:
            for table in ("messages", "replies", "tools"):
                db.execute(f"DELETE FROM {table} WHERE session = ?", (self.session,))

    # -- replies ------------------------------------------------------------------------
    def begin_reply(self, response_id: str, epoch: int, user_text: str) -> None:
        """A reply started; any other reply still generating is superseded."""
        with self._write() as db:
            db.execute("UPDATE replies SET state = ? WHERE session = ? AND state = ?",
                       (ReplyState.CUT.value, self.session, ReplyState.GENERATING.value))
            db.execute(
                "INSERT INTO replies VALUES (?, ?, (SELECT COALESCE(MAX(n), 0) + 1 FROM replies "
                "WHERE session = ?), ?, ?, ?, '', 0, ?, '', ?) ON CONFLICT (session, response_id) "
                "DO UPDATE SET n = excluded.n, run = excluded.run, epoch = excluded.epoch, "
                "user_text = excluded.user_text, sent = '', chunks = 0, state = excluded.state, "
                "heard = '', ts = excluded.ts",
                (self.session, response_id, self.session, self.run, epoch, user_text,
                 ReplyState.GENERATING.value, time.time()))

    def rename_reply(self, old: str, new: str) -> None:
        """The reply recorded as ``old`` (before it had an id) is ``new``."""
        with self._write() as db:
            for table in ("replies", "tools"):
                db.execute(f"UPDATE {table} SET response_id = ? "
                           "WHERE session = ? AND response_id = ?", (new, self.session, old))

    def reply_sent(self, response_id: str, sent: str, chunks: int) -> None:
        """The reply's text published so far."""
        with self._write() as db:
            db.execute("UPDATE replies SET sent = ?, chunks = ?, ts = ? "
                       "WHERE session = ? AND response_id = ?",
                       (sent, chunks, time.time(), self.session, response_id))

    def end_reply(self, response_id: str, text: str, state: ReplyState) -> None:
        """The reply is over: all of ``text`` went out (``DONE``) or it was ``CUT``."""
        with self._write() as db:
            db.execute("UPDATE replies SET sent = ?, state = ?, ts = ? "
                       "WHERE session = ? AND response_id = ?",
                       (text, state.value, time.time(), self.session, response_id))

    def reply_heard(self, response_id: str, heard: str) -> None:
        """What the user heard of a reply, as an output reported it."""
        with self._write() as db:
            db.execute("UPDATE replies SET heard = ? WHERE session = ? AND response_id = ?",
                       (heard, self.session, response_id))

    def last_reply(self) -> ReplyRecord | None:
        """The session's latest reply, if any."""
        rows = self._query(
            "SELECT response_id, run, epoch, user_text, sent, chunks, state, heard FROM replies "
            "WHERE session = ? ORDER BY n DESC LIMIT 1", (self.session,))
        if not rows:
            return None
        rid, run, epoch, user_text, sent, chunks, state, heard = rows[0]
        return ReplyRecord(rid, run, int(epoch), user_text, sent, int(chunks),
                           ReplyState(state), heard)

    # -- tools --------------------------------------------------------------------------
    def tool_started(self, response_id: str, call_id: str, name: str, arguments: Any) -> None:
        """A tool call of a reply began."""
        with self._write() as db:
            db.execute(
                "INSERT INTO tools VALUES (?, ?, ?, (SELECT COALESCE(MAX(n), 0) + 1 FROM tools "
                "WHERE session = ?), ?, ?, NULL, ?) ON CONFLICT (session, response_id, call_id) "
                "DO UPDATE SET name = excluded.name, arguments = excluded.arguments, "
                "result = NULL, ts = excluded.ts",
                (self.session, response_id, call_id, self.session, name, _json(arguments),
                 time.time()))

    def tool_ended(self, response_id: str, call_id: str, result: Any) -> None:
        """A tool call returned ``result``."""
        with self._write() as db:
            db.execute("UPDATE tools SET result = ? "
                       "WHERE session = ? AND response_id = ? AND call_id = ?",
                       (_json(result), self.session, response_id, call_id))

    def tools(self) -> list[StoredTool]:
        """The session's tool calls, oldest first."""
        rows = self._query(
            "SELECT response_id, call_id, name, arguments, result FROM tools "
            "WHERE session = ? ORDER BY n", (self.session,))
        return [StoredTool(rid, cid, name, json.loads(args),
                           None if result is None else json.loads(result), result is not None)
                for rid, cid, name, args, result in rows]

    # -- reading, for the CLI -----------------------------------------------------------
    def size_bytes(self) -> int:
        """The store's size (file and write-ahead log, or its tables on the server)."""
        return self._db.size_bytes()

    def sessions(self) -> list[str]:
        """Session ids with a conversation in this store."""
        rows = self._query("SELECT DISTINCT session FROM messages UNION "
                           "SELECT DISTINCT session FROM replies ORDER BY 1", ())
        return [str(r[0]) for r in rows]


def store_bytes(target: str | Path) -> int:
    """The size of the store at ``target`` (0 if it holds nothing yet)."""
    text = str(target)
    if not is_url(text):
        return file_bytes(text)
    try:
        store = ConversationStore(text, "")
    except StateError:
        return 0
    try:
        return store.size_bytes()
    finally:
        store.close()


def _json(value: Any) -> str:
    return json.dumps(value, default=repr, ensure_ascii=False)
