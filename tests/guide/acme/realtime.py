"""Acme speech-to-speech over Acme's realtime WebSocket API."""

# ruff: noqa: UP006, UP035, UP045 - kept in the guide's typing style (Optional, List, Dict)

import asyncio
import base64
import json
import logging
from typing import Any, List, Optional

import aiohttp

from va_actors.core.audio import PcmData
from va_actors.core.edge.types import Participant
from va_actors.core.llm import realtime
from va_actors.core.llm.llm import LLMResponseEvent
from va_actors.core.processors import Processor

from ._client import DEFAULT_BASE_URL, api_key_from_env, auth_headers

logger = logging.getLogger(__name__)


class Realtime(realtime.Realtime):
    """Talks to Acme's realtime model: user audio in, agent audio out."""

    def __init__(
        self,
        model: str = "acme-realtime-1",
        api_key: Optional[str] = None,
        voice: str = "acme-nova",
        base_url: str = DEFAULT_BASE_URL,
        client: Optional[aiohttp.ClientSession] = None,
        fps: int = 1,
    ):
        super().__init__(fps=fps)
        self.provider_name = "acme_realtime"
        self.model = model
        self.voice = voice
        self.api_key = api_key_from_env(api_key)
        self.base_url = base_url
        self._client = client
        self._own_client = client is None
        self._ws: Optional[aiohttp.ClientWebSocketResponse] = None
        self._receive_task: Optional[asyncio.Task[None]] = None

    async def connect(self) -> None:
        if self._client is None:
            self._client = aiohttp.ClientSession()
        self._ws = await self._client.ws_connect(
            f"{self.base_url}/v1/realtime?model={self.model}",
            headers=auth_headers(self.api_key),
        )
        session = {
            "model": self.model,
            "voice": self.voice,
            "instructions": self.instructions,
            "input_audio_format": {"encoding": "pcm16", "sample_rate": 16000},
        }
        await self._ws.send_json({"type": "session.update", "session": session})
        created = await self._ws.receive_json()
        if created.get("type") != "session.created":
            raise ConnectionError(f"Acme realtime refused the session: {created}")
        self._emit_connected_event(session_config=created["session"], capabilities=["audio"])
        self._receive_task = asyncio.create_task(self._receive_loop())

    async def simple_audio_response(
        self, pcm: PcmData, participant: Optional[Participant] = None
    ) -> None:
        if self._ws is None:
            return
        self._current_participant = participant
        audio = pcm.resample(16000, 1)
        await self._ws.send_json(
            {
                "type": "input_audio_buffer.append",
                "audio": base64.b64encode(audio.to_bytes()).decode("ascii"),
            }
        )

    async def simple_response(
        self,
        text: str,
        processors: Optional[List[Processor]] = None,
        participant: Optional[Participant] = None,
    ) -> LLMResponseEvent:
        if self._ws is not None:
            await self._ws.send_json(
                {"type": "conversation.item.create",
                 "item": {"role": "user", "content": [{"type": "input_text", "text": text}]}}
            )
        return LLMResponseEvent(original=None, text="")

    async def _receive_loop(self) -> None:
        assert self._ws is not None
        async for msg in self._ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                continue
            self._handle(json.loads(msg.data))

    def _handle(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind == "response.audio.delta":
            audio_bytes = base64.b64decode(event["delta"])
            pcm = PcmData.from_bytes(audio_bytes, sample_rate=24000, format="s16")
            self._emit_audio_output_event(pcm=pcm, response_id=event["response_id"])
        elif kind == "response.audio.done":
            self._emit_audio_output_done_event(response_id=event["response_id"])
        elif kind == "error":
            self._emit_error_event(RuntimeError(event.get("message")), context="acme realtime")

    async def close(self) -> None:
        if self._ws is not None:
            await self._ws.close()
        if self._receive_task is not None:
            await asyncio.gather(self._receive_task, return_exceptions=True)
        self._emit_disconnected_event(reason="closed", was_clean=True)
        if self._own_client and self._client is not None:
            await self._client.close()
