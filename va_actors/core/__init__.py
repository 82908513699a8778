"""va_actors.core: the plugin API (no ZeroMQ, no processes).

Port a Vision Agents plugin by changing ``vision_agents.core`` to
``va_actors.core`` and getstream's ``PcmData`` to
``va_actors.core.audio.PcmData``; then import what you need as in the guide::

    from va_actors.core import stt, tts, llm, processors, turn_detection
    from va_actors.core.audio import PcmData
    from va_actors.core.events import PluginBaseEvent

Submodules are imported on first use so that ``import va_actors.core`` stays cheap.
"""

from __future__ import annotations

import importlib
from types import ModuleType

_SUBMODULES = {
    "audio", "backoff", "edge", "events", "llm", "node", "processors", "stt", "tts",
    "turn_detection", "utils", "video",
}

__all__ = sorted(_SUBMODULES)


def __getattr__(name: str) -> ModuleType:
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
