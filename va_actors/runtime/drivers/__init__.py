"""Category drivers: how the actor host feeds a plugin and publishes what it makes.

One small class per plugin category (docs/runtime.md, "Category drivers"). The
host creates the driver for the plugin's category, calls :meth:`Driver.start`
once before any input, :meth:`Driver.on_input` for every input message (one
dispatcher per input, so inputs never wait on each other),
:meth:`Driver.on_epoch` on barge-in, :meth:`Driver.run` after ``start`` from
the supervisor, and :meth:`Driver.close` at shutdown.

A plugin exception inside a driver becomes an error event of the category's
class (``STTErrorEvent`` for an STT, ...) on ``<actor>.events``, and the actor
keeps running.
"""

from va_actors.runtime.drivers.audio import AudioProcessorDriver, STTDriver, TurnDriver
from va_actors.runtime.drivers.base import (
    MAX_PENDING_REPLIES,
    Driver,
    HostPort,
    driver_for,
    inbound,
)
from va_actors.runtime.drivers.llm import LLMDriver, VideoLLMDriver
from va_actors.runtime.drivers.node import NodeDriver
from va_actors.runtime.drivers.realtime import RealtimeDriver
from va_actors.runtime.drivers.tts import TTSDriver
from va_actors.runtime.drivers.video import VideoProcessorDriver
from va_actors.runtime.video_feed import CURRENT_INPUT, FORWARDER_FPS

__all__ = [
    "CURRENT_INPUT",
    "FORWARDER_FPS",
    "MAX_PENDING_REPLIES",
    "AudioProcessorDriver",
    "Driver",
    "HostPort",
    "LLMDriver",
    "NodeDriver",
    "RealtimeDriver",
    "STTDriver",
    "TTSDriver",
    "TurnDriver",
    "VideoLLMDriver",
    "VideoProcessorDriver",
    "driver_for",
    "inbound",
]
