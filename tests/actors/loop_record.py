"""LoopRecorder: reads its inputs with ``async for msg in ctx.inputs()`` (dora's loop form)."""

from __future__ import annotations

import json
from pathlib import Path

from va_actors.core.node import Node, NodeContext


class LoopRecorder(Node):
    """Params: ``path`` of the JSONL file; one line per message, written from run()."""

    outputs = ()

    async def run(self, ctx: NodeContext) -> None:
        with Path(self.params["path"]).open("a", encoding="utf-8") as out:  # noqa: ASYNC230
            async for msg in ctx.inputs():
                out.write(json.dumps({"topic": msg.topic, "seq": msg.seq}) + "\n")
                out.flush()
