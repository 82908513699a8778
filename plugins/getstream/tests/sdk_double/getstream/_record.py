"""Where the double writes what the plugin did: memory, and $STREAM_DOUBLE_RECORD."""

from __future__ import annotations

import json
import os
import time
from typing import Any

LOG: list[dict[str, Any]] = []


def record(what: str, **fields: Any) -> None:
    entry = {"what": what, "t": time.time(), **fields}
    LOG.append(entry)
    path = os.environ.get("STREAM_DOUBLE_RECORD")
    if path:
        with open(path, "a", encoding="utf-8") as out:
            out.write(json.dumps(entry, default=str) + "\n")


def record_audio(samples: Any) -> None:
    path = os.environ.get("STREAM_DOUBLE_RECORD")
    if path:
        with open(path + ".pcm", "ab") as out:
            out.write(samples.astype("<i2").tobytes())
