"""Python values as plain JSON data (dicts, lists, str, numbers, bool, None).

One conversion for tool results, tool arguments and event fields: dataclasses,
enums, datetimes (ISO 8601 text), durations (seconds), sets, paths and pydantic models have a JSON
form; anything else raises ``TypeError``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import json
from pathlib import Path
from typing import Any

__all__ = ["json_default", "to_json_value"]


def json_default(value: Any) -> Any:
    """``json.dumps`` ``default=`` hook for the types listed in the module docstring."""
    if isinstance(value, enum.Enum):
        return value.value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, set | frozenset):
        return list(value)
    if isinstance(value, Path):
        return str(value)
    dump = getattr(value, "model_dump", None)  # pydantic models
    if callable(dump):
        return dump()
    raise TypeError(f"object of type {type(value).__name__} is not JSON serialisable")


def to_json_value(value: Any) -> Any:
    """``value`` as plain JSON data (dicts, lists, str, numbers, bool, None).

    Dataclasses, enums, datetimes, sets and pydantic models are converted.

    Raises:
        TypeError: something in ``value`` has no JSON form.
    """
    try:
        return json.loads(json.dumps(value, default=json_default, ensure_ascii=False))
    except (ValueError, RecursionError) as exc:
        raise TypeError(str(exc)) from exc
