"""The HTTP side: one streaming ``POST {base_url}/chat/completions`` with retries.

A request is retried (with the configured :class:`Backoff`) only until it has
produced its first piece of output: connection failures, timeouts, 408/409/
425/429/5xx answers and streams that break before any text or tool call.
Once output exists, a retry would repeat it, so later failures are raised.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
from collections import deque
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp

from va_actors.core.backoff import Backoff, RetriesExhausted

from ._errors import (
    ChatCompletionsAPIError,
    ChatCompletionsConnectionError,
    ChatCompletionsError,
    ChatCompletionsTimeoutError,
)
from ._stream import ChunkReader, chunk_has_output

__all__ = ["DEFAULT_CONNECT_RETRIES", "ChatCompletionsClient", "OpenStream", "redact_url"]

logger = logging.getLogger(__name__)

DEFAULT_CONNECT_RETRIES = Backoff(initial=0.5, factor=2.0, cap=8.0, max_attempts=3)
"""Three attempts, waiting about 0.5 s and 1 s in between."""

_ERROR_BODY_CHARS = 2000
_REDACTED = "***"
_STATUS_HINTS = {
    401: "check api_key / OPENAI_API_KEY",
    403: "check api_key / OPENAI_API_KEY and the key's permissions",
    404: "check the model name, and that base_url ends in /v1",
}


def redact_url(url: str) -> str:
    """``url`` without a ``user:password@`` part."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{_REDACTED}@{host}"))


class _Transient(Exception):
    """Internal: a failure worth retrying (the only type the Backoff retries)."""

    def __init__(self, error: ChatCompletionsError, retry_after: float | None = None) -> None:
        super().__init__(str(error))
        self.error = error
        self.retry_after = retry_after


class OpenStream:
    """A streaming response being read chunk by chunk.

    Chunks read ahead while deciding whether the request succeeded are
    replayed first. Call :meth:`close` when done (``complete=False`` drops the
    connection at once, which is how an interrupted reply stops the server).
    """

    def __init__(self, response: aiohttp.ClientResponse, reader: ChunkReader,
                 client: ChatCompletionsClient) -> None:
        self._response = response
        self._reader = reader
        self._client = client
        self._pending: deque[dict[str, Any]] = deque()
        self._finish_seen = False

    async def prefetch(self) -> None:
        """Read until the first chunk with output (or the end of the reply)."""
        while True:
            chunk = await self._read()
            if chunk is None:
                return
            self._pending.append(chunk)
            if chunk_has_output(chunk):
                return

    async def next_chunk(self) -> dict[str, Any] | None:
        """The next chunk, or None when the reply is complete."""
        if self._pending:
            return self._pending.popleft()
        return await self._read()

    async def _read(self) -> dict[str, Any] | None:
        try:
            chunk = await self._reader.next_chunk()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise self._client.translate(exc) from None
        if chunk is None:
            if not (self._reader.saw_done or self._finish_seen):
                raise ChatCompletionsConnectionError(
                    f"{self._client.display_url} closed the stream before the reply was "
                    "complete (no finish_reason, no [DONE])")
            return None
        if any(isinstance(c, dict) and c.get("finish_reason")
               for c in chunk.get("choices") or []):
            self._finish_seen = True
        return chunk

    def close(self, *, complete: bool) -> None:
        """Release the connection for reuse, or (``complete=False``) drop it now."""
        if complete:
            self._response.release()
        else:
            self._response.close()


class ChatCompletionsClient:
    """Streams chat completions from one OpenAI-compatible endpoint.

    Args:
        base_url: the API root, e.g. ``http://localhost:11434/v1``.
        api_key: sent as a bearer token when set; never logged.
        timeout_s: limit for connecting and for each wait for data.
        retries: timing and attempt budget for transient failures.
        name: used in log lines.
    """

    def __init__(self, *, base_url: str, api_key: str | None, timeout_s: float,
                 retries: Backoff, name: str) -> None:
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.display_url = redact_url(self.url)
        self._api_key = api_key
        self.timeout_s = timeout_s
        # The plugin decides what is transient; the policy only gives the timing.
        self.retries = dataclasses.replace(retries, retry_on=(_Transient,))
        self.name = name
        self._session: aiohttp.ClientSession | None = None

    def redact(self, text: str) -> str:
        """``text`` with the API key (and URL credentials) masked."""
        if self._api_key:
            text = text.replace(self._api_key, _REDACTED)
        return text.replace(self.url, self.display_url)

    def _get_session(self) -> aiohttp.ClientSession:
        # Created lazily: the session binds to the loop that first uses it.
        if self._session is None or self._session.closed:
            timeout = aiohttp.ClientTimeout(total=None, sock_connect=self.timeout_s,
                                            sock_read=self.timeout_s)
            self._session = aiohttp.ClientSession(timeout=timeout)
        return self._session

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": "text/event-stream"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        return headers

    async def close(self) -> None:
        """Close the HTTP session (idempotent)."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def open_stream(self, payload: dict[str, Any]) -> OpenStream:
        """POST ``payload`` and return the stream once it has produced output.

        Raises:
            ChatCompletionsError: a permanent failure, or a transient one that
                outlasted the retry budget (``attempts`` says how many were made).
        """
        retry_after: list[float] = []

        def on_retry(attempt: int, error: BaseException, delay: float) -> None:
            if isinstance(error, _Transient) and error.retry_after is not None:
                retry_after.append(error.retry_after)
            logger.warning("%s: attempt %d failed (%s); retrying in %.2f s",
                           self.name, attempt, error, delay)

        async def sleep(delay: float) -> None:
            # Honour the server's Retry-After, within the policy's cap.
            hint = min(retry_after.pop(), self.retries.cap) if retry_after else 0.0
            await asyncio.sleep(max(delay, hint))

        try:
            return await self.retries.retry(lambda: self._attempt(payload),
                                            on_retry=on_retry, sleep=sleep)
        except RetriesExhausted as exc:
            last = exc.last
            if not isinstance(last, _Transient):  # pragma: no cover - retry_on guarantees it
                raise
            last.error.attempts = exc.attempts
            raise last.error from None

    async def _attempt(self, payload: dict[str, Any]) -> OpenStream:
        try:
            response = await self._get_session().post(self.url, json=payload,
                                                      headers=self._headers())
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise _Transient(self.translate(exc)) from None
        try:
            if response.status >= 400:
                raise await self._status_error(response)
            stream = OpenStream(response, ChunkReader(response, self.redact), self)
            await stream.prefetch()
            return stream
        except ChatCompletionsError as error:
            response.close()
            if error.transient:
                raise _Transient(error, _retry_after(response)) from None
            raise
        except BaseException:
            response.close()
            raise

    async def _status_error(self, response: aiohttp.ClientResponse) -> ChatCompletionsAPIError:
        status = response.status
        try:
            body = (await response.text(errors="replace"))[:_ERROR_BODY_CHARS]
        except (aiohttp.ClientError, TimeoutError):
            body = ""
        message = self.redact(_server_message(body) or response.reason or "no details")
        hint = _STATUS_HINTS.get(status)
        detail = f"HTTP {status} from POST {self.display_url}: {message}"
        return ChatCompletionsAPIError(f"{detail} ({hint})" if hint else detail, status=status)

    def translate(self, exc: BaseException) -> ChatCompletionsError:
        """An aiohttp / timeout exception as one of this plugin's errors."""
        if isinstance(exc, TimeoutError):
            return ChatCompletionsTimeoutError(
                f"no data from {self.display_url} within {self.timeout_s:g} s")
        if isinstance(exc, aiohttp.ClientConnectorError):
            return ChatCompletionsConnectionError(
                f"cannot connect to {self.display_url}: {self.redact(str(exc.os_error))}")
        return ChatCompletionsConnectionError(
            f"connection to {self.display_url} failed: {type(exc).__name__}: "
            f"{self.redact(str(exc))}")


def _server_message(body: str) -> str:
    """The human-readable part of an error body (OpenAI, vLLM, Ollama, llama.cpp shapes)."""
    text = body.strip()
    try:
        data = json.loads(text)
    except ValueError:
        return text
    if isinstance(data, dict):
        error = data.get("error", data)
        if isinstance(error, dict):
            for key in ("message", "detail", "error"):
                if isinstance(error.get(key), str):
                    return str(error[key])
        elif isinstance(error, str):
            return error
    return text


def _retry_after(response: aiohttp.ClientResponse) -> float | None:
    value = response.headers.get("Retry-After", "")
    try:
        seconds = float(value)
    except ValueError:
        return None  # absent, or an HTTP date: fall back to the policy's delay
    return seconds if seconds >= 0 else None
