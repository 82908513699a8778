"""The guide's plugins with their stand-in providers, as pipelines load them.

Each class here is a guide block's class plus only what the guide leaves to
the reader: the ``self.provider`` it calls (from ``guide_providers``). Where
the guide splits one plugin over two blocks (TTS output format, function
calling), the class combines both blocks' classes. ``SayOnce`` and
``GuideRecorder`` are the pipeline's test source and sink.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from pathlib import Path
from typing import Any, TextIO

import guide_llm
import guide_realtime
import guide_stt
import guide_tts
import guide_vlm
from guide_blocks import run_block, run_in
from guide_providers import ChatProvider, RealtimeProvider, SpeechProvider, VoiceProvider

from va_actors.core import llm, stt, tts
from va_actors.core.audio import PcmData
from va_actors.core.events import BaseEvent, RemoteObject
from va_actors.core.events.foreign import ForeignEvent
from va_actors.core.node import Inbound, Node, NodeContext
from va_actors.core.processors import VideoProcessor
from va_actors.core.stt import STTTranscriptEvent
from va_actors.core.video.frame import VideoFrame

HERE = Path(__file__).parent
PYTHONPATH = os.pathsep.join(str(p) for p in (HERE, HERE / "blocks", HERE / "providers"))
"""What an actor process needs on its path to load these classes and the blocks."""

# -- STT -----------------------------------------------------------------------------------


class GuideSTT(guide_stt.MySTT):
    """The STT base-class block, its provider answering with SDK objects of ``response_kind``."""

    def __init__(self, response_kind: str = "pydantic") -> None:
        super().__init__()
        self.provider = SpeechProvider(response_kind)


# The thread-pool block uses stt and asyncio without importing them.
_thread_pool = run_block("guide_thread_pool_stt.py", stt=stt, asyncio=asyncio)


class ThreadPoolSTT(_thread_pool["MySTT"]):  # type: ignore[misc]
    """The thread-pool block; ``blocking_transcribe`` is the blocking SDK call it names."""

    def __init__(self, response_kind: str = "dataclass") -> None:
        super().__init__()
        self.provider = SpeechProvider(response_kind)
        self.threads: set[int] = set()

    def blocking_transcribe(self, data: Any) -> Any:
        self.threads.add(threading.get_ident())
        time.sleep(0.002)  # a blocking SDK: this must not run on the event loop
        return self.provider.blocking_transcribe(data)


# The permanent-errors block inside the ``__init__`` it belongs in.
KeylessSTT = run_in("guide_permanent_errors.py", """
    class KeylessSTT(GuideSTT):
        def __init__(self, api_key=None, response_kind="pydantic"):
            super().__init__(response_kind)
""", indent=8, GuideSTT=GuideSTT)["KeylessSTT"]

# -- TTS -----------------------------------------------------------------------------------


class GuideTTS(guide_tts.MyTTS):
    """The TTS base-class block (an async generator ``stream_audio``)."""

    def __init__(self, chunk_delay_s: float = 0.0) -> None:
        super().__init__()
        self.provider = VoiceProvider(chunk_delay_s)


_output_format = run_block("guide_tts_output_format.py", tts=tts)


class OutputFormatTTS(_output_format["MyTTS"], guide_tts.MyTTS):  # type: ignore[misc]
    """The output-format block (its ``__init__`` and ``stream_audio``) with the base
    block's ``stop_audio`` and ``close``: the guide shows one plugin in two blocks."""

    def __init__(self, chunk_delay_s: float = 0.0) -> None:
        super().__init__()
        self.provider = VoiceProvider(chunk_delay_s)


# -- LLM -----------------------------------------------------------------------------------


async def get_weather(city: str) -> dict[str, Any]:
    """Current weather for a city."""
    return {"city": city, "sky": "sunny", "celsius": 21}


# The function-calling block subclasses llm.LLM without importing llm.
_function_calling = run_block("guide_function_calling.py", llm=llm)


class GuideLLM(_function_calling["MyLLM"], guide_llm.MyLLM):  # type: ignore[misc]
    """The LLM base-class block with the function-calling block's overrides, and a tool
    registered with ``@llm.register_function()`` as the guide says."""

    def __init__(self) -> None:
        super().__init__()
        self.provider = ChatProvider()
        self.register_function()(get_weather)


# -- VLM and Realtime ---------------------------------------------------------------------------


class GuideVLM(guide_vlm.MyVLM):
    """The VLM block; its provider decodes the JPEG frames it is sent."""

    def __init__(self, model: str = "acme-vision", fps: int = 1,
                 frame_buffer_seconds: int = 10) -> None:
        super().__init__(model, fps, frame_buffer_seconds)
        self.provider = ChatProvider(model)


class GuideRealtime(guide_realtime.MyRealtime):
    """The Realtime block. The guide shows only the sending half; the provider's replies
    reach the base class's ``_emit_audio_output_event``, as an SDK's callback would."""

    def __init__(self) -> None:
        super().__init__()
        self.provider = RealtimeProvider(on_audio=self._emit_audio_output_event)


# -- a processor (the guide shows none; its table says: Processor, close()) ----------------


class GuideProcessor(VideoProcessor):
    """A video processor written from the guide's VLM forwarder pattern; per frame it
    sends the custom-events block's ``AcmeCustomEvent`` (the block run with ``self``)."""

    def __init__(self, fps: int = 5) -> None:
        super().__init__()
        self.fps = fps
        self._forwarder: Any = None
        self._handler_id: Any = None
        self.frames = 0

    async def process_video(self, track: Any, participant_id: str | None,
                            shared_forwarder: Any = None) -> None:
        self._forwarder = shared_forwarder
        self._handler_id = self._forwarder.add_frame_handler(
            on_frame=self._on_frame, fps=self.fps, name="guide_processor")

    def _on_frame(self, frame: VideoFrame) -> None:
        self.frames += 1
        run_block("guide_custom_events.py", self=self)

    async def stop_processing(self) -> None:
        if self._forwarder and self._handler_id:
            self._forwarder.remove_frame_handler(self._handler_id)

    async def close(self) -> None:
        await self.stop_processing()


# -- pipeline test nodes --------------------------------------------------------------------


class SayOnce(Node):
    """Params: ``text``; ``as_transcript`` (an STTTranscriptEvent on ``transcript``, else
    agent text on ``text``); ``after_s``. Publishes it once after start."""

    async def run(self, ctx: NodeContext) -> None:
        await ctx.wait_started()
        await asyncio.sleep(float(self.params.get("after_s", 0.2)))
        text = str(self.params["text"])
        if self.params.get("as_transcript", True):
            ctx.publish("transcript", STTTranscriptEvent(text=text))
        else:
            ctx.publish("text", text, final=True, response_id="reply-1")


def _described(value: Any) -> Any:
    """A received value as JSON for the test to read."""
    if isinstance(value, RemoteObject):
        return {"remote": value.type_name, "data": value.data, "repr": value.text}
    if isinstance(value, PcmData):
        return {"pcm": value.sample_rate, "channels": value.channels,
                "samples": value.num_samples}
    if isinstance(value, BaseException):
        return {"error": str(value)}
    try:
        json.dumps(value)
    except TypeError:
        return {"python": type(value).__name__, "repr": repr(value)}
    return value


class GuideRecorder(Node):
    """Params: ``path``. One JSON line per message: what a user would look at."""

    _out: TextIO

    async def start(self, ctx: NodeContext) -> None:
        self._out = open(self.params["path"], "a", encoding="utf-8")  # noqa: SIM115, ASYNC230

    async def on_message(self, msg: Inbound) -> None:
        record: dict[str, Any] = {"topic": msg.topic, "epoch": msg.epoch}
        value = msg.value
        if isinstance(value, str):
            record.update(text=value, final=bool(msg.fields.get("final")))
        elif isinstance(value, PcmData):
            record.update(_described(value))
        elif isinstance(value, ForeignEvent):
            record.update(type=value.event_type, data=_described(value.data))
        elif isinstance(value, BaseEvent):
            record["type"] = value.type
            for name in ("text", "response", "confidence", "language", "tool_name", "success",
                         "result", "error", "context", "custom_field"):
                if hasattr(value, name):
                    record[name] = _described(getattr(value, name))
        self._out.write(json.dumps(record) + "\n")
        self._out.flush()

    async def close(self) -> None:
        self._out.close()
