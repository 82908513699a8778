"""Acme text-to-speech: a chunked HTTP stream of raw PCM at 24 kHz."""

# ruff: noqa: UP035, UP045 - kept in the guide's typing style (Optional, List, Dict)

import logging
from typing import AsyncIterator, Optional

import aiohttp

from va_actors.core import tts
from va_actors.core.audio import PcmData

from ._client import DEFAULT_BASE_URL, api_key_from_env, auth_headers

logger = logging.getLogger(__name__)


class TTS(tts.TTS):
    """Synthesises speech with Acme; the base class converts it to the output format."""

    def __init__(
        self,
        api_key: Optional[str] = None,
        voice_id: str = "acme-nova",
        base_url: str = DEFAULT_BASE_URL,
        client: Optional[aiohttp.ClientSession] = None,
    ):
        super().__init__(provider_name="acme")
        self.api_key = api_key_from_env(api_key)
        self.voice_id = voice_id
        self.base_url = base_url
        self._client = client
        self._own_client = client is None
        self._response: Optional[aiohttp.ClientResponse] = None

    async def stream_audio(self, text: str, *_, **__) -> AsyncIterator[PcmData]:
        if self._client is None:
            self._client = aiohttp.ClientSession()
        response = await self._client.post(
            f"{self.base_url}/v1/speak",
            json={"text": text, "voice": self.voice_id, "sample_rate": 24000},
            headers=auth_headers(self.api_key),
        )
        response.raise_for_status()
        self._response = response
        # Acme streams raw s16 mono at 24 kHz; chunks may split a sample
        return PcmData.from_response(
            response.content.iter_any(), sample_rate=24000, channels=1, format="s16"
        )

    async def stop_audio(self) -> None:
        # Abort the HTTP stream in flight
        if self._response is not None:
            self._response.close()
            self._response = None

    async def close(self) -> None:
        await super().close()
        if self._own_client and self._client is not None:
            await self._client.close()
