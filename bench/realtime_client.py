"""Benchmark: what openai.Realtime adds on each audio path, next to a bare aiohttp client.

Over loopback, against a minimal GA Realtime server started here:

* **audio in**: one 20 ms chunk of 16 kHz speech through
  ``Realtime.simple_audio_response`` (stateful resampling to 24 kHz, base64,
  JSON, WebSocket send) vs the baseline: the same 24 kHz bytes base64'd and
  sent with ``send_str`` by a bare aiohttp client;
* **audio out**: one ``response.output_audio.delta`` (100 ms of 24 kHz audio)
  from the server's send to the :class:`RealtimeAudioOutputEvent` handler
  (receive, JSON, base64, PcmData, epoch stamping, event dispatch) vs the
  baseline: a bare aiohttp client's receive + ``json.loads`` + ``b64decode``.

Both sides of a pair run in the same process and the same run; the server
stamps each delta with ``time.perf_counter_ns()``. The first 20 items are
warm-up. Figures are preliminary on a shared machine.

Run: ``.venv/bin/python -m bench.realtime_client [--chunks N]``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import time
from typing import Any

import aiohttp
import numpy as np
from aiohttp import web

from bench.stats import median, percentile
from va_actors.core.audio import AudioFormat, PcmData, Resampler
from va_actors.core.llm import RealtimeAudioOutputEvent
from va_actors.plugins.openai import Realtime

WARMUP = 20
RATE_IN = 16000
DELTA_MS = 100


class Server:
    """session.created / session.updated, counts appends, streams deltas on response.create."""

    def __init__(self, deltas: int) -> None:
        self.deltas = deltas
        self.appended = 0
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/v1/realtime", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"ws://127.0.0.1:{port}/v1/realtime"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(max_msg_size=0)
        await ws.prepare(request)
        await ws.send_str(json.dumps({"type": "session.created", "session": {"id": "sess_1"}}))
        async for msg in ws:
            event = json.loads(msg.data)
            kind = event.get("type")
            if kind == "session.update":
                await ws.send_str(json.dumps({"type": "session.updated",
                                              "session": event["session"]}))
            elif kind == "input_audio_buffer.append":
                self.appended += 1
            elif kind == "response.create":
                await self._stream(ws)
        return ws

    async def _stream(self, ws: web.WebSocketResponse) -> None:
        audio = base64.b64encode(np.zeros(24 * DELTA_MS, np.int16).tobytes()).decode()
        await ws.send_str(json.dumps({"type": "response.created",
                                      "response": {"id": "resp_1", "status": "in_progress"}}))
        for _ in range(self.deltas):
            await ws.send_str(json.dumps({
                "type": "response.output_audio.delta", "response_id": "resp_1",
                "item_id": "item_1", "output_index": 0, "content_index": 0, "delta": audio,
                "sent_ns": time.perf_counter_ns()}))
            await asyncio.sleep(0.002)


def _summary(label: str, values_us: list[float]) -> dict[str, Any]:
    kept = values_us[WARMUP:]
    return {"path": label, "n": len(kept), "median_us": round(median(kept), 1),
            "p99_us": round(percentile(kept, 0.99), 1)}


def _speech(chunks: int) -> list[PcmData]:
    rng = np.random.default_rng(7)
    t = np.arange(RATE_IN // 50) / RATE_IN
    return [PcmData(RATE_IN, AudioFormat.S16, (8000 * np.sin(2 * np.pi * 220 * t)
                                               + rng.normal(0, 300, t.size)).astype(np.int16))
            for _ in range(chunks)]


async def audio_in(server: Server, chunks: int) -> list[dict[str, Any]]:
    pieces = _speech(chunks)
    rt = Realtime(base_url=server.url, api_key="bench", turn_detection=None,
                  input_transcription=None)
    await rt.connect()
    ours: list[float] = []
    try:
        for piece in pieces:
            start = time.perf_counter_ns()
            await rt.simple_audio_response(piece)
            ours.append((time.perf_counter_ns() - start) / 1000)
    finally:
        await rt.close()
    resampler = Resampler(24000, 1, AudioFormat.S16)
    raw = [resampler.process(p).to_bytes() for p in pieces]  # baseline sends ready bytes
    bare: list[float] = []
    async with aiohttp.ClientSession() as http, http.ws_connect(server.url) as ws:
        for data in raw:
            start = time.perf_counter_ns()
            await ws.send_str(json.dumps({"type": "input_audio_buffer.append",
                                          "audio": base64.b64encode(data).decode()}))
            bare.append((time.perf_counter_ns() - start) / 1000)
    return [_summary("audio in: Realtime.simple_audio_response (16 kHz chunk)", ours),
            _summary("audio in: bare aiohttp send of the 24 kHz bytes (baseline)", bare)]


async def audio_out(server: Server) -> list[dict[str, Any]]:
    rt = Realtime(base_url=server.url, api_key="bench", turn_detection=None,
                  input_transcription=None)
    ours: list[float] = []
    sent: list[int] = []
    real_dispatch = rt._dispatch

    async def tapped(event: dict[str, Any]) -> None:
        if "sent_ns" in event:
            sent.append(int(event["sent_ns"]))
        await real_dispatch(event)

    rt._dispatch = tapped  # type: ignore[method-assign,unused-ignore]

    def on_audio(event: RealtimeAudioOutputEvent) -> None:
        ours.append((time.perf_counter_ns() - sent[-1]) / 1000)

    rt.events.subscribe(event_types=[RealtimeAudioOutputEvent])(on_audio)
    await rt.connect()
    try:
        await rt.create_response()
        async with asyncio.timeout(60):
            while len(ours) < server.deltas:  # noqa: ASYNC110 - polls the handler's list
                await asyncio.sleep(0.01)
    finally:
        await rt.close()
    bare: list[float] = []
    async with aiohttp.ClientSession() as http, http.ws_connect(server.url) as ws:
        await ws.receive()  # session.created
        await ws.send_str(json.dumps({"type": "response.create"}))
        while len(bare) < server.deltas:
            event = json.loads((await ws.receive()).data)
            if event.get("type") == "response.output_audio.delta":
                base64.b64decode(event["delta"])
                bare.append((time.perf_counter_ns() - int(event["sent_ns"])) / 1000)
    return [_summary("audio out: server send -> RealtimeAudioOutputEvent", ours),
            _summary("audio out: server send -> bare receive + decode (baseline)", bare)]


async def run(chunks: int) -> list[dict[str, Any]]:
    """Rows of both paths, ours next to the baseline."""
    server = Server(deltas=chunks)
    await server.start()
    try:
        return [*await audio_in(server, chunks), *await audio_out(server)]
    finally:
        await server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=500, help="items per path")
    args = parser.parse_args()
    rows = asyncio.run(run(max(args.chunks, WARMUP + 10)))
    print("| path | n | median (us) | p99 (us) |")
    print("|---|---|---|---|")
    for row in rows:
        print(f"| {row['path']} | {row['n']} | {row['median_us']} | {row['p99_us']} |")


if __name__ == "__main__":
    main()
