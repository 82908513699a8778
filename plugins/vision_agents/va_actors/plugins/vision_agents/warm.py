"""Vision Agents' warm-up (``Warmable``): load the model before the first input."""

from __future__ import annotations

from typing import Any

from vision_agents.core.warmup import Warmable

__all__ = ["warm_up"]


async def warm_up(plugin: Any) -> None:
    """Run the plugin's warm-up, as their Agent does when it starts, if it has one."""
    if isinstance(plugin, Warmable):
        await plugin.warmup()
