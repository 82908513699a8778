"""RecordingSink: one JSON line per inbound message (and per epoch change)."""

from __future__ import annotations

import json
import time
import zlib
from typing import Any, TextIO

from va_actors.core.audio.pcm import PcmData
from va_actors.core.events.base import BaseEvent
from va_actors.core.node import Inbound, Node, NodeContext
from va_actors.core.video.frame import VideoFrame


def checksum(value: Any) -> int:
    """CRC-32 of a message value: PCM bytes, frame pixels, event type or text."""
    if isinstance(value, PcmData):
        return zlib.crc32(value.to_bytes())
    if isinstance(value, VideoFrame):
        return value.checksum()
    if isinstance(value, BaseEvent):
        return zlib.crc32(value.type.encode())
    return zlib.crc32(str(value).encode())


class RecordingSink(Node):
    """Params: ``path`` of the JSONL file (flushed per line, readable while running)."""

    _out: TextIO

    async def start(self, ctx: NodeContext) -> None:
        self._out = open(self.params["path"], "a", encoding="utf-8")  # noqa: SIM115, ASYNC230

    def _write(self, record: dict[str, Any]) -> None:
        self._out.write(json.dumps(record) + "\n")
        self._out.flush()

    async def on_message(self, msg: Inbound) -> None:
        record = {"topic": msg.topic, "seq": msg.seq, "epoch": msg.epoch, "ts_ns": msg.ts_ns,
                  "recv_ns": time.time_ns(), "source": msg.source, "crc": checksum(msg.value)}
        for name in ("pts", "ref"):
            if msg.fields.get(name) is not None:
                record[name] = msg.fields[name]
        if isinstance(msg.value, str):
            record["text"] = msg.value
        if isinstance(msg.value, BaseEvent):
            record["type"] = msg.value.type
            for name in ("text", "playing", "interrupted", "response_id", "heard_text"):
                value = getattr(msg.value, name, None)
                if isinstance(value, str | bool):
                    record[name] = value
            if isinstance(getattr(msg.value, "epoch", None), int):
                record["event_epoch"] = msg.value.epoch
        self._write(record)

    async def on_epoch(self, epoch: int) -> None:
        self._write({"on_epoch": epoch, "recv_ns": time.time_ns()})

    async def close(self) -> None:
        self._out.close()
