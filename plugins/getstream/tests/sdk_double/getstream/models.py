"""The two request models the edge sends (fields as in getstream.models)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class UserRequest:
    id: str
    name: str | None = None
    image: str | None = None
    role: str | None = None
    custom: dict[str, Any] | None = None


@dataclass
class CallRequest:
    created_by_id: str | None = None
    custom: dict[str, Any] | None = None
