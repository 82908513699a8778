"""A small OpenAI Realtime client for tests and benchmarks: a scripted user over a WebSocket.

It speaks the GA client events with aiohttp, records every server event with
its arrival time, and has a microphone: a task that appends audio in 20 ms
pieces at the pace of real time, silence between the utterances handed to
:meth:`ScriptedRealtimeClient.say` (a turn detector needs the silence to see
a turn end)::

    async with ScriptedRealtimeClient("ws://127.0.0.1:8790/v1/realtime") as client:
        await client.next("session.created")
        client.start_microphone()
        await client.say(load_wav("launch/assets/voice/weather.wav"))
        done = await client.next("response.done", timeout=30)
"""

from __future__ import annotations

import asyncio
import base64
import bisect
import contextlib
import copy
import functools
import json
import time
import typing
import wave
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import aiohttp
import numpy as np

from va_actors.core.audio import AudioFormat, PcmData

JSON = dict[str, Any]
RATE = 24000
CHUNK_MS = 20


def load_wav(path: str | Path, rate: int = RATE) -> np.ndarray:
    """A WAV file as mono int16 samples at ``rate``."""
    with wave.open(str(path)) as wav:
        pcm = PcmData.from_bytes(wav.readframes(wav.getnframes()), wav.getframerate(),
                                 AudioFormat.S16, wav.getnchannels())
    return np.asarray(pcm.resample(rate, 1).to_int16().samples, dtype=np.int16)


@functools.cache
def _server_models() -> dict[str, Any]:
    """The official SDK's model of every GA server event, by ``type``."""
    from openai.types.realtime import RealtimeServerEvent  # dev dependency

    union = typing.get_args(RealtimeServerEvent)[0]  # Annotated[Union[...], discriminator]
    models: dict[str, Any] = {}
    for model in typing.get_args(union):
        for kind in typing.get_args(model.model_fields["type"].annotation):
            models[kind] = model
    return models


@dataclass
class Received:
    """One server event and when it arrived (``time.monotonic()``)."""

    at: float
    event: JSON

    @property
    def type(self) -> str:
        return str(self.event.get("type"))


@dataclass
class _Utterance:
    samples: np.ndarray
    sent: asyncio.Future[tuple[float, float]]
    offset: int = 0
    start_ms: float = 0.0


@dataclass
class _Mic:
    rate: int
    realtime: bool
    queue: list[_Utterance] = field(default_factory=list)
    position: int = 0
    """Samples appended so far."""
    marks: list[tuple[float, float]] = field(default_factory=list)
    """(audio ms at the end of a piece, when it was appended)."""


class ScriptedRealtimeClient:
    """See the module docstring.

    Args:
        url: the server's WebSocket URL (``?model=`` may be part of it).
        headers: extra HTTP headers (``Authorization``).
    """

    def __init__(self, url: str, headers: dict[str, str] | None = None) -> None:
        self.url = url
        self.headers = headers or {}
        self.received: list[Received] = []
        self._http: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._reader: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()
        self._mic: _Mic | None = None
        self._mic_task: asyncio.Task[None] | None = None
        self.close_code: int | None = None

    async def __aenter__(self) -> ScriptedRealtimeClient:
        self._http = aiohttp.ClientSession()
        self._ws = await self._http.ws_connect(self.url, headers=self.headers,
                                               max_msg_size=64 * 1024 * 1024)
        self._reader = asyncio.create_task(self._read())
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.stop_microphone()
        if self._ws is not None:
            await self._ws.close()
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)
        if self._http is not None:
            await self._http.close()

    # -- events ----------------------------------------------------------------------------
    async def send(self, event: JSON) -> None:
        """Send one client event."""
        await self.send_raw(json.dumps(event))

    async def send_raw(self, text: str) -> None:
        """Send a text frame as it is (malformed input in tests)."""
        assert self._ws is not None, "not connected"
        await self._ws.send_str(text)

    def of(self, kind: str) -> list[JSON]:
        """Every server event of type ``kind`` so far."""
        return [r.event for r in self.received if r.type == kind]

    def types(self) -> list[str]:
        """The types of the server events so far, in order."""
        return [r.type for r in self.received]

    async def next(self, kind: str, *, timeout: float = 10.0, after: int = 0,
                   where: Callable[[JSON], bool] | None = None) -> JSON:
        """The first event of type ``kind`` (at index ``after`` or later, matching ``where``)."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            for received in self.received[after:]:
                if received.type == kind and (where is None or where(received.event)):
                    return received.event
            if self._reader is not None and self._reader.done():
                raise ConnectionError(f"closed ({self.close_code}) before a {kind!r} event; "
                                      f"got {self.types()}")
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                raise TimeoutError(f"no {kind!r} event within {timeout:g} s; got "
                                   f"{self.types()[-30:]}")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)

    def check_protocol(self) -> None:
        """Check every server event so far against the official SDK's GA models.

        Each event must parse as the model its ``type`` names (required
        fields, types, literals). Needs the ``openai`` package (a dev
        dependency). Raises ``pydantic.ValidationError`` or AssertionError.
        """
        models = _server_models()
        for received in self.received:
            model = models.get(received.type)
            assert model is not None, f"{received.type!r} is not a GA server event"
            event = copy.deepcopy(received.event)
            for direction in ("input", "output"):  # rates beside 24 kHz: the gateway's extension
                fmt = event.get("session", {}).get("audio", {}).get(direction, {}).get("format")
                if fmt and fmt.get("type") == "audio/pcm":
                    fmt["rate"] = 24000
            model.model_validate(event)

    def arrival(self, event: JSON) -> float:
        """When ``event`` arrived (``time.monotonic()``)."""
        return next(r.at for r in self.received if r.event is event)

    def audio(self, response_id: str) -> np.ndarray:
        """The PCM16 audio of a response, as received."""
        pieces = [base64.b64decode(e["delta"]) for e in self.of("response.output_audio.delta")
                  if e["response_id"] == response_id]
        return np.frombuffer(b"".join(pieces), dtype="<i2")

    async def _read(self) -> None:
        assert self._ws is not None
        async for message in self._ws:
            if message.type is aiohttp.WSMsgType.TEXT:
                self.received.append(Received(time.monotonic(), json.loads(message.data)))
                self._changed.set()
        self.close_code = self._ws.close_code
        self._changed.set()

    # -- the microphone --------------------------------------------------------------------
    def start_microphone(self, rate: int = RATE, realtime: bool = True) -> None:
        """Append audio from now on, 20 ms at a time: silence, or what :meth:`say` queued."""
        self._mic = _Mic(rate, realtime)
        self._mic_task = asyncio.create_task(self._stream(self._mic))

    async def say(self, samples: np.ndarray) -> tuple[float, float]:
        """Speak ``samples`` (int16 at the microphone's rate) after what is queued.

        Returns once the last piece was appended: the utterance's start and end
        in ms of the audio stream (the server's ``audio_start_ms`` scale).
        """
        assert self._mic is not None, "start_microphone() first"
        sent: asyncio.Future[tuple[float, float]] = asyncio.get_running_loop().create_future()
        self._mic.queue.append(_Utterance(np.asarray(samples, dtype=np.int16), sent))
        return await sent

    def appended_at(self, audio_ms: float) -> float:
        """When the piece holding ``audio_ms`` of the stream was appended (monotonic)."""
        assert self._mic is not None
        marks = self._mic.marks
        index = bisect.bisect_left(marks, (audio_ms, -1.0))
        return marks[min(index, len(marks) - 1)][1]

    async def stop_microphone(self) -> None:
        """Stop appending."""
        if self._mic_task is not None:
            self._mic_task.cancel()
            await asyncio.gather(self._mic_task, return_exceptions=True)
            self._mic_task = None

    async def _stream(self, mic: _Mic) -> None:
        piece = mic.rate * CHUNK_MS // 1000
        origin = time.monotonic()
        while True:
            samples = self._next_piece(mic, piece)
            if mic.realtime:
                due = origin + mic.position / mic.rate
                await asyncio.sleep(max(0.0, due - time.monotonic()))
            await self.send({"type": "input_audio_buffer.append",
                             "audio": base64.b64encode(samples.astype("<i2").tobytes()).decode()})
            mic.position += piece
            mic.marks.append((mic.position * 1000 / mic.rate, time.monotonic()))
            self._settle(mic)
            if not mic.realtime:
                await asyncio.sleep(0)

    @staticmethod
    def _next_piece(mic: _Mic, piece: int) -> np.ndarray:
        out = np.zeros(piece, dtype=np.int16)
        filled = 0
        for utterance in mic.queue:
            if filled == piece:
                break
            if utterance.offset == 0:
                utterance.start_ms = (mic.position + filled) * 1000 / mic.rate
            take = utterance.samples[utterance.offset:utterance.offset + piece - filled]
            out[filled:filled + take.size] = take
            filled += take.size
            utterance.offset += take.size
        return out

    @staticmethod
    def _settle(mic: _Mic) -> None:
        while mic.queue and mic.queue[0].offset >= mic.queue[0].samples.size:
            done = mic.queue.pop(0)
            end_ms = done.start_ms + done.samples.size * 1000 / mic.rate
            if not done.sent.done():
                done.sent.set_result((done.start_ms, end_ms))
