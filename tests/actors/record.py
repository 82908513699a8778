"""RecordingSink: one JSON line per inbound message (and per epoch change)."""

from __future__ import annotations

import json
import time
import zlib
from typing import Any, TextIO

from va_actors.core.audio.pcm import PcmData
from va_actors.core.events.base import BaseEvent
from va_actors.core.events.foreign import ForeignEvent
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


_EVENT_FIELDS = ("text", "playing", "interrupted", "response_id", "custom",
                 "trailing_silence_ms", "duration_ms", "total_ms", "segments_ms", "user_text",
                 "is_recoverable", "played_ms", "heard_text")
"""Event fields recorded when present (turn timing in audio time, latency breakdowns)."""


def _plain(value: Any) -> Any:
    """``value`` with anything JSON cannot hold replaced by its repr."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if value is None or isinstance(value, int | float | str | bool):
        return value
    return repr(value)


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
        if isinstance(msg.value, PcmData):  # agent audio: which reply and sentence it speaks
            for name, key in (("response_id", "response_id"), ("synthesis_id", "synthesis_id"),
                              ("text", "sentence")):
                if isinstance(msg.fields.get(name), str):
                    record[key] = msg.fields[name]
        if isinstance(msg.value, str):
            record["text"] = msg.value
            for name in ("final", "response_id", "index", "interrupted", "continues", "user_text",
                         "rerun", "resent"):
                if msg.fields.get(name) is not None:
                    record[name] = msg.fields[name]
        if isinstance(msg.value, ForeignEvent):  # a type this process never imported
            record["type"] = record["event_type"] = msg.value.event_type
            record.update({k: _plain(v) for k, v in msg.value.data.items()
                           if k in _EVENT_FIELDS})
        elif isinstance(msg.value, BaseEvent):
            record["type"] = msg.value.type
            if isinstance(getattr(msg.value, "epoch", None), int):
                record["event_epoch"] = msg.value.epoch
            for name in _EVENT_FIELDS:
                value = getattr(msg.value, name, None)
                if isinstance(value, bool | int | float | str | dict):
                    record[name] = _plain(value)
        self._write(record)

    async def on_epoch(self, epoch: int) -> None:
        self._write({"on_epoch": epoch, "recv_ns": time.time_ns()})

    async def close(self) -> None:
        self._out.close()
