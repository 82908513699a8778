"""ParamsProbe: writes the params it was created with to ``path`` (JSON), then idles."""

from __future__ import annotations

import json
from pathlib import Path

from va_actors.core.node import Inbound, Node, NodeContext


class ParamsProbe(Node):
    """Params: ``path`` of the JSON file to write; any others are recorded too."""

    async def start(self, ctx: NodeContext) -> None:
        Path(self.params["path"]).write_text(json.dumps(self.params))  # noqa: ASYNC240 - once

    async def on_message(self, msg: Inbound) -> None:
        return None
