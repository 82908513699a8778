"""References to environment variables in pipeline files.

Actor params and the ``env`` tables of actors and services may name an
environment variable instead of holding a value, so that a secret or a
machine's own address never has to be written in the file::

    base_url = "${VLM_URL:-http://127.0.0.1:8000/v1}"
    env = { ACME_API_KEY = "$ACME_KEY" }

``$NAME`` and ``${NAME}`` are the variable's value; ``${NAME:-default}`` is
``default`` when NAME is unset or empty; ``$$`` is a literal ``$``. A ``$`` not
followed by a name (``"$5"``) is kept as it is. A variable that is not set,
with no default, is an error: ``va-launch check`` reports it with file and
line, and nothing starts.

Params are resolved in the actor's own process, just before its plugin is
created, from that process's environment (the supervisor's plus the actor's
``env`` table). Their values therefore never reach the spec files, the
manifest or a log line.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TypeVar

__all__ = ["EnvRef", "MalformedReferenceError", "UnsetVariableError", "expand", "references",
           "unset"]

_REF = re.compile(r"\$(?:(?P<dollar>\$)"
                  r"|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?\}"
                  r"|(?P<bare>[A-Za-z_][A-Za-z0-9_]*)"
                  r"|(?P<bad>\{[^}]*\}?))")

T = TypeVar("T")


@dataclass(frozen=True)
class EnvRef:
    """One reference: the variable's name and its default (None: required)."""

    name: str
    default: str | None = None


class MalformedReferenceError(ValueError):
    """A ``${`` that does not form ``${NAME}`` or ``${NAME:-default}``."""


class UnsetVariableError(ValueError):
    """Variables that are referred to, have no default and are not set."""

    def __init__(self, names: list[str]) -> None:
        self.names = names
        listed = ", ".join(names)
        super().__init__(f"environment variable{'s' if len(names) > 1 else ''} {listed} "
                         f"not set")


def references(value: object) -> list[EnvRef]:
    """Every reference inside ``value`` (strings, nested in lists and tables).

    Raises:
        MalformedReferenceError: a ``${`` that is not a reference.
    """
    return [ref for text in _strings(value) for ref in _refs(text)]


def unset(value: object, environ: Mapping[str, str]) -> list[str]:
    """Names referred to in ``value`` with no default and not in ``environ``.

    Raises:
        MalformedReferenceError: a ``${`` that is not a reference.
    """
    names = [ref.name for ref in references(value)
             if ref.default is None and ref.name not in environ]
    return list(dict.fromkeys(names))


def expand(value: T, environ: Mapping[str, str]) -> T:
    """``value`` with every reference replaced, strings nested in lists and tables too.

    Raises:
        UnsetVariableError: naming every variable that is required and unset.
        MalformedReferenceError: a ``${`` that is not a reference.
    """
    missing = unset(value, environ)
    if missing:
        raise UnsetVariableError(missing)
    return _expand(value, environ)


def _expand(value: T, environ: Mapping[str, str]) -> T:
    if isinstance(value, str):
        return _REF.sub(lambda match: _value(match, environ), value)  # type: ignore[return-value]
    if isinstance(value, list):
        return [_expand(item, environ) for item in value]  # type: ignore[return-value]
    if isinstance(value, dict):
        return {key: _expand(item, environ)  # type: ignore[return-value]
                for key, item in value.items()}
    return value


def _value(match: re.Match[str], environ: Mapping[str, str]) -> str:
    if match["dollar"]:
        return "$"
    name = match["braced"] or match["bare"]
    default = match["default"]
    found = environ.get(name, "")
    if default is not None and not found:
        return default
    return found


def _refs(text: str) -> Iterator[EnvRef]:
    for match in _REF.finditer(text):
        if match["bad"] is not None:
            raise MalformedReferenceError(
                f"{match[0]!r} is not a reference: write ${{NAME}} or ${{NAME:-default}}, "
                f"or $$ for a literal $")
        name = match["braced"] or match["bare"]
        if name:
            yield EnvRef(name, match["default"])


def _strings(value: object) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
