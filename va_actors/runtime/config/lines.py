"""Where things are in a TOML text: tomllib keeps no positions, so scan the raw lines.

Pure text processing: :func:`scan_lines` maps every table header and key to
its 1-based line, addressed like the parsed document, so a problem found in
the parsed data can name the line it came from.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

__all__ = ["LineMap", "PathKey", "scan_lines"]

PathKey = tuple[str | int, ...]
_BARE = r"[A-Za-z0-9_-]+"
_BASIC = r'"(?:[^"\\]|\\.)*"'
_LITERAL = r"'[^']*'"
_KEY_PART = rf"\s*(?:{_BARE}|{_BASIC}|{_LITERAL})\s*"
_KEY_LINE = re.compile(rf"^(?P<key>{_KEY_PART}(?:\.{_KEY_PART})*)=")
_PART = re.compile(rf"\s*({_BARE}|{_BASIC}|{_LITERAL})\s*")


def _split_key(raw: str) -> list[str]:
    """``a . "b" . 'c'`` -> ``["a", "b", "c"]`` (escapes inside quotes are kept)."""
    parts: list[str] = []
    pos = 0
    while (match := _PART.match(raw, pos)) is not None:
        token = match.group(1)
        parts.append(token[1:-1] if token[0] in "\"'" else token)
        pos = match.end()
        if pos >= len(raw) or raw[pos] != ".":
            break
        pos += 1
    return parts


@dataclass
class _LexState:
    """Carried from line to line: inside a multi-line string, or a value's brackets."""

    string: str | None = None
    depth: int = 0

    @property
    def at_statement(self) -> bool:
        return self.string is None and self.depth == 0

    def advance(self, text: str) -> None:
        """Consume ``text``: strings, comments and brackets."""
        i = 0
        while i < len(text):
            if self.string is not None:
                end = text.find(self.string, i)
                if end < 0:
                    return
                self.string, i = None, end + 3
            elif text[i] == "#":
                return
            elif text.startswith(('"""', "'''"), i):
                self.string, i = text[i:i + 3], i + 3
            elif text[i] in "\"'":
                i = _string_end(text, i)
            else:
                if text[i] in "[{":
                    self.depth += 1
                elif text[i] in "]}":
                    self.depth = max(0, self.depth - 1)
                i += 1


def _string_end(text: str, start: int) -> int:
    quote, i = text[start], start + 1
    while i < len(text):
        if quote == '"' and text[i] == "\\":
            i += 2
        elif text[i] == quote:
            return i + 1
        else:
            i += 1
    return i


@dataclass
class LineMap:
    """1-based lines of table headers and keys, addressed like the parsed document.

    ``("actor", 1, "params", "model")`` is ``params.model`` of the second
    ``[[actor]]``. Lookups fall back to the closest recorded ancestor, so a key
    that cannot be located (inside an inline table) gets its table's line.
    """

    lines: dict[PathKey, int] = field(default_factory=dict)
    spans: dict[PathKey, tuple[int, int]] = field(default_factory=dict)
    text: list[str] = field(default_factory=list)
    last_line: int = 1

    def line(self, path: PathKey) -> int:
        """Line of ``path``, else of its closest recorded ancestor, else 1."""
        for end in range(len(path), 0, -1):
            found = self.lines.get(path[:end])
            if found is not None:
                return found
        return 1

    def element_line(self, path: PathKey, element: str) -> int:
        """Line of the string ``element`` inside the (multi-line) value of ``path``."""
        span = self.spans.get(path)
        if span is not None:
            for quoted in (f'"{element}"', f"'{element}'"):
                for lineno in range(span[0], span[1] + 1):
                    if quoted in self.text[lineno - 1]:
                        return lineno
        return self.line(path)

    def record(self, path: PathKey, line: int) -> None:
        """Remember the first line where ``path`` appears."""
        self.lines.setdefault(path, line)


class _LineScanner:
    """Walks a TOML text line by line, recording where headers and keys are."""

    def __init__(self) -> None:
        self.map = LineMap()
        self.state = _LexState()
        self.prefix: PathKey = ()
        self.arrays: dict[tuple[str, ...], int] = {}
        self.value: tuple[PathKey, int] | None = None  # a key whose value spans lines

    def feed(self, lineno: int, line: str) -> None:
        self.map.text.append(line)
        if not self.state.at_statement:
            self.state.advance(line)
            self._close_value(lineno)
            return
        text = line.strip()
        if not text or text.startswith("#"):
            return
        if text.startswith("[["):
            self._header(lineno, text[2:].split("]]", 1)[0], array=True)
        elif text.startswith("["):
            self._header(lineno, text[1:].split("]", 1)[0], array=False)
        elif (match := _KEY_LINE.match(text)) is not None:
            parts = _split_key(match.group("key"))
            for end in range(1, len(parts) + 1):
                self.map.record((*self.prefix, *parts[:end]), lineno)
            self.value = ((*self.prefix, *parts), lineno)
            self.state.advance(text[match.end():])
            self._close_value(lineno)

    def _close_value(self, lineno: int) -> None:
        if self.value is not None and self.state.at_statement:
            path, start = self.value
            self.map.spans.setdefault(path, (start, lineno))
            self.value = None

    def _header(self, lineno: int, raw: str, *, array: bool) -> None:
        names = _split_key(raw)
        path: list[str | int] = []
        for depth, name in enumerate(names):
            path.append(name)
            self.map.record(tuple(path), lineno)
            so_far = tuple(names[: depth + 1])
            if array and depth == len(names) - 1:
                self.arrays[so_far] = self.arrays.get(so_far, -1) + 1
                path.append(self.arrays[so_far])
            elif so_far in self.arrays:
                path.append(self.arrays[so_far])
        self.prefix = tuple(path)
        self.map.record(self.prefix, lineno)


def scan_lines(text: str) -> LineMap:
    """Map every table header and key of the TOML ``text`` to its line."""
    scanner = _LineScanner()
    lines = text.splitlines()
    for lineno, line in enumerate(lines, start=1):
        scanner.feed(lineno, line)
    scanner.map.last_line = max(1, len(lines))
    return scanner.map
