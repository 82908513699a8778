"""Stand-ins for the ``self.provider`` the guide's blocks call.

The guide leaves the provider client to the reader; these stand in for
cloud SDKs that cannot be reached here. They check their input as a provider
would and answer with the kinds of objects real SDKs return: pydantic models
(OpenAI, Anthropic, Deepgram), dataclasses with datetimes, and objects with
``__slots__`` and no ``__dict__`` (C extensions, protobuf messages).
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import io
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image
from pydantic import BaseModel

from va_actors.core.audio import PcmData

CREATED = dt.datetime(2026, 11, 25, 9, 30, tzinfo=dt.UTC)

# -- what speech SDKs return ----------------------------------------------------------


class PydanticTranscript(BaseModel):
    text: str
    confidence: float
    language: str
    samples: int
    created_at: dt.datetime


@dataclass
class WordTiming:
    word: str
    start: dt.timedelta
    end: dt.timedelta


@dataclass
class DataclassTranscript:
    text: str
    confidence: float
    samples: int
    received_at: dt.datetime
    words: list[WordTiming] = field(default_factory=list)


class SlotsTranscript:
    """Like a C-extension result: attributes in slots, no ``__dict__``."""

    __slots__ = ("confidence", "samples", "text")

    def __init__(self, text: str, confidence: float, samples: int) -> None:
        self.text = text
        self.confidence = confidence
        self.samples = samples

    def __repr__(self) -> str:
        return f"<SlotsTranscript text={self.text!r} confidence={self.confidence}>"


RESPONSE_KINDS = ("pydantic", "dataclass", "slots")


def transcript(kind: str, samples: int) -> Any:
    """The provider's response for ``samples`` samples of speech, of SDK kind ``kind``."""
    text = f"heard {samples} samples"
    if kind == "pydantic":
        return PydanticTranscript(text=text, confidence=0.9, language="en", samples=samples,
                                  created_at=CREATED)
    if kind == "dataclass":
        return DataclassTranscript(text=text, confidence=0.8, samples=samples,
                                   received_at=CREATED,
                                   words=[WordTiming("heard", dt.timedelta(0),
                                                     dt.timedelta(milliseconds=200))])
    if kind == "slots":
        return SlotsTranscript(text, 0.7, samples)
    raise ValueError(f"unknown response kind {kind!r}; one of {RESPONSE_KINDS}")


def samples_of(audio: Any) -> int:
    """How many samples the provider was sent (a numpy array, as ``pcm.data`` is)."""
    if not isinstance(audio, np.ndarray):
        raise TypeError(f"the provider takes samples, got {type(audio).__name__}")
    return int(audio.shape[-1])


class SpeechProvider:
    """An STT provider client: ``transcribe(samples)`` and ``close()``."""

    def __init__(self, kind: str = "pydantic", delay_s: float = 0.0) -> None:
        transcript(kind, 0)  # fail early on an unknown kind
        self.kind = kind
        self.delay_s = delay_s
        self.sent: list[int] = []
        self.active = 0
        self.most_active = 0
        self.closed = False

    async def transcribe(self, audio: Any) -> Any:
        samples = samples_of(audio)
        self.active += 1
        self.most_active = max(self.most_active, self.active)
        try:
            await asyncio.sleep(self.delay_s)
        finally:
            self.active -= 1
        self.sent.append(samples)
        return transcript(self.kind, samples)

    def blocking_transcribe(self, audio: Any) -> Any:
        """The blocking call of an SDK without asyncio (run in a thread pool)."""
        samples = samples_of(audio)
        self.sent.append(samples)
        return transcript(self.kind, samples)

    async def close(self) -> None:
        self.closed = True


# -- a TTS provider -------------------------------------------------------------------------


class VoiceProvider:
    """Streams 24 kHz speech (a tone, 10 ms per character) in uneven chunks; can cancel."""

    RATE = 24000

    def __init__(self, chunk_delay_s: float = 0.0) -> None:
        self.chunk_delay_s = chunk_delay_s
        self.requests: list[str] = []
        self.cancelled = 0
        self.closed = False
        self._generation = 0

    async def synthesize(self, text: str) -> AsyncIterator[PcmData]:
        self.requests.append(text)
        generation = self._generation
        n = len(text) * self.RATE // 100
        wave = (0.3 * 32767 * np.sin(2 * np.pi * 220 * np.arange(n) / self.RATE))
        samples = wave.astype(np.int16)
        for start in range(0, n, 1999):  # uneven on purpose: chunks straddle 20 ms
            if generation != self._generation:
                return  # cancelled: the stream ends, as an aborted HTTP body does
            await asyncio.sleep(self.chunk_delay_s)
            yield PcmData(self.RATE, "s16", samples[start:start + 1999])

    async def cancel(self) -> None:
        self.cancelled += 1
        self._generation += 1

    async def close(self) -> None:
        self.closed = True


# -- chat (LLM and VLM) -----------------------------------------------------------------------


class ChatMessage(BaseModel):
    role: str
    content: str | None


class Choice(BaseModel):
    index: int
    message: ChatMessage
    finish_reason: str


class ProviderToolCall(BaseModel):
    """The provider's own tool-call shape, as the guide's extractor reads it."""

    id: str
    function_name: str
    arguments: str


class ChatResponse(BaseModel):
    """An OpenAI-style chat completion (plus the provider's ``tool_calls`` list)."""

    id: str
    model: str
    created: dt.datetime
    choices: list[Choice]
    tool_calls: list[ProviderToolCall] = []


class ChatProvider:
    """Answers chat requests: a tool call for weather questions, a description for images."""

    def __init__(self, model: str = "acme-chat-1") -> None:
        self.model = model
        self.requests: list[dict[str, Any]] = []
        self.images: list[tuple[int, int]] = []

    async def chat(self, messages: list[dict[str, Any]], tools: Any = None,
                   images: list[str] | None = None) -> ChatResponse:
        self.requests.append({"messages": messages, "tools": tools, "images": images})
        await asyncio.sleep(0)
        question = next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")
        calls: list[ProviderToolCall] = []
        if images:
            sizes = [self._decode(image) for image in images]
            self.images += sizes
            width, height = sizes[-1]
            content = f"I see {len(sizes)} frames of {width}x{height}."
        elif "weather" in question.lower() and "get_weather" in self._tool_names(tools):
            cities = [c for c in ("Boulder", "Oslo") if c.lower() in question.lower()]
            repeat = 2 if "twice" in question.lower() else 1
            calls = [ProviderToolCall(id=f"call_{i}", function_name="get_weather",
                                      arguments=json.dumps({"city": city}))
                     for i, city in enumerate(cities * repeat, start=1)]
            content = f"Let me check the weather in {' and '.join(cities)}."
        else:
            content = f"You said: {question}"
        return ChatResponse(
            id=f"chat-{len(self.requests)}", model=self.model, created=CREATED,
            choices=[Choice(index=0, message=ChatMessage(role="assistant", content=content),
                            finish_reason="tool_calls" if calls else "stop")],
            tool_calls=calls)

    @staticmethod
    def _tool_names(tools: Any) -> set[str]:
        """Tool names in the guide's format (``name``) or OpenAI's (``function.name``)."""
        return {t.get("name") or t.get("function", {}).get("name") for t in tools or []}

    @staticmethod
    def _decode(image: str) -> tuple[int, int]:
        picture = Image.open(io.BytesIO(base64.b64decode(image, validate=True)))
        if picture.format != "JPEG":
            raise ValueError(f"images must be JPEG, got {picture.format}")
        return picture.size


# -- speech to speech --------------------------------------------------------------------------


class RealtimeSocket:
    """A provider's realtime connection: audio in; after 100 ms of it, a spoken reply."""

    __slots__ = ("closed", "on_audio", "received", "replies")

    REPLY_RATE = 24000

    def __init__(self, on_audio: Callable[[PcmData, str], Any] | None) -> None:
        self.on_audio = on_audio
        self.received = 0
        self.replies = 0
        self.closed = False

    async def send_audio(self, data: Any) -> None:
        if self.closed:
            raise ConnectionError("the realtime socket is closed")
        before = self.received // 1600
        self.received += samples_of(data)
        if self.received // 1600 > before:  # every 100 ms of 16 kHz speech
            self.replies += 1
            await self._reply(f"resp_{self.replies}")

    async def _reply(self, response_id: str) -> None:
        n = self.REPLY_RATE // 50
        tone = (0.2 * 32767 * np.sin(2 * np.pi * 330 * np.arange(n) / self.REPLY_RATE))
        for _ in range(3):
            await asyncio.sleep(0)
            if self.on_audio is not None:
                self.on_audio(PcmData(self.REPLY_RATE, "s16", tone.astype(np.int16)),
                              response_id)

    async def close(self) -> None:
        self.closed = True


class RealtimeProvider:
    """``connect()`` gives a :class:`RealtimeSocket`; its replies go to ``on_audio``."""

    def __init__(self, on_audio: Callable[[PcmData, str], Any] | None = None) -> None:
        self.on_audio = on_audio
        self.sockets: list[RealtimeSocket] = []

    async def connect(self) -> RealtimeSocket:
        await asyncio.sleep(0)
        socket = RealtimeSocket(self.on_audio)
        self.sockets.append(socket)
        return socket
