"""Acme speech-to-text over Acme's streaming WebSocket API."""

# ruff: noqa: UP045 - kept in the guide's typing style (Optional, List, Dict)

import asyncio
import json
import logging
from typing import Optional

import aiohttp

from va_actors.core import stt
from va_actors.core.audio import PcmData
from va_actors.core.edge.types import Participant
from va_actors.core.stt.events import TranscriptResponse

from . import events
from ._client import DEFAULT_BASE_URL, api_key_from_env, auth_headers

logger = logging.getLogger(__name__)


class STT(stt.STT):
    """Streams user audio to Acme and reports partial and final transcripts."""

    turn_detection: bool = True  # Acme reports the end of the user's turn itself

    def __init__(
        self,
        api_key: Optional[str] = None,
        model: str = "acme-listen-1",
        language: str = "en",
        base_url: str = DEFAULT_BASE_URL,
        client: Optional[aiohttp.ClientSession] = None,
    ):
        super().__init__(provider_name="acme")
        self.api_key = api_key_from_env(api_key)
        self.model = model
        self.language = language
        self.base_url = base_url
        self._client = client
        self._own_client = client is None
        self._ws: Optional[aiohttp.ClientWebSocketResponse] = None
        self._receive_task: Optional[asyncio.Task[None]] = None
        self._participant: Optional[Participant] = None
        self.events.register_events_from_module(events)

    async def start(self) -> None:
        await super().start()
        if self._client is None:
            self._client = aiohttp.ClientSession()
        self._ws = await self._client.ws_connect(
            f"{self.base_url}/v1/listen", headers=auth_headers(self.api_key)
        )
        await self._ws.send_json(
            {
                "type": "config",
                "encoding": "pcm_s16le",
                "sample_rate": 16000,
                "language": self.language,
                "model": self.model,
            }
        )
        ready = await self._ws.receive_json()
        if ready.get("type") != "ready":
            raise ConnectionError(f"Acme refused the stream: {ready}")
        self._on_connected()
        self._receive_task = asyncio.create_task(self._receive_loop())

    async def process_audio(
        self,
        pcm_data: PcmData,
        participant: Optional[Participant] = None,
    ) -> None:
        if self._ws is None:
            raise RuntimeError("call start() before process_audio()")
        self._participant = participant
        # Acme expects 16 kHz mono s16
        audio = pcm_data.resample(16000, 1)
        await self._ws.send_bytes(audio.to_bytes())

    async def finalize(self) -> None:
        """Ask Acme to finish the current utterance now."""
        if self._ws is not None:
            await self._ws.send_json({"type": "finalize"})

    async def _receive_loop(self) -> None:
        assert self._ws is not None
        async for msg in self._ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                continue
            self._handle(json.loads(msg.data))
        self._on_disconnected(reason="stream closed", clean=True)

    def _handle(self, data: dict) -> None:
        kind = data.get("type")
        if kind == "partial":
            response = TranscriptResponse(model_name=self.model)
            self._emit_partial_transcript_event(data["text"], self._participant, response)
        elif kind == "final":
            response = TranscriptResponse(
                confidence=data["confidence"],
                language=data["language"],
                audio_duration_ms=data["audio_ms"],
                model_name=self.model,
            )
            self._emit_transcript_event(data["text"], self._participant, response)
            self.events.send(
                events.AcmeUsageEvent(
                    plugin_name="acme",
                    audio_ms=data["audio_ms"],
                    model=self.model,
                    details={"language": data["language"]},
                )
            )
        elif kind == "turn_end":
            self._emit_turn_ended_event(self._participant)
        elif kind == "error":
            self._emit_error_event(RuntimeError(data["message"]), context="acme stream")

    async def close(self) -> None:
        await super().close()
        if self._ws is not None:
            await self._ws.close()
        if self._receive_task is not None:
            await asyncio.gather(self._receive_task, return_exceptions=True)
        if self._own_client and self._client is not None:
            await self._client.close()
