"""The consumer's last-seen file: the last seq handed on per (source, topic), kill -9 safe.

A small fixed-size file in the run directory (``<instance>.seen``), written
through a shared mmap: a write is a store into the page cache, so it
survives the writer's ``kill -9`` (not the machine's crash, which ends the
run anyway) and costs no system call per message. The supervisor reads it
before it starts the next incarnation.

Layout (little-endian): a header ``magic[8] since_ns:i64``, then
:data:`SLOTS` slots of ``seq:i64 ts_ns:i64 key[192]`` where key is
``source NUL topic`` (NUL-padded; an empty key is a free slot). A slot's key
is written before its numbers, and the numbers in one 16-byte store.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["SLOTS", "SeenFile", "SeenState", "read_seen"]

MAGIC = b"VASEEN1\0"
SLOTS = 64
"""(source, topic) pairs a file holds; more are not persisted (heartbeats still carry them)."""
_HEADER = struct.Struct("<8sq")
_NUMBERS = struct.Struct("<qq")
_KEY_BYTES = 192
_SLOT_BYTES = _NUMBERS.size + _KEY_BYTES
SIZE = _HEADER.size + SLOTS * _SLOT_BYTES

Key = tuple[str, str]
"""(source instance, topic)."""


@dataclass
class SeenState:
    """What a file (or a heartbeat) says an incarnation had handed on.

    Attributes:
        since_ns: start of the earliest incarnation whose input this covers.
        seen: (source, topic) -> (seq, publish time in ns).
    """

    since_ns: int
    seen: dict[Key, tuple[int, int]] = field(default_factory=dict)

    def by_topic(self) -> dict[str, dict[str, tuple[int, int]]]:
        """``seen`` regrouped as topic -> source -> (seq, ts)."""
        out: dict[str, dict[str, tuple[int, int]]] = {}
        for (source, topic), pair in self.seen.items():
            out.setdefault(topic, {})[source] = pair
        return out


def _key_bytes(key: Key) -> bytes:
    raw = f"{key[0]}\0{key[1]}".encode()
    if len(raw) > _KEY_BYTES:
        raise ValueError(f"source and topic {key!r} are longer than {_KEY_BYTES} bytes")
    return raw


class SeenFile:
    """The writer: one per consumer incarnation.

    Args:
        path: the file (created or reset).
        state: where to start from (the previous incarnation's numbers), so
            an incarnation that dies before it hands anything on passes them on.
    """

    def __init__(self, path: str | os.PathLike[str], state: SeenState) -> None:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.ftruncate(fd, SIZE)
            self._map = mmap.mmap(fd, SIZE, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        finally:
            os.close(fd)
        self._slots: dict[Key, int] = {}
        _HEADER.pack_into(self._map, 0, MAGIC, state.since_ns)
        for key, (seq, ts) in state.seen.items():
            self.update(key, seq, ts)

    def update(self, key: Key, seq: int, ts_ns: int) -> None:
        """Record message ``seq`` of ``key`` as handed on."""
        offset = self._slots.get(key)
        if offset is None:
            offset = self._claim(key)
            if offset is None:
                return
        _NUMBERS.pack_into(self._map, offset, seq, ts_ns)

    def _claim(self, key: Key) -> int | None:
        if len(self._slots) >= SLOTS:
            return None
        try:
            raw = _key_bytes(key)
        except ValueError:
            return None
        offset = _HEADER.size + len(self._slots) * _SLOT_BYTES
        self._map[offset + _NUMBERS.size:offset + _SLOT_BYTES] = raw.ljust(_KEY_BYTES, b"\0")
        self._slots[key] = offset
        return offset

    def close(self) -> None:
        """Unmap (the contents stay in the file)."""
        with contextlib.suppress(ValueError, BufferError):
            self._map.close()


def read_seen(path: str | os.PathLike[str]) -> SeenState | None:
    """The numbers in ``path``; None when it is missing, short or not such a file."""
    try:
        data = Path(path).read_bytes()
    except OSError:
        return None
    if len(data) < SIZE:
        return None
    magic, since_ns = _HEADER.unpack_from(data, 0)
    if magic != MAGIC:
        return None
    state = SeenState(since_ns)
    for i in range(SLOTS):
        offset = _HEADER.size + i * _SLOT_BYTES
        raw = data[offset + _NUMBERS.size:offset + _SLOT_BYTES].rstrip(b"\0")
        if not raw:
            break
        source, sep, topic = raw.decode(errors="replace").partition("\0")
        if sep:
            state.seen[(source, topic)] = _NUMBERS.unpack_from(data, offset)
    return state
