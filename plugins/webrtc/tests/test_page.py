"""The page in a real browser (Debian's Chromium, headless) against the edge in-process.

The browser's microphone and camera are files (Chromium's fake devices); the
agent's side is fed to the edge by the test as the pipeline would (audio
chunks with their text, transcripts, LLM text). What the browser heard is
recorded in the page and transcribed with Whisper. The whole pipeline behind
a browser is in tests/integration/test_browser_agent.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zmq
import zmq.asyncio
from test_webrtc import Context, WatchedContext, connect, running_edge, until

from tests.integration.chromium import (
    Speech,
    chromium,
    connect_page,
    have_chromium,
    kill_browsers,
    mic_file,
    read_wav,
    received_audio,
    write_wav,
    y4m_file,
)
from tests.integration.harness import REPO, transcribe, words
from va_actors.core.audio import PcmData
from va_actors.core.node import Inbound
from va_actors.core.stt.events import STTPartialTranscriptEvent, STTTranscriptEvent
from va_actors.core.turn_detection.events import TurnEndedEvent
from va_actors.wire import Control, encode_control

VOICE = REPO / "launch" / "assets" / "voice"
QUESTION = "What is the weather usually like in the summer?"
REPLY = "Can you tell me a short joke?"  # the agent's "voice": a bundled Piper recording

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120),
              pytest.mark.skipif(not have_chromium(), reason="needs /usr/bin/chromium "
                                 "(scripts/bootstrap.sh installs it)")]


async def speak_reply(ctx_edge: Any, response_id: str = "r1", *, realtime: bool = False) -> None:
    """Feed the bundled joke question to the edge as a TTS would (20 ms chunks)."""
    pcm = read_wav(VOICE / "joke.wav").resample(16000, 1)
    step = 320
    for i in range(0, pcm.samples.size, step):
        chunk = PcmData(16000, "s16", pcm.samples[i:i + step].copy())
        await ctx_edge.on_message(Inbound("tts.audio", chunk, source="tts",
                                          fields={"response_id": response_id, "text": REPLY}))
        if realtime:
            await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def sys_pub() -> AsyncIterator[tuple[str, Any]]:
    zctx = zmq.asyncio.Context()
    pub = zctx.socket(zmq.PUB)
    port = pub.bind_to_random_port("tcp://127.0.0.1")
    try:
        yield f"tcp://127.0.0.1:{port}", pub
    finally:
        pub.close(0)
        zctx.term()


async def test_talking_through_the_page(tmp_path: Path) -> None:
    mic = mic_file(tmp_path / "mic.wav", [Speech(VOICE / "weather.wav", 0.5)], 5.0)
    camera = y4m_file(REPO / "launch/assets/video/faces.mp4", tmp_path / "camera.y4m")
    async with sys_pub() as (endpoint, pub):
        ctx = WatchedContext(system_endpoint=endpoint)
        async with running_edge(ctx) as (edge, _), chromium(mic, camera) as browser:
            page = await connect_page(browser, edge.server.url, name="ada")
            # The browser's microphone reaches the pipeline: Whisper hears the question.
            await until(lambda: len(ctx.on("audio")) >= 150, 15, "3 s of microphone audio")
            assert ctx.on("video"), "the camera was not published"
            heard = np.concatenate([c.samples for c in ctx.on("audio")])
            write_wav(tmp_path / "mic16k.wav", heard, 16000)
            assert words(transcribe(tmp_path / "mic16k.wav")) == words(QUESTION)
            participant = ctx.on("audio")[0].participant
            assert participant.user_id == "ada"

            # The pipeline's side, as its actors would send it.
            ns = time.time_ns()
            await edge.on_message(Inbound("stt.transcript",
                                          STTPartialTranscriptEvent(text="What is the",
                                                                    participant=participant),
                                          ts_ns=ns))
            await edge.on_message(Inbound("turn.turn", TurnEndedEvent(
                trailing_silence_ms=200.0, participant=participant), ts_ns=ns + 5_000_000))
            await edge.on_message(Inbound("stt.transcript", STTTranscriptEvent(
                text=QUESTION, participant=participant), ts_ns=ns + 9_000_000))
            await edge.on_message(Inbound("llm.text", "Can you tell", ts_ns=ns + 20_000_000,
                                          fields={"response_id": "r1", "index": 0}))
            await speak_reply(edge)
            await edge.on_message(Inbound("llm.text", REPLY, fields={"response_id": "r1",
                                                                     "final": True}))
            for _ in range(30):  # the supervisor's view, once its SUB has joined
                await pub.send_multipart(encode_control("sys.metrics", Control("metrics", {
                    "pipeline": "browser-agent", "epoch": 0, "up": 5, "total": 5,
                    "restarts": 0, "drops": 0, "services": [], "latency": None,
                    "instances": {n: {"state": "running", "restarts": 0, "drops_total": 0}
                                  for n in ("browser", "turn", "stt", "llm", "tts")}}),
                    seq=1, epoch=0, source="sys"))
                if await page.evaluate("window.vaEdge.pipeline !== null"):
                    break
                await asyncio.sleep(0.1)
            await page.wait_for_function(
                "window.vaEdge.latencies.length && "
                "window.vaEdge.latencies[0].segments_ms.to_ear !== undefined", timeout=10000)
            await asyncio.sleep(2.0)  # the rest of the reply plays
            lines = await page.evaluate("window.vaEdge.lines")
            assert [(line["kind"], line["who"], line["text"], line["final"])
                    for line in lines] == [("user", "you", QUESTION, True),
                                           ("agent", "agent", REPLY, True)]
            assert await page.inner_text("#transcript") == f"you\n{QUESTION}\nagent\n{REPLY}"
            label = await page.inner_text("#latency li .label")
            assert label.startswith(f"{round(edge_latency(ctx))} ms = turn 200 + transcript 4")
            assert "to ear ~" in label
            assert await page.locator("#pipeline tbody tr").count() == 5
            assert await page.evaluate(
                "document.getElementById('remote-figure').hidden") is True  # no video input
            await page.screenshot(path=str(tmp_path / "page.png"))
            # The agent's audio arrived over WebRTC: Whisper hears the reply in the recording.
            recording = await received_audio(page)
            write_wav(tmp_path / "agent16k.wav", recording.resample(16000, 1).samples, 16000)
            assert words(transcribe(tmp_path / "agent16k.wav")) == words(REPLY)


def edge_latency(ctx: Context) -> float:
    (event,) = ctx.on("metrics")
    return float(event.total_ms)


async def test_a_refused_microphone_is_explained(tmp_path: Path) -> None:
    async with running_edge() as (edge, _), chromium(fake_ui=False) as browser:
        page = await browser.new_page()  # no permission granted, and nobody to click "allow"
        await page.goto(edge.server.url)
        await page.click("#connect")
        await page.wait_for_function("window.vaEdge.errors.length", timeout=10000)
        text = await page.inner_text("#banner")
        assert "microphone permission was refused" in text and "Connect again" in text
        assert await page.inner_text("#status") == "not connected"
        assert await page.is_enabled("#connect")
        assert not edge.peers


async def test_a_refused_connection_is_explained(tmp_path: Path) -> None:
    mic = mic_file(tmp_path / "mic.wav", [], 2.0)
    async with running_edge(max_peers=1) as (edge, _), chromium(mic) as browser:
        other = await connect(edge)  # the edge is full
        try:
            page = await browser.new_page()
            await page.goto(edge.server.url)
            await page.click("#connect")
            await page.wait_for_function("window.vaEdge.errors.length", timeout=10000)
            text = await page.inner_text("#banner")
            assert "refused the connection (503)" in text and "max_peers = 1" in text
        finally:
            await other.close()


async def test_a_tab_closed_mid_reply_is_cleaned_up_and_a_new_one_connects(
        tmp_path: Path) -> None:
    mic = mic_file(tmp_path / "mic.wav", [], 30.0)
    async with running_edge() as (edge, ctx), chromium(mic) as browser:
        page = await connect_page(browser, edge.server.url)
        reply = asyncio.create_task(speak_reply(edge, realtime=True))
        await until(lambda: any(e.playing for e in ctx.playback()), 10, "the reply to play")
        await page.close()  # mid-reply
        await until(lambda: not edge.peers, 5, "the edge to drop the closed tab's peer")
        await reply
        cut = next(e for e in ctx.playback() if e.interrupted)
        assert not cut.playing and cut.played_ms < 1600  # joke.wav is 1.6 s
        assert ctx.drops["no_listener"] > 0  # the rest was not played to anyone
        again = await connect_page(browser, edge.server.url)
        await speak_reply(edge, "r2")
        await again.wait_for_function("window.vaEdge.agentAudioAt !== null", timeout=10000)


async def test_a_browser_that_dies_is_dropped_by_the_watchdog(tmp_path: Path) -> None:
    mic = mic_file(tmp_path / "mic.wav", [], 30.0)
    async with running_edge(peer_timeout_s=2.0) as (edge, _):
        async with chromium(mic) as browser:
            await connect_page(browser, edge.server.url)
            await until(lambda: edge.peers and all(p.connected for p in edge.peers.values()),
                        10)
            # SIGKILL every browser process: no unload, no hang-up, no DTLS goodbye.
            kill_browsers()
            await until(lambda: not edge.peers, 8, "the edge to drop the dead browser's peer")
        async with chromium(mic) as browser:  # a new browser connects to the same edge
            await connect_page(browser, edge.server.url)
            assert len(edge.peers) == 1
