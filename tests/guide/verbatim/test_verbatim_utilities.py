"""The guide's AudioQueue block, its custom-events block and its first block (openai)."""

from __future__ import annotations

import asyncio
import gc
import warnings
from typing import Any

import pytest
from guide_blocks import run_block
from guide_helpers import collect, over_wire, speech

from va_actors.core.events import PluginBaseEvent
from va_actors.core.stt import STT
from va_actors.core.utils import AudioQueue


def test_audio_queue_block_reads_without_await() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "coroutine ... was never awaited"
        block = run_block("guide_audio_queue.py", pcm_chunk=speech(16000, 3.0))
        gc.collect()
    queue, audio = block["queue"], block["audio"]
    assert isinstance(queue, AudioQueue) and queue.buffer_limit_ms == 5000
    assert audio.num_samples == 16000 and audio.sample_rate == 16000  # get_samples(16000)
    assert queue.duration_ms == pytest.approx(1000)  # 3 s in, 1 s + 16k samples out


async def test_audio_queue_reads_still_work_awaited() -> None:
    queue = AudioQueue(max_duration_ms=5000)  # Vision Agents' form: the reads are awaited
    queue.put_nowait(speech(16000, 0.5))
    assert (await queue.get_duration(duration_ms=100)).num_samples == 1600
    assert (await queue.get_samples(num_samples=16000)).num_samples == 6400  # what was left
    pending = queue.get_samples(num_samples=160, timeout=1)
    assert pending.num_samples == 0  # used at once: nothing was queued
    asyncio.get_running_loop().call_later(0.01, queue.put_nowait, speech(16000, 0.02))
    assert (await pending).num_samples == 160  # awaited: it waited for the audio
    assert (await queue.get_duration(duration_ms=10)).num_samples == 160
    with pytest.raises(asyncio.QueueEmpty):
        await queue.get_duration(duration_ms=20, timeout=0.01)


class ListeningSTT(STT):
    async def process_audio(self, pcm_data: Any, participant: Any = None) -> None:
        return None


async def test_custom_event_block_sends_from_a_plugin_and_crosses_the_wire() -> None:
    plugin = ListeningSTT()
    got = collect(plugin.events, PluginBaseEvent)
    block = run_block("guide_custom_events.py", self=plugin)  # "In your plugin:" self is it
    await asyncio.sleep(0)
    event_class = block["AcmeCustomEvent"]
    (event,) = got
    assert isinstance(event, event_class)
    assert (event.type, event.custom_field) == ("acme.custom", "value")
    back = over_wire(event, "stt.events")
    assert isinstance(back, event_class) and back.custom_field == "value"
    assert back.event_id == event.event_id


def test_before_you_build_block_makes_the_openai_compatible_plugins() -> None:
    openai = pytest.importorskip("va_actors.plugins.openai")
    block: dict[str, Any] = {}
    run_block("guide_before_you_build.py", block)
    llm, vlm = block["llm"], block["vlm"]
    assert isinstance(llm, openai.ChatCompletionsLLM) and llm.model == "llama-3.1-8b"
    assert isinstance(vlm, openai.ChatCompletionsVLM) and vlm.fps == 1
    realtime = block["realtime"]
    assert isinstance(realtime, openai.Realtime) and realtime.model == "gpt-realtime"
