"""Reading a provider SDK's objects, whatever kind they are.

SDK responses come as dicts (JSON as the HTTP API sent it), pydantic
models, dataclasses, or objects with ``__slots__``; :func:`field_of` reads a
field of any of them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["field_of"]


def field_of(obj: Any, name: str) -> Any:
    """``obj[name]`` for a mapping, else ``obj.name``; None when absent or unreadable."""
    if isinstance(obj, Mapping):
        return obj.get(name)
    try:
        return getattr(obj, name, None)
    except Exception:  # a provider object whose attribute access itself fails
        return None
