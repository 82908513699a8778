"""A scripted OpenAI chat-completions server speaking the real streaming protocol.

For tests whose model side must say something exact or check what it is
sent: ``POST /v1/chat/completions`` answers with SSE
``chat.completion.chunk`` events (``role`` first, content deltas, a
``finish_reason``, a usage chunk, ``data: [DONE]``) built by a function of
the request body; ``GET /health`` answers ok. It runs on its own thread and
records every request body.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable
from typing import Any

from aiohttp import web

from va_actors.testing import free_port

__all__ = ["ScriptedOpenAI", "chunk", "text_round", "usage_chunk"]

Script = Callable[[dict[str, Any]], list[bytes]]
"""Request body -> the SSE events of the answer (without usage and [DONE])."""


def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
    """One ``chat.completion.chunk`` SSE event."""
    body = {"id": "chatcmpl-scripted", "object": "chat.completion.chunk", "created": 1,
            "model": "scripted", "choices": [{"index": 0, "delta": delta,
                                              "finish_reason": finish}]}
    return f"data: {json.dumps(body)}\n\n".encode()


def usage_chunk() -> bytes:
    """The usage chunk asked for with ``stream_options.include_usage``."""
    body = {"id": "chatcmpl-scripted", "object": "chat.completion.chunk", "created": 1,
            "model": "scripted", "choices": [],
            "usage": {"prompt_tokens": 40, "completion_tokens": 12, "total_tokens": 52}}
    return f"data: {json.dumps(body)}\n\n".encode()


def text_round(text: str) -> list[bytes]:
    """An answer of ``text``, streamed word by word."""
    words = text.split(" ")
    deltas = [chunk({"role": "assistant", "content": ""})]
    deltas += [chunk({"content": w if i == 0 else f" {w}"}) for i, w in enumerate(words)]
    return [*deltas, chunk({}, "stop")]


class ScriptedOpenAI:
    """The server; use as a context manager. ``requests``: every body received.

    Args:
        script: builds each answer from the request body; a ``web.Response`` it
            raises (``web.HTTPBadRequest``...) is sent as is.
        delay_s: pause between events (a model streaming).
    """

    def __init__(self, script: Script, delay_s: float = 0.005) -> None:
        self.requests: list[dict[str, Any]] = []
        self.port = free_port()
        self._script = script
        self._delay_s = delay_s
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._runner: web.AppRunner | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def __enter__(self) -> ScriptedOpenAI:
        self._thread.start()
        assert self._ready.wait(10), "scripted server did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_get("/health", self._health)
        self._runner = web.AppRunner(app)
        self._loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        self._loop.run_until_complete(site.start())
        self._ready.set()
        self._loop.run_forever()

    async def _health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests.append(body)
        events = [*self._script(body), usage_chunk()]
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for event in events:
            await response.write(event)
            await asyncio.sleep(self._delay_s)
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response
