"""Small helpers shared by the guide port tests."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import numpy as np

from va_actors.core.audio import PcmData
from va_actors.core.events import BaseEvent, EventManager


def collect(events: EventManager, *classes: type[BaseEvent]) -> list[BaseEvent]:
    """Subscribe to ``classes`` and return the list the events land in."""
    got: list[BaseEvent] = []

    async def on_event(event: BaseEvent) -> None:
        got.append(event)

    events.subscribe(event_types=classes)(on_event)
    return got


async def wait_for(condition: Callable[[], bool], timeout: float = 2.0) -> None:
    """Poll ``condition`` until it holds; fail after ``timeout`` seconds."""
    async with asyncio.timeout(timeout):
        while not condition():  # noqa: ASYNC110 - polls state other tasks change
            await asyncio.sleep(0.005)


def speech(rate: int, seconds: float, channels: int = 1) -> PcmData:
    """A test tone standing in for microphone audio."""
    t = np.arange(int(rate * seconds)) / rate
    wave = (0.3 * 32767 * np.sin(2 * np.pi * 220 * t)).astype(np.int16)
    samples = np.tile(wave, (channels, 1)) if channels > 1 else wave
    return PcmData(sample_rate=rate, format="s16", samples=samples, channels=channels)


def over_wire(event: BaseEvent, topic: str = "a.events") -> BaseEvent:
    """``event`` after the real wire codec: encoded to frames, decoded as a receiver does."""
    from va_actors.wire import decode, encode_event

    frames = encode_event(topic, event, seq=0, epoch=0, source="a")
    return decode([bytes(f) for f in frames]).event()
