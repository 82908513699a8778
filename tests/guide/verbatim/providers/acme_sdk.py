"""A stand-in for ``acme_sdk``, the provider SDK the guide's quickstart STT imports.

Like a real speech SDK it checks what it is sent (16 kHz mono int16 samples,
a model name) and answers with its own pydantic response model, with nested
models and a datetime, which is what the quickstart passes on as
``response=result``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import numpy as np
from pydantic import BaseModel


class AcmeError(Exception):
    """The provider refused a request."""


class Word(BaseModel):
    word: str
    start_ms: float
    end_ms: float


class Transcription(BaseModel):
    """Acme's transcription response."""

    text: str
    confidence: float
    language: str
    model: str
    audio_ms: float
    words: list[Word]
    created_at: dt.datetime


class Client:
    """Acme's async client: ``transcribe()`` and ``close()``."""

    def __init__(self, api_key: str | None = None) -> None:
        self.api_key = api_key
        self.requests: list[dict[str, Any]] = []
        self.closed = False

    async def transcribe(self, audio: Any, sample_rate: int, model: str) -> Transcription:
        if self.closed:
            raise AcmeError("client is closed")
        if not isinstance(audio, np.ndarray) or audio.dtype != np.int16 or audio.ndim != 1:
            raise AcmeError(f"audio must be mono int16 samples, got {type(audio).__name__}")
        if sample_rate != 16000:
            raise AcmeError(f"Acme transcribes 16 kHz audio, got {sample_rate} Hz")
        await asyncio.sleep(0)  # the network round trip
        self.requests.append({"samples": int(audio.size), "sample_rate": sample_rate,
                              "model": model})
        audio_ms = audio.size / sample_rate * 1000
        return Transcription(
            text=f"heard {audio.size} samples", confidence=0.91, language="en", model=model,
            audio_ms=audio_ms, words=[Word(word="heard", start_ms=0.0, end_ms=audio_ms)],
            created_at=dt.datetime(2026, 11, 25, 9, 30, tzinfo=dt.UTC))

    async def close(self) -> None:
        self.closed = True
