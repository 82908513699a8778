"""Where the conversation store keeps its rows: a SQLite file, or a PostgreSQL server.

SQLite (a file: in the run directory by default, or ``[pipeline] state``) for
one machine; PostgreSQL (``state = "postgresql://host/db"``) when sessions
or actors move between machines. Both take the same SQL, written with ``?``
placeholders and ``ON CONFLICT`` upserts; this module hides the rest
(placeholders, transactions, errors, size). A password never goes in the
URL (it would reach the run directory's spec files): libpq reads it from
``PGPASSWORD`` or ``~/.pgpass`` in each actor's environment.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

__all__ = ["Database", "PostgresDatabase", "SqliteDatabase", "StateError", "check_url",
           "file_bytes", "is_url", "open_database"]

POSTGRES_SCHEMES = ("postgresql", "postgres")


class StateError(RuntimeError):
    """The store cannot be opened or used; the message names it (never a password)."""


class Cursor(Protocol):
    """What a write transaction offers."""

    def execute(self, sql: str, args: Sequence[Any] = ()) -> Any: ...

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> Any: ...


class Database(Protocol):
    """A connection the store runs its SQL on (``?`` placeholders)."""

    where: str
    """Names the store in messages: the file, or the URL without credentials."""

    def write(self) -> AbstractContextManager[Cursor]:
        """A transaction: committed on exit, rolled back on an exception."""

    def query(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Rows of a SELECT."""

    def size_bytes(self) -> int:
        """Bytes the store takes (file and log, or the tables on the server)."""

    def close(self) -> None:
        """Close the connection (writes are already committed)."""


def is_url(target: str) -> bool:
    """``target`` names a server (``scheme://...``) rather than a file."""
    return "://" in target


def check_url(target: str) -> str | None:
    """Why ``target`` cannot be a store URL, or None when it can."""
    parts = urlsplit(target)
    if parts.scheme not in POSTGRES_SCHEMES:
        return (f"unknown store {parts.scheme!r}: give a SQLite file path or a "
                "postgresql:// URL")
    if parts.password:
        return ("the URL holds a password, which would be written to the run directory; "
                "put it in PGPASSWORD (or ~/.pgpass) in the actors' environment instead")
    return None


def open_database(target: str | Path) -> Database:
    """The SQLite file or PostgreSQL URL ``target``; StateError if it cannot be opened."""
    text = str(target)
    if is_url(text):
        problem = check_url(text)
        if problem is not None:
            raise StateError(f"conversation store {_display(text)}: {problem}")
        return PostgresDatabase(text)
    return SqliteDatabase(Path(text))


def _display(url: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    user = f"{parts.username}@" if parts.username else ""
    return f"{parts.scheme}://{user}{host}{port}{parts.path}"


class SqliteDatabase:
    """A SQLite file in WAL mode: a committed write survives the writer's kill -9."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.where = str(path)
        try:
            self._db = sqlite3.connect(path, timeout=5.0, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            # A commit reaches the OS before returning: enough for a process crash.
            self._db.execute("PRAGMA synchronous=NORMAL")
        except sqlite3.Error as exc:
            raise StateError(f"conversation store {self.where}: {exc}") from None

    @contextmanager
    def write(self) -> Iterator[Cursor]:
        try:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            raise StateError(f"conversation store {self.where}: {exc}") from None

    def query(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        try:
            return list(self._db.execute(sql, tuple(args)).fetchall())
        except sqlite3.Error as exc:
            raise StateError(f"conversation store {self.where}: {exc}") from None

    def size_bytes(self) -> int:
        return file_bytes(self.path)

    def close(self) -> None:
        self._db.close()


def file_bytes(path: str | Path) -> int:
    """Bytes on disk of a SQLite store (database and write-ahead log; 0 if absent)."""
    target = Path(path)
    wal = target.with_name(target.name + "-wal")
    return sum(p.stat().st_size for p in (target, wal) if p.exists())


class _PgCursor:
    """``?`` placeholders on a psycopg cursor."""

    def __init__(self, cursor: Any) -> None:
        self._cursor = cursor

    def execute(self, sql: str, args: Sequence[Any] = ()) -> Any:
        return self._cursor.execute(_pg(sql), tuple(args))

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> Any:
        return self._cursor.executemany(_pg(sql), [tuple(r) for r in rows])


def _pg(sql: str) -> str:
    return sql.replace("%", "%%").replace("?", "%s")


class PostgresDatabase:
    """A PostgreSQL server (psycopg 3): one store shared by machines."""

    def __init__(self, url: str) -> None:
        self.where = _display(url)
        try:
            import psycopg
        except ImportError:
            raise StateError(f"conversation store {self.where}: PostgreSQL needs psycopg "
                             "(pip install 'va-actors[postgres]')") from None
        self._errors: type[Exception] = psycopg.Error
        try:
            self._db = psycopg.connect(url, connect_timeout=5)
        except psycopg.Error as exc:
            raise StateError(f"conversation store {self.where}: {_first_line(exc)}") from None

    @contextmanager
    def write(self) -> Iterator[Cursor]:
        try:
            with self._db.transaction(), self._db.cursor() as cursor:
                yield _PgCursor(cursor)
        except self._errors as exc:
            raise StateError(f"conversation store {self.where}: {_first_line(exc)}") from None

    def query(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        try:
            with self._db.transaction(), self._db.cursor() as cursor:
                cursor.execute(_pg(sql), tuple(args))
                return list(cursor.fetchall())
        except self._errors as exc:
            raise StateError(f"conversation store {self.where}: {_first_line(exc)}") from None

    def size_bytes(self) -> int:
        rows = self.query("SELECT COALESCE(SUM(pg_total_relation_size(c.oid)), 0) "
                          "FROM pg_class c WHERE c.relname IN "
                          "('messages', 'instructions', 'replies', 'tools')")
        return int(rows[0][0]) if rows else 0

    def close(self) -> None:
        self._db.close()


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
