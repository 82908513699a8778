"""Asker: publishes a final transcript for each line appended to a file (a scripted user)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from va_actors.core.node import Node, NodeContext
from va_actors.core.stt import STTTranscriptEvent


class Asker(Node):
    """Params: ``path`` (a text file; each new line is said as a user turn)."""

    outputs = ("transcript",)

    def __init__(self, path: str, **params: Any) -> None:
        super().__init__(path=path, **params)
        self.path = Path(path)

    async def run(self, ctx: NodeContext) -> None:
        await ctx.wait_started()
        said = 0
        while True:
            lines = self.path.read_text().splitlines() if self.path.exists() else []
            for line in lines[said:]:
                ctx.publish("transcript", STTTranscriptEvent(text=line, mode="final"))
            said = max(said, len(lines))
            await asyncio.sleep(0.05)
