"""Test double of the getstream SDK's client (see ../README.md)."""

from __future__ import annotations

from typing import Any

from getstream._record import record
from getstream.video import AsyncVideoClient

__all__ = ["AsyncStream"]


class AsyncStream:
    """``AsyncStream(api_key=, api_secret=)``: records that keys came, never their values."""

    def __init__(self, api_key: str | None = None, api_secret: str | None = None,
                 **_: Any) -> None:
        if not api_key or not api_secret:
            raise ValueError("api_key is required")
        self.api_key, self.api_secret = api_key, api_secret
        self.video = AsyncVideoClient(self)
        record("client", has_key=True, has_secret=True)

    async def upsert_users(self, *users: Any) -> Any:
        record("upsert_users", ids=[u.id for u in users], names=[u.name for u in users])
        return {"users": {u.id: u for u in users}}

    async def aclose(self) -> None:
        record("aclose")
