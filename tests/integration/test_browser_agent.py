"""launch/browser_agent.toml and browser_vision.toml end to end, with a real browser.

``va-launch run`` starts the offline voice agent behind the WebRTC edge;
headless Chromium opens its page, presses Connect and speaks through a fake
microphone (a WAV file: the bundled Piper questions on a timeline). Every
stage is the real one, each in its own process. Checked from the page: the
user's words and the agent's replies appear, the second question cuts the
first reply (barge-in), and the agent's voice that arrived over WebRTC,
recorded in the page, is what the LLM wrote (Whisper transcribes it again).
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.integration.chromium import (
    chromium,
    connect_page,
    have_chromium,
    kill_browsers,
    received_audio,
    write_wav,
    y4m_file,
)
from tests.integration.harness import REPO, free_port, launched, transcribe, words
from va_actors.testing import pipeline_copy_text

VOICE = REPO / "launch" / "assets" / "voice"
WEATHER = words("What is the weather usually like in the summer?")
JOKE = words("Can you tell me a short joke?")

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240),
              pytest.mark.skipif(not have_chromium(), reason="needs /usr/bin/chromium "
                                 "(scripts/bootstrap.sh installs it)")]


def variant(tmp_path: Path, name: str = "browser_agent.toml") -> tuple[Path, int]:
    """The launch file on a free port (tests run beside whatever uses 8780)."""
    port = free_port()
    text = pipeline_copy_text(REPO / "launch" / name)
    listen = 'port = "${VA_SESSION_PORT:-8780}"'
    assert listen in text
    path = tmp_path / name
    path.write_text(text.replace(listen, f"port = {port}"))
    return path, port


async def open_page(browser: Any, url: str, timeout_s: float = 90) -> Any:
    """Connect once the pipeline takes peers (its page answers 503 while starting)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return await connect_page(browser, url)
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            for page in browser.pages:
                await page.close()
            await asyncio.sleep(1.0)


async def lines_of(page: Any, kind: str) -> list[dict[str, Any]]:
    lines: list[dict[str, Any]] = await page.evaluate("window.vaEdge.lines")
    return [line for line in lines if line["kind"] == kind]


async def wait_lines(page: Any, kind: str, n: int, timeout_s: float,
                     final: bool = True) -> list[dict[str, Any]]:
    """The page's first ``n`` transcript lines of ``kind`` (final ones only with ``final``)."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = [x for x in await lines_of(page, kind) if x["final"] or not final]
        if len(found) >= n:
            return found
        if time.monotonic() > deadline:
            shown = await page.evaluate("window.vaEdge.lines")
            raise AssertionError(f"{n} {kind} line(s) expected within {timeout_s:g} s; "
                                 f"the page shows {shown}")
        await asyncio.sleep(0.2)


def post(url: str, body: bytes) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


async def test_talk_to_the_agent_in_a_browser_and_interrupt_it(tmp_path: Path) -> None:
    pipeline, port = variant(tmp_path)
    url = f"http://127.0.0.1:{port}/"
    with launched(pipeline) as run:
        run.wait_for(r"talk to the agent at", 90)
        async with chromium(VOICE / "browser_bargein.wav") as browser:
            page = await open_page(browser, url)
            users = await wait_lines(page, "user", 2, 60)
            agents = await wait_lines(page, "agent", 1, 60, final=False)
            agents = await wait_lines(page, "agent", 2, 60, final=False)  # the joke's reply
            await page.wait_for_function(  # ... has been played out to the page
                f"window.vaEdge.lastHeard && window.vaEdge.lastHeard.response_id === "
                f"{json.dumps(agents[-1]['key'])} && !window.vaEdge.playing", timeout=60000)
            await asyncio.sleep(1.0)  # the browser's jitter buffer empties
            agents = await lines_of(page, "agent")
            await page.screenshot(path=str(tmp_path / "page.png"))
            recording = await received_audio(page)
            state = await page.evaluate(
                "({epoch: vaEdge.pipeline && vaEdge.pipeline.epoch, "
                "latencies: vaEdge.latencies.length, "
                "rows: vaEdge.pipeline ? vaEdge.pipeline.instances.map(i => i.state) : []})")
    assert [words(u["text"]) for u in users[:2]] == [WEATHER, JOKE], run.output[-3000:]
    first, last = agents[0], agents[-1]
    # Barge-in: the first reply was cut; the page shows what the user heard of it.
    assert first.get("interrupted"), agents
    assert first["text"].startswith(first.get("heard", "")) and len(first["text"]) > len(
        first.get("heard", ""))
    assert state["epoch"] >= 2 and state["latencies"] >= 1
    assert state["rows"] and set(state["rows"]) == {"running"}
    # What arrived over WebRTC is what the LLM wrote (the reply heard in full).
    write_wav(tmp_path / "heard.wav", recording.resample(16000, 1).samples, 16000)
    heard = words(transcribe(tmp_path / "heard.wav"))
    said = words(last["text"])
    assert said and sum(w in heard for w in said) / len(said) >= 0.7, (last["text"], heard)


async def test_a_browser_that_vanishes_mid_reply_leaves_the_pipeline_running(
        tmp_path: Path) -> None:
    pipeline, port = variant(tmp_path)
    url = f"http://127.0.0.1:{port}/"
    with launched(pipeline) as run:
        run.wait_for(r"talk to the agent at", 90)
        async with chromium(VOICE / "browser_weather.wav") as browser:
            page = await open_page(browser, url)
            await page.wait_for_function("window.vaEdge.agentAudioAt !== null", timeout=60000)
            # Mid-reply the browser dies: no hang-up, no unload, no DTLS goodbye.
            kill_browsers()
        run.wait_for(r"peer \w+ left", 15)
        # Garbage at the offer endpoint: refused with a reason, nothing else happens.
        status, answer = post(url + "offer", b"\x00garbage")
        assert status == 400 and "not JSON" in answer["error"]
        async with chromium(VOICE / "browser_weather.wav") as browser:
            page = await open_page(browser, url, timeout_s=20)
            users = await wait_lines(page, "user", 1, 60)
            await page.wait_for_function(
                "window.vaEdge.lines.some(l => l.kind === 'agent' && l.final) && "
                "window.vaEdge.agentAudioAt !== null", timeout=60000)
            state = await page.evaluate("vaEdge.pipeline")
        assert run.proc.poll() is None, run.output[-3000:]
    assert words(users[-1]["text"]) == WEATHER
    assert {row["name"]: (row["state"], row["restarts"]) for row in state["instances"]} == {
        name: ("running", 0) for name in ("browser", "turn", "stt", "llm", "tts")}


async def test_the_camera_goes_to_face_detection_and_the_boxes_come_back(
        tmp_path: Path) -> None:
    pipeline, port = variant(tmp_path, "browser_vision.toml")
    camera = y4m_file(REPO / "launch/assets/video/faces.mp4", tmp_path / "camera.y4m",
                      width=640, height=480, fps=15, seconds=3)
    url = f"http://127.0.0.1:{port}/"
    with launched(pipeline) as run:
        run.wait_for(r"talk to the agent at", 90)
        async with chromium(VOICE / "browser_weather.wav", camera) as browser:
            page = await open_page(browser, url)
            await page.wait_for_function(
                "!document.getElementById('remote-figure').hidden", timeout=60000)
            await page.wait_for_function(
                "(window.vaEdge.faces || 0) > 0", timeout=60000)
            size = await page.evaluate(
                "[document.getElementById('remote-video').videoWidth, "
                "document.getElementById('remote-video').videoHeight]")
            await wait_lines(page, "agent", 1, 90, final=False)
            await page.screenshot(path=str(tmp_path / "vision.png"))
    assert size == [640, 480]
