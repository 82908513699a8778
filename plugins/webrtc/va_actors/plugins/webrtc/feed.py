"""The page's live feed: JSON messages to every open page over a WebSocket.

Messages (``type``):

- ``hello``: edge name and settings, sent first; then the conversation so
  far, replayed, and ``live``: what follows happens now;
- ``user``: a transcript of a participant (``final`` false for partials);
- ``agent``: a piece of the agent's reply text (``final`` ends the reply);
- ``heard``: a playback report (what the listener heard; ``interrupted``);
- ``turn``: a participant started or ended a turn;
- ``latency``: one turn's voice-to-voice breakdown (the console's segments);
- ``pipeline`` / ``actor``: the supervisor's view (``sys.metrics`` / ``sys.actor``);
- ``peers``: who is connected;
- ``state``: a processor's state (faces found, say).

Each page has its own bounded queue: a page that stops reading loses its
oldest messages (counted), never slows the edge. Conversation messages are
kept (the last :data:`HISTORY` of them) so a page opened later shows the
conversation so far.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import deque
from typing import Any

from aiohttp import WSMsgType, web

logger = logging.getLogger(__name__)

HISTORY = 500
"""Conversation messages replayed to a page that connects later."""
_QUEUE = 1000
_KEPT = frozenset({"user", "agent", "heard", "latency"})


class _Client:
    def __init__(self, ws: web.WebSocketResponse) -> None:
        self.ws = ws
        self.queue: deque[str] = deque(maxlen=_QUEUE)
        self.ready = asyncio.Event()
        self.dropped = 0

    def put(self, text: str) -> None:
        if len(self.queue) == self.queue.maxlen:
            self.dropped += 1
        self.queue.append(text)
        self.ready.set()


class PageFeed:
    """Fans messages out to the open pages (see the module docstring)."""

    def __init__(self) -> None:
        self._clients: set[_Client] = set()
        self._history: deque[str] = deque(maxlen=HISTORY)
        self._latest: dict[str, str] = {}  # type -> newest (pipeline, peers)

    @property
    def clients(self) -> int:
        """Pages connected now."""
        return len(self._clients)

    def send(self, message: dict[str, Any]) -> None:
        """Send ``message`` to every page (and keep it for later ones when it is conversation)."""
        text = json.dumps(message, default=str)
        kind = message.get("type")
        if kind in _KEPT:
            self._history.append(text)
        elif kind in ("pipeline", "peers"):
            self._latest[str(kind)] = text
        for client in self._clients:
            client.put(text)

    async def serve(self, request: web.Request, hello: dict[str, Any],
                    on_close: Any = None) -> web.WebSocketResponse:
        """Serve one page's WebSocket until it closes."""
        ws = web.WebSocketResponse(heartbeat=10.0)
        await ws.prepare(request)
        client = _Client(ws)
        client.put(json.dumps(hello))
        for text in [*self._history, *self._latest.values()]:
            client.put(text)
        client.put(json.dumps({"type": "live"}))  # what follows happens now
        self._clients.add(client)
        writer = asyncio.create_task(self._write(client))
        try:
            async for msg in ws:  # the page sends nothing we need; read to see it close
                if msg.type in (WSMsgType.ERROR, WSMsgType.CLOSE):
                    break
        finally:
            self._clients.discard(client)
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                await writer
            if client.dropped:
                logger.info("a page missed %d feed messages (it read too slowly)",
                            client.dropped)
            if on_close is not None:
                await on_close()
        return ws

    @staticmethod
    async def _write(client: _Client) -> None:
        while True:
            await client.ready.wait()
            client.ready.clear()
            while client.queue:
                await client.ws.send_str(client.queue.popleft())

    async def close(self) -> None:
        """Close every page's socket."""
        for client in list(self._clients):
            with contextlib.suppress(Exception):
                await client.ws.close()
