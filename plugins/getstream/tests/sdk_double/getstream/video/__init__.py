"""``client.video.call(type, id)``: the call's REST side."""

from __future__ import annotations

import json
from typing import Any

from getstream._record import record

FAIL_JOINS = {"count": 0}
"""Tests set ``count``: that many ``get_or_create`` calls fail like a dropped network."""


class AsyncVideoClient:
    def __init__(self, stream: Any) -> None:
        self.stream = stream

    def call(self, call_type: str, id: str) -> Call:
        return Call(self, call_type, id)


class Call:
    def __init__(self, client: AsyncVideoClient, call_type: str, id: str) -> None:
        self.client, self.call_type, self.id = client, call_type, id

    async def get_or_create(self, data: Any = None, **_: Any) -> Any:
        if FAIL_JOINS["count"] > 0:
            FAIL_JOINS["count"] -= 1
            record("get_or_create_failed", call=f"{self.call_type}:{self.id}")
            raise ConnectionError("Could not connect to the Stream API (double)")
        record("get_or_create", call=f"{self.call_type}:{self.id}",
               created_by_id=getattr(data, "created_by_id", None))
        return {"call": {"cid": f"{self.call_type}:{self.id}"}}

    async def send_call_event(self, user_id: str | None = None,
                              custom: dict[str, object] | None = None, **_: Any) -> Any:
        size = len(json.dumps(custom).encode())
        if size > 5 * 1024:  # the API's limit: 400
            raise ValueError(f"custom event payload is {size} bytes, above 5KB")
        record("send_call_event", user_id=user_id, custom=custom)
        return {}
