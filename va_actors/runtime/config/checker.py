"""The checker: collects problems with the file and line of each, and reads typed values.

A check never stops at the first problem: each getter returns the value, or
None after recording an issue, so one run reports everything wrong in a file.
"""

from __future__ import annotations

import datetime as dt
import difflib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from va_actors.runtime.config.lines import LineMap, PathKey
from va_actors.runtime.config.settings import ConfigIssue

__all__ = ["Checker", "Number", "RecordingChecker", "did_you_mean", "short", "toml_type"]


@dataclass(frozen=True)
class Number:
    """A numeric setting: int or float, with a lower bound."""

    kind: type[int] | type[float]
    minimum: float
    inclusive: bool = True

    def describe(self) -> str:
        noun = "an integer" if self.kind is int else "a number"
        op = ">=" if self.inclusive else ">"
        return f"{noun} {op} {self.minimum:g}"

    def in_range(self, value: float) -> bool:
        return value >= self.minimum if self.inclusive else value > self.minimum


_TOML_TYPES: tuple[tuple[type, str], ...] = (
    (bool, "boolean"), (int, "integer"), (float, "float"), (str, "string"),
    (list, "array"), (dict, "table"), (dt.datetime, "datetime"), (dt.date, "date"),
    (dt.time, "time"),
)


def toml_type(value: object) -> str:
    for py_type, name in _TOML_TYPES:
        if isinstance(value, py_type):
            return name
    return type(value).__name__


def did_you_mean(word: str, choices: Iterable[str]) -> str | None:
    options = sorted(set(choices))
    close = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    if close:
        return f"did you mean {close[0]!r}?"
    return f"expected one of: {', '.join(options)}" if options else None


def short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


class Checker:
    """Collects issues with the file name and line of each."""

    def __init__(self, file: str, lines: LineMap) -> None:
        self.file = file
        self.lines = lines
        self.issues: list[ConfigIssue] = []

    def issue(self, path: PathKey, message: str, hint: str | None = None, *,
              element: str | None = None) -> None:
        """Record a problem at ``path`` (at the string ``element`` of its value, if given)."""
        line = (self.lines.line(path) if element is None
                else self.lines.element_line(path, element))
        self.issues.append(ConfigIssue(self.file, line, message, hint))

    def line(self, path: PathKey) -> int:
        return self.lines.line(path)

    # -- typed getters: return the value, or None after recording an issue --
    def string(self, table: Mapping[str, Any], key: str, path: PathKey, what: str) -> str | None:
        value = table.get(key)
        if value is None:
            return None
        if not isinstance(value, str):
            self.issue((*path, key), f"{what}{key} must be a string, got "
                                     f"{toml_type(value)} {short(value)}",
                       f'write {key} = "..."')
            return None
        return value

    def number(self, table: Mapping[str, Any], key: str, path: PathKey, what: str,
               spec: Number) -> float | None:
        value = table.get(key)
        if value is None:
            return None
        ok_type = isinstance(value, int) if spec.kind is int else isinstance(value, int | float)
        if isinstance(value, bool) or not ok_type:
            hint = f"write {key} = {value}" if isinstance(value, str) and _numeric(value) else None
            self.issue((*path, key), f"{what}{key} must be {spec.describe()}, got "
                                     f"{toml_type(value)} {short(value)}", hint)
            return None
        number = float(value)
        if not spec.in_range(number):
            self.issue((*path, key), f"{what}{key} = {value} is out of range: it must be "
                                     f"{spec.describe()}")
            return None
        return number

    def choice(self, table: Mapping[str, Any], key: str, path: PathKey, what: str,
               choices: Sequence[str]) -> str | None:
        value = self.string(table, key, path, what)
        if value is None or value in choices:
            return value
        self.issue((*path, key), f"{what}{key} = {value!r} is not one of "
                                 f"{', '.join(repr(c) for c in choices)}",
                   did_you_mean(value, choices))
        return None

    def table(self, parent: Mapping[str, Any], key: str, path: PathKey,
              what: str) -> dict[str, Any] | None:
        value = parent.get(key)
        if value is None:
            return None
        if not isinstance(value, dict):
            self.issue((*path, key), f"{what}{key} must be a table, got "
                                     f"{toml_type(value)} {short(value)}",
                       f"write [{key}] or {key} = {{ ... }}")
            return None
        return value

    def unknown_keys(self, table: Mapping[str, Any], known: Sequence[str], path: PathKey,
                     what: str) -> None:
        for key, value in table.items():
            if key not in known:
                self.issue((*path, key), f"unknown {_kind(value)} {key!r} in {what}",
                           did_you_mean(key, known))


class RecordingChecker(Checker):
    """A checker with no file: it keeps each issue's key path (the plugin probe's)."""

    def __init__(self) -> None:
        super().__init__("", LineMap())
        self.recorded: list[tuple[PathKey, str, str | None]] = []

    def issue(self, path: PathKey, message: str, hint: str | None = None, *,
              element: str | None = None) -> None:
        self.recorded.append((path, message, hint))


def _kind(value: object) -> str:
    """'table' for a table or an array of tables, else 'key'."""
    if isinstance(value, dict):
        return "table"
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        return "table"
    return "key"


def _numeric(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
