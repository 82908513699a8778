"""Core fixes found by porting the "Create Your Own Plugin" guide (see tests/guide)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import types
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from io import BytesIO
from typing import Any

import numpy as np
import pytest
from PIL import Image

from va_actors.core import tts
from va_actors.core.audio import PcmData
from va_actors.core.events import BaseEvent, EventManager, PluginBaseEvent, event_class
from va_actors.core.processors import VideoProcessor
from va_actors.core.stt import STT, STTPartialTranscriptEvent, STTTranscriptEvent
from va_actors.core.tts.events import TTSAudioEvent, TTSErrorEvent
from va_actors.core.utils.video_forwarder import HandlerRemoval, VideoForwarder
from va_actors.core.utils.video_track import QueuedVideoTrack
from va_actors.core.utils.video_utils import frame_to_jpeg_bytes, frame_to_png_bytes
from va_actors.core.video import SyntheticVideoTrack, VideoFrame
from va_actors.core.video.track import QueuedVideoTrack as CoreQueuedVideoTrack


# -- events: import order and registration ------------------------------------------
def test_events_can_be_a_plugins_first_import() -> None:
    code = "from va_actors.core.events import PluginBaseEvent; print(PluginBaseEvent.__name__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=30, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "PluginBaseEvent"


@dataclass
class GuideQuotaEvent(PluginBaseEvent):
    type: str = field(default="plugin.guide.quota", init=False)
    remaining: int = 0


@dataclass
class GuideOtherEvent(PluginBaseEvent):
    type: str = field(default="other.guide.thing", init=False)


class NotAnEvent:
    type = "plugin.guide.nope"


def test_register_validates_event_classes() -> None:
    manager = EventManager()
    manager.register(GuideQuotaEvent)
    assert event_class("plugin.guide.quota") is GuideQuotaEvent
    with pytest.raises(ValueError, match="not a BaseEvent"):
        manager.register(NotAnEvent)  # type: ignore[arg-type]
    manager.register(NotAnEvent, ignore_not_compatible=True)  # type: ignore[arg-type]


def test_register_events_from_module_takes_the_modules_own_events() -> None:
    module = types.ModuleType("guide_events")
    for cls in (GuideQuotaEvent, GuideOtherEvent):
        clone = type(cls.__name__, (cls,), {"__module__": "guide_events"})
        setattr(module, cls.__name__, clone)
    module.Imported = GuideQuotaEvent  # type: ignore[attr-defined]  # defined elsewhere
    module.Helper = NotAnEvent  # type: ignore[attr-defined]
    EventManager().register_events_from_module(module, prefix="plugin.")
    assert event_class("plugin.guide.quota") is module.GuideQuotaEvent
    EventManager().register_events_from_module(module)
    assert event_class("other.guide.thing") is module.GuideOtherEvent
    EventManager().register(GuideQuotaEvent, GuideOtherEvent)  # restore for other tests


# -- STT: final and partial transcripts are siblings ---------------------------------
class ScriptSTT(STT):
    async def process_audio(self, pcm_data: PcmData, participant: Any = None) -> None:
        self._emit_partial_transcript_event("hel", participant)
        self._emit_transcript_event("hello", participant)


async def test_final_transcript_subscribers_do_not_get_partials() -> None:
    stt = ScriptSTT()
    finals: list[BaseEvent] = []
    partials: list[BaseEvent] = []

    @stt.events.subscribe
    async def on_final(event: STTTranscriptEvent) -> None:
        finals.append(event)

    @stt.events.subscribe
    async def on_partial(event: STTPartialTranscriptEvent) -> None:
        partials.append(event)

    await stt.process_audio(PcmData(sample_rate=16000, format="s16"))
    await stt.events.wait()
    assert [type(e) for e in finals] == [STTTranscriptEvent]
    assert [type(e) for e in partials] == [STTPartialTranscriptEvent]
    assert finals[0].is_final and not partials[0].is_final  # type: ignore[attr-defined]
    assert not issubclass(STTPartialTranscriptEvent, STTTranscriptEvent)


def test_the_stt_actor_still_routes_partials_as_transcripts() -> None:
    from va_actors.runtime.drivers.audio import _stt_route

    assert _stt_route(STTPartialTranscriptEvent(text="hel")) == "transcript"
    assert _stt_route(STTTranscriptEvent(text="hello")) == "transcript"


# -- TTS: stop_audio() that aborts the provider stream ---------------------------------
class AbortingTTS(tts.TTS):
    """Streams until stop_audio() aborts the stream, which then fails like a socket."""

    def __init__(self) -> None:
        super().__init__()
        self.aborted = asyncio.Event()

    async def stream_audio(self, text: str, *args: Any, **kwargs: Any) -> AsyncIterator[PcmData]:
        async def chunks() -> AsyncIterator[PcmData]:
            while True:
                if self.aborted.is_set():
                    raise ConnectionResetError("stream closed")
                yield PcmData(sample_rate=16000, format="s16", samples=np.ones(320, np.int16))
                await asyncio.sleep(0.005)

        return chunks()

    async def stop_audio(self) -> None:
        self.aborted.set()


async def test_an_aborted_stream_after_interrupt_is_not_an_error() -> None:
    speaker = AbortingTTS()
    audio: list[BaseEvent] = []
    errors: list[BaseEvent] = []
    speaker.events.subscribe(event_types=[TTSAudioEvent])(audio.append)
    speaker.events.subscribe(event_types=[TTSErrorEvent])(errors.append)
    task = asyncio.create_task(speaker.send("a long answer"))
    while len(audio) < 2:  # noqa: ASYNC110 - events land from handler tasks
        await asyncio.sleep(0.005)
    await speaker.interrupt()
    await asyncio.wait_for(task, 1.0)  # returns, does not raise
    assert errors == []


async def test_a_stream_failing_on_its_own_is_still_an_error() -> None:
    speaker = AbortingTTS()
    errors: list[BaseEvent] = []
    speaker.events.subscribe(event_types=[TTSErrorEvent])(errors.append)
    speaker.aborted.set()  # fails without any interrupt
    with pytest.raises(ConnectionResetError):
        await speaker.send("hello")
    assert len(errors) == 1


# -- VideoForwarder.remove_frame_handler can be awaited --------------------------------
async def test_remove_frame_handler_is_awaitable_and_truthy() -> None:
    track = SyntheticVideoTrack(16, 16, fps=30)
    forwarder = VideoForwarder(track)
    frames: list[VideoFrame] = []
    forwarder.add_frame_handler(frames.append)
    assert await forwarder.remove_frame_handler(frames.append) is True
    removal = forwarder.remove_frame_handler(frames.append)
    assert isinstance(removal, HandlerRemoval) and not removal and removal == False  # noqa: E712
    assert await removal is False
    assert not forwarder.is_running
    track.stop()


# -- utils.video_utils / utils.video_track at Vision Agents' paths ---------------------
def test_frame_to_jpeg_bytes_with_target_size() -> None:
    frame = VideoFrame.from_ndarray(np.full((480, 640, 3), 200, np.uint8), "rgb24")
    image = Image.open(BytesIO(frame_to_jpeg_bytes(frame, target_width=320, target_height=320)))
    assert image.format == "JPEG" and image.size == (320, 240)
    with pytest.raises(ValueError, match="target_width"):
        frame_to_jpeg_bytes(frame, target_width=0, target_height=10)
    png = Image.open(BytesIO(frame_to_png_bytes(frame.to_av())))
    assert png.format == "PNG" and png.size == (640, 480)
    assert QueuedVideoTrack is CoreQueuedVideoTrack


# -- processors whose __init__ skips super().__init__() -------------------------------
class BareProcessor(VideoProcessor):
    def __init__(self) -> None:
        self.fps = 1

    async def process_video(self, track: Any, participant_id: str | None,
                            shared_forwarder: Any = None) -> None:
        return None

    async def stop_processing(self) -> None:
        return None

    async def close(self) -> None:
        return None


def test_processor_events_exist_without_super_init() -> None:
    processor = BareProcessor()
    assert isinstance(processor.events, EventManager)
    assert processor.events is processor.events
