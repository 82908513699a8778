"""One Realtime WebSocket: opening it (auth, timeouts, handshake errors) and JSON in and out.

GA Realtime: ``Authorization: Bearer <key>``, ``?model=`` in the URL and no
``OpenAI-Beta`` header (a beta header gets the socket closed with 4000
``beta_api_shape_disabled``). Every message is one JSON object per text frame.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import aiohttp

from ._client import redact_url
from ._realtime_errors import (
    RealtimeAuthError,
    RealtimeConnectionError,
    RealtimeProtocolError,
)

__all__ = ["Closed", "RealtimeSocket", "Received", "Redactor", "realtime_url"]

logger = logging.getLogger(__name__)

_REDACTED = "***"
_EXCERPT = 120
_SECRET_PARAMS = ("api_key", "key", "token", "access_token")
_STATUS_HINTS = {
    401: "check api_key / OPENAI_API_KEY",
    403: "check api_key / OPENAI_API_KEY and that the key may use the Realtime API",
    404: "check base_url (it ends in /v1/realtime) and the model name",
}


def realtime_url(base_url: str, model: str) -> str:
    """``base_url`` with ``model=`` in its query (kept if the URL already names one)."""
    parts = urlsplit(base_url)
    if parts.scheme not in ("ws", "wss", "http", "https"):
        raise ValueError(f"base_url must be a ws:// or wss:// URL, got {redact_url(base_url)!r}")
    query = parse_qsl(parts.query, keep_blank_values=True)
    if model and not any(k == "model" for k, _ in query):
        query.append(("model", model))
    return urlunsplit(parts._replace(query=urlencode(query)))


class Redactor:
    """Masks the key (and URL credentials or key query parameters) in text."""

    def __init__(self, api_key: str | None, url: str) -> None:
        self._key = api_key
        self.url = url
        self.display_url = _display_url(url)

    def __call__(self, text: str) -> str:
        text = text.replace(self.url, self.display_url)  # first: the URL may hold the key
        if self._key:
            text = text.replace(self._key, _REDACTED)
        return text


def _display_url(url: str) -> str:
    parts = urlsplit(redact_url(url))
    query = [(k, _REDACTED if k.lower() in _SECRET_PARAMS else v)
             for k, v in parse_qsl(parts.query, keep_blank_values=True)]
    return urlunsplit(parts._replace(query=urlencode(query, safe="*")))


@dataclass(frozen=True)
class Received:
    """One server event (a JSON object with a string ``type``)."""

    event: dict[str, Any]

    @property
    def type(self) -> str:
        return str(self.event["type"])


@dataclass(frozen=True)
class Closed:
    """The socket ended: ``code`` is the WebSocket close code, when there was one."""

    code: int | None
    reason: str


class RealtimeSocket:
    """An open Realtime WebSocket.

    :meth:`open` connects; :meth:`receive` returns the next server event, a
    :class:`RealtimeProtocolError` for a frame that is not a JSON event (the
    socket stays usable), or :class:`Closed`; :meth:`send` writes one event.
    """

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, redact: Redactor) -> None:
        self._ws = ws
        self._redact = redact
        self._send_lock = asyncio.Lock()

    @classmethod
    async def open(cls, session: aiohttp.ClientSession, url: str, api_key: str | None, *,
                   timeout_s: float, redact: Redactor) -> RealtimeSocket:
        """Connect to ``url`` within ``timeout_s``.

        Raises:
            RealtimeAuthError: the server refused the key (HTTP 401 or 403).
            RealtimeConnectionError: refused, timed out or another HTTP status
                (``transient`` for 408/425/429/5xx and network failures).
        """
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        where = redact.display_url
        try:
            ws = await asyncio.wait_for(
                session.ws_connect(url, headers=headers, max_msg_size=0, autoping=True),
                timeout=timeout_s)
        except TimeoutError:
            raise RealtimeConnectionError(
                f"no WebSocket handshake with {where} within {timeout_s:g} s") from None
        except aiohttp.WSServerHandshakeError as exc:
            raise _handshake_error(exc.status, where, redact(exc.message or "")) from None
        except aiohttp.ClientConnectorError as exc:
            raise RealtimeConnectionError(
                f"cannot connect to {where}: {redact(str(exc.os_error))}") from None
        except (aiohttp.ClientError, OSError) as exc:
            raise RealtimeConnectionError(
                f"connection to {where} failed: {type(exc).__name__}: {redact(str(exc))}"
            ) from None
        return cls(ws, redact)

    @property
    def closed(self) -> bool:
        """Whether the socket is closed (or closing)."""
        return self._ws.closed

    async def send(self, event: Mapping[str, Any]) -> None:
        """Send one client event.

        Raises:
            RealtimeConnectionError: the socket is closed.
        """
        text = json.dumps(event, ensure_ascii=False, separators=(",", ":"))
        async with self._send_lock:
            if self._ws.closed:
                raise RealtimeConnectionError(
                    f"cannot send {event.get('type')!r}: the socket to "
                    f"{self._redact.display_url} is closed")
            try:
                await self._ws.send_str(text)
            except (aiohttp.ClientError, ConnectionError, RuntimeError) as exc:
                raise RealtimeConnectionError(
                    f"sending {event.get('type')!r} to {self._redact.display_url} failed: "
                    f"{type(exc).__name__}: {self._redact(str(exc))}") from None

    async def receive(self) -> Received | RealtimeProtocolError | Closed:
        """The next server event, an unusable frame, or the end of the socket."""
        while True:
            try:
                msg = await self._ws.receive()
            except (aiohttp.ClientError, ConnectionError, RuntimeError) as exc:
                return Closed(None, f"{type(exc).__name__}: {self._redact(str(exc))}")
            if msg.type is aiohttp.WSMsgType.TEXT:
                return self._parse(str(msg.data))
            if msg.type is aiohttp.WSMsgType.BINARY:
                return RealtimeProtocolError(
                    f"{self._redact.display_url} sent a binary frame of {len(msg.data)} bytes; "
                    "Realtime events are JSON text frames")
            if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING,
                            aiohttp.WSMsgType.CLOSED):
                code = self._ws.close_code
                reason = msg.extra if isinstance(msg.extra, str) else ""
                return Closed(code, self._redact(reason or ""))
            if msg.type is aiohttp.WSMsgType.ERROR:
                return Closed(self._ws.close_code, self._redact(str(msg.data)))
            # PING/PONG are answered by aiohttp itself (autoping).

    def _parse(self, text: str) -> Received | RealtimeProtocolError:
        try:
            event = json.loads(text)
        except ValueError as exc:
            return RealtimeProtocolError(
                f"{self._redact.display_url} sent a frame that is not JSON ({exc}): "
                f"{self._redact(text[:_EXCERPT])!r}")
        if not isinstance(event, dict) or not isinstance(event.get("type"), str):
            return RealtimeProtocolError(
                f"{self._redact.display_url} sent JSON that is not an event (an object "
                f"with a string 'type'): {self._redact(text[:_EXCERPT])!r}")
        return Received(event)

    async def close(self) -> None:
        """Close the socket (idempotent)."""
        if not self._ws.closed:
            try:
                await asyncio.wait_for(self._ws.close(), timeout=2.0)
            except (TimeoutError, aiohttp.ClientError, ConnectionError):
                logger.debug("closing the Realtime socket did not finish cleanly")


def _handshake_error(status: int, where: str, message: str) -> RealtimeAuthError | \
        RealtimeConnectionError:
    hint = _STATUS_HINTS.get(status)
    detail = f"HTTP {status} from the WebSocket handshake with {where}"
    if message:
        detail += f": {message}"
    if hint:
        detail += f" ({hint})"
    if status in (401, 403):
        return RealtimeAuthError(detail, status=status)
    transient = status in (408, 425, 429) or status >= 500
    return RealtimeConnectionError(detail, status=status, permanent=not transient)
