"""Running the guide's code blocks as the guide wrote them.

``blocks/`` holds every Python block of Vision Agents' "Create Your Own
Plugin" guide, one file each, with only the imports changed
(``vision_agents.core`` -> ``va_actors.core``, getstream's ``PcmData`` ->
``va_actors.core.audio.PcmData``; the first block's ``vision_agents.plugins``
-> ``va_actors.plugins``). Whole modules are imported as modules. Fragments
(a method, an ``except`` clause, a statement using ``self``) need what the
guide leaves around them: :func:`run_block` executes a fragment with the
names it uses supplied, and :func:`run_in` places it inside a function whose
first lines are given; both make that context visible in the test that uses
it. No block's text is edited.
"""

from __future__ import annotations

import asyncio
import textwrap
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

BLOCKS = Path(__file__).parent / "blocks"

GUIDE_BLOCKS = {
    # block file -> the guide's section it comes from
    "guide_before_you_build.py": "Before You Build",
    "guide_quickstart_acme/__init__.py": "Quickstart Template: __init__.py",
    "guide_quickstart_acme/stt.py": "Quickstart Template: stt.py",
    "guide_stt.py": "Base Class Interfaces: STT",
    "guide_tts.py": "Base Class Interfaces: TTS",
    "guide_llm.py": "Base Class Interfaces: LLM",
    "guide_vlm.py": "Base Class Interfaces: VLM (Video Language Model)",
    "guide_realtime.py": "Base Class Interfaces: Realtime (Speech-to-Speech)",
    "guide_pcm_resampling.py": "Audio Utilities: PcmData Resampling",
    "guide_tts_output_format.py": "Audio Utilities: TTS Output Format",
    "guide_audio_queue.py": "Audio Utilities: AudioQueue for Buffering",
    "guide_function_calling.py": "Function Calling",
    "guide_custom_events.py": "Event Emission: custom events",
    "guide_owned_client.py": "Gotchas: owned vs shared clients",
    "guide_connection_timeout.py": "Gotchas: connection timeouts",
    "guide_cleanup_order.py": "Gotchas: cleanup order",
    "guide_temporary_errors.py": "Gotchas: temporary errors",
    "guide_permanent_errors.py": "Gotchas: permanent errors",
    "guide_thread_pool_stt.py": "Gotchas: threading for blocking operations",
    "guide_lock.py": "Gotchas: concurrency control",
    "guide_reconnect.py": "Gotchas: reconnection with backoff",
}


def source(name: str) -> str:
    """The text of block ``name`` (a file under ``blocks/``)."""
    return (BLOCKS / name).read_text()


def run_block(name: str, namespace: dict[str, Any] | None = None,
              **context: Any) -> dict[str, Any]:
    """Execute block ``name`` with ``context`` as the names it uses; return its namespace.

    Given ``namespace``, the block runs in it (what it defined is there even
    if it raised).
    """
    namespace = {} if namespace is None else namespace
    namespace.update({"__name__": Path(name).stem, **context})
    exec(compile(source(name), str(BLOCKS / name), "exec", dont_inherit=True), namespace)
    return namespace


def run_in(name: str, header: str, indent: int = 4, **context: Any) -> dict[str, Any]:
    """Execute block ``name`` placed, ``indent`` spaces in, after the lines ``header``.

    ``header`` is what the guide implies around a fragment (a class and method
    line, the ``try:`` an ``except`` clause belongs to); the block's own lines
    are only indented, never changed.
    """
    text = textwrap.dedent(header).rstrip("\n") + "\n" + textwrap.indent(source(name),
                                                                          " " * indent)
    namespace: dict[str, Any] = {"__name__": Path(name).stem, **context}
    first = textwrap.dedent(header).strip().splitlines()[0]
    where = f"{BLOCKS / name} (placed after: {first})"
    exec(compile(text, where, "exec", dont_inherit=True), namespace)
    return namespace


class TimeScale:
    """``asyncio`` for blocks whose timing is the point, on a test clock.

    Given to a block as its ``asyncio``: ``sleep`` and ``wait_for`` record
    the delays and timeouts the block asks for and wait ``scale`` of them;
    everything else is asyncio's.
    """

    def __init__(self, scale: float = 0.001) -> None:
        self.scale = scale
        self.sleeps: list[float] = []
        self.timeouts: list[float | None] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(asyncio, name)

    async def sleep(self, delay: float, result: Any = None) -> Any:
        self.sleeps.append(delay)
        return await asyncio.sleep(delay * self.scale, result)

    async def wait_for(self, aw: Awaitable[Any], timeout: float | None) -> Any:
        self.timeouts.append(timeout)
        return await asyncio.wait_for(aw, None if timeout is None else timeout * self.scale)
