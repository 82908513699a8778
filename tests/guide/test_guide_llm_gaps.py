"""Calls Vision Agents plugin code makes into ``va_actors.core.llm`` (found by the guide port)."""

from __future__ import annotations

import importlib
from typing import Any

from va_actors.core.audio import PcmData
from va_actors.core.llm.conversation import Conversation
from va_actors.core.llm.events import RealtimeAudioOutputEvent
from va_actors.core.llm.realtime import Realtime


class EchoRealtime(Realtime):
    """The smallest Realtime plugin: enough to call the emit helpers."""

    async def connect(self) -> None:
        self._emit_connected_event()

    async def simple_audio_response(self, pcm: PcmData, participant: Any = None) -> None:
        return None

    async def simple_response(self, text: str, processors: Any = None,
                              participant: Any = None) -> Any:
        return None

    async def close(self) -> None:
        self._emit_disconnected_event()


def pcm() -> PcmData:
    return PcmData.from_bytes(b"\x00\x00" * 480, sample_rate=24000)


def test_llm_module_exports_the_multimodal_bases() -> None:
    module = importlib.import_module("va_actors.core.llm.llm")
    from va_actors.core.llm import AudioLLM, OmniLLM, VideoLLM

    assert module.VideoLLM is VideoLLM
    assert module.AudioLLM is AudioLLM
    assert module.OmniLLM is OmniLLM


async def test_emit_audio_output_event_accepts_audio_data() -> None:
    rt = EchoRealtime()
    got: list[RealtimeAudioOutputEvent] = []
    rt.events.subscribe(event_types=[RealtimeAudioOutputEvent])(got.append)
    rt._emit_audio_output_event(audio_data=pcm(), response_id="r1")
    assert got and got[0].data is not None and got[0].response_id == "r1"


async def test_emit_audio_input_event_exists() -> None:
    rt = EchoRealtime()
    rt._emit_audio_input_event(pcm(), user_metadata=None)


async def test_conversation_send_message() -> None:
    conversation = Conversation()
    await conversation.send_message(role="user", user_id="user",
                                    content="What do you see?")
    assert [m.content for m in conversation.messages] == ["What do you see?"]
