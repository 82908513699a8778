"""A Vision Agents TTS (``stream_audio`` giving getstream PcmData) as our TTS.

Our base does the rest: sentences in, output format and stateful
resampling, epochs (no chunk of an interrupted synthesis goes out), events.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, ClassVar

from va_actors.core import tts
from va_actors.core.audio import PcmData
from va_actors.plugins.vision_agents.convert import from_stream_pcm
from va_actors.plugins.vision_agents.warm import warm_up

__all__ = ["VisionAgentsTTS"]


class VisionAgentsTTS(tts.TTS):
    """Runs the Vision Agents TTS class ``va_class`` (set by the adapter).

    Args:
        **params: the Vision Agents class's own constructor parameters.
    """

    va_class: ClassVar[type]

    def __init__(self, **params: Any) -> None:
        self.va: Any = self.va_class(**params)
        super().__init__(provider_name=getattr(self.va, "provider_name", None)
                         or self.va_class.__name__)
        self.model = str(getattr(self.va, "model", "") or "")

    async def start(self) -> None:
        """Warm up (load the voice) and start the plugin."""
        await warm_up(self.va)
        await self.va.start()

    async def stream_audio(self, text: str, *args: Any, **kwargs: Any) -> AsyncIterator[PcmData]:
        """The plugin's audio for ``text``, chunk by chunk, as our PcmData."""
        result = await self.va.stream_audio(text, *args, **kwargs)
        return _chunks(result)

    async def stop_audio(self) -> None:
        """Abort the plugin's synthesis."""
        await self.va.stop_audio()

    async def close(self) -> None:
        """Stop speaking and close the plugin."""
        await super().close()
        await self.va.close()


async def _chunks(result: Any) -> AsyncIterator[PcmData]:
    """What ``stream_audio`` returned (one PcmData, or a sync or async iterator of them)."""
    if hasattr(result, "__aiter__"):
        async for item in result:
            yield from_stream_pcm(item)
    elif hasattr(result, "samples"):
        yield from_stream_pcm(result)
    else:
        for item in result:
            yield from_stream_pcm(item)
