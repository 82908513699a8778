"""launch/vision_agent.toml end to end, against a local VLM server that really looks.

No vision-language model is installed (none ships in a package), so the VLM
endpoint is a stand-in server speaking OpenAI's chat-completions protocol
(``POST /v1/chat/completions``, ``stream: true``, SSE chunks, usage, ``[DONE]``).
It decodes every base64 JPEG it receives with PIL and answers from what it
sees: the number and size of the frames and whether the face detector's green
box is in them. Every other stage is the real one (video file, OpenCV, Silero,
Whisper, Piper), each in its own process. The answer the agent speaks is
transcribed again with Whisper.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import pytest
from aiohttp import web
from PIL import Image

from tests.integration.harness import REPO, transcribe, words
from va_actors.testing import pipeline_copy_text

LAUNCH = REPO / "launch" / "vision_agent.toml"
MODEL = "stand-in-vlm"
QUESTION = ["what", "do", "you", "see", "in", "the", "video"]

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]


# -- the stand-in vision server --------------------------------------------------------


@dataclass
class SeenImage:
    width: int
    height: int
    green_pixels: int


@dataclass
class SeenRequest:
    system: str
    question: str
    images: list[SeenImage]
    answer: str


@dataclass
class VisionServer:
    """OpenAI-compatible chat completions on 127.0.0.1, in a thread of its own."""

    requests: list[SeenRequest] = field(default_factory=list)
    base_url: str = ""
    _loop: asyncio.AbstractEventLoop = field(default_factory=asyncio.new_event_loop)
    _thread: threading.Thread | None = None
    _runner: web.AppRunner | None = None

    def start(self) -> None:
        ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, args=(ready,), daemon=True)
        self._thread.start()
        assert ready.wait(10), "the stand-in VLM server did not start"

    def _serve(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/chat/completions", self._chat)
        self._runner = web.AppRunner(app)
        self._loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        self._loop.run_until_complete(site.start())
        port = self._runner.addresses[0][1]
        self.base_url = f"http://127.0.0.1:{port}/v1"
        ready.set()
        self._loop.run_forever()

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        if body.get("model") != MODEL or body.get("stream") is not True:
            return web.json_response({"error": {"message": "bad model or not streaming",
                                                "type": "invalid_request_error"}}, status=400)
        messages = body["messages"]
        system = " ".join(m["content"] for m in messages if m["role"] == "system")
        question, images = _read_user_turn(messages[-1])
        answer = _answer(images)
        self.requests.append(SeenRequest(system, question, images, answer))
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        words = answer.split(" ")
        deltas = [{"role": "assistant", "content": ""}]
        deltas += [{"content": w + (" " if i < len(words) - 1 else "")}
                   for i, w in enumerate(words)]
        for delta in [*deltas, {}]:
            finish = None if delta else "stop"
            await _send(response, {"id": "chatcmpl-vision", "object": "chat.completion.chunk",
                                   "created": int(time.time()), "model": MODEL,
                                   "choices": [{"index": 0, "delta": delta,
                                                "finish_reason": finish}]})
        if body.get("stream_options", {}).get("include_usage"):
            await _send(response, {"id": "chatcmpl-vision", "object": "chat.completion.chunk",
                                   "created": int(time.time()), "model": MODEL, "choices": [],
                                   "usage": {"prompt_tokens": 100 + 85 * len(images),
                                             "completion_tokens": len(words),
                                             "total_tokens": 100 + 85 * len(images)
                                             + len(words)}})
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response


async def _send(response: web.StreamResponse, chunk: dict[str, Any]) -> None:
    await response.write(f"data: {json.dumps(chunk)}\n\n".encode())


def _read_user_turn(message: dict[str, Any]) -> tuple[str, list[SeenImage]]:
    """The question and the decoded images of a user message (text or content parts)."""
    assert message["role"] == "user", message["role"]
    content = message["content"]
    if isinstance(content, str):
        return content, []
    texts, images = [], []
    for part in content:
        if part["type"] == "text":
            texts.append(part["text"])
        elif part["type"] == "image_url":
            url = part["image_url"]["url"]
            prefix = "data:image/jpeg;base64,"
            assert url.startswith(prefix), url[:40]
            image = Image.open(io.BytesIO(base64.b64decode(url[len(prefix):], validate=True)))
            assert image.format == "JPEG"
            pixels = np.asarray(image.convert("RGB")).astype(int)
            r, g, b = pixels[..., 0], pixels[..., 1], pixels[..., 2]
            green = int(((g > 180) & (r < 110) & (b < 110)).sum())
            images.append(SeenImage(image.width, image.height, green))
    return " ".join(texts), images


def _answer(images: list[SeenImage]) -> str:
    """What a vision model would say, decided from the decoded pixels."""
    if not images:
        return "I cannot see any video."
    # A box outline on a 448x336 frame is several hundred pixels; JPEG noise is a few.
    if all(image.green_pixels > 150 for image in images):
        return "I see a person with a green box around the face."
    return "I see a person, and there is no green box."


@pytest.fixture
def vision_server() -> Iterator[VisionServer]:
    server = VisionServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


# -- running the pipeline -----------------------------------------------------------------


def _variant(tmp_path: Path, server: VisionServer, *, raw_camera: bool) -> Path:
    text = pipeline_copy_text(LAUNCH)
    text, n = re.subn(r'^base_url = "[^"]*"', f'base_url = "{server.base_url}"', text,
                      flags=re.M)
    assert n == 1
    text, n = re.subn(r'^model = "[^"]*"', f'model = "{MODEL}"', text, flags=re.M)
    assert n == 1
    text = text.replace(str(REPO / "out" / "vision_agent.wav"), str(tmp_path / "agent.wav"))
    if raw_camera:
        text = text.replace('inputs = ["stt.transcript", "faces.video", "speaker.playback"]',
                            'inputs = ["stt.transcript", "camera.video", "speaker.playback"]')
    text += f"""
[[actor]]
name = "playback_log"
plugin = "tests.actors.record:RecordingSink"
inputs = ["speaker.playback"]
params = {{ path = "{tmp_path / 'playback.jsonl'}" }}
"""
    path = tmp_path / "vision.toml"
    path.write_text(text)
    return path


class Pipeline:
    """``va-launch run`` in the background, its output collected line by line."""

    def __init__(self, path: Path) -> None:
        self.lines: list[str] = []
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "va_actors.cli.main", "run", str(path)], cwd=REPO,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def log(self) -> str:
        return "\n".join(self.lines)

    def wait_for(self, condition: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if self.proc.poll() is not None:
                raise AssertionError(f"pipeline exited ({self.proc.returncode}) before "
                                     f"{what}:\n{self.log}")
            if time.monotonic() > deadline:
                raise AssertionError(f"no {what} within {timeout} s:\n{self.log}")
            time.sleep(0.1)

    def stop(self) -> int:
        """SIGINT (a clean, ordered stop), then the exit status."""
        self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(30)
        finally:
            self._reader.join(5)

    def kill(self) -> None:
        if self.proc.poll() is None:
            for child in psutil.Process(self.proc.pid).children(recursive=True):
                child.kill()
            self.proc.kill()
            self.proc.wait()


def _playback_ended(log: Path, quiet_s: float = 3.0) -> bool:
    """The speaker played, stopped, and has reported nothing for ``quiet_s``.

    (It can stop between two chunks of a reply when the TTS is slow.)
    """
    if not log.exists():
        return False
    events = [json.loads(line) for line in log.read_text().splitlines() if line.endswith("}")]
    states = [e["playing"] for e in events if e.get("type") == "transport.playback"
              and "playing" in e]
    return True in states and states[-1] is False and \
        time.time() - log.stat().st_mtime > quiet_s


def _run_and_ask(tmp_path: Path, server: VisionServer, *, raw_camera: bool) -> str:
    pipeline = Pipeline(_variant(tmp_path, server, raw_camera=raw_camera))
    try:
        pipeline.wait_for(lambda: any(line.startswith("agent:") for line in pipeline.lines),
                          120, "agent reply")
        pipeline.wait_for(lambda: _playback_ended(tmp_path / "playback.jsonl"), 30,
                          "end of the spoken reply")
        code = pipeline.stop()
    finally:
        pipeline.kill()
    assert code == 0, pipeline.log
    return pipeline.log


# -- tests -----------------------------------------------------------------------------------


def test_the_vlm_sees_the_annotated_faces_and_answers_the_spoken_question(
        tmp_path: Path, vision_server: VisionServer) -> None:
    log = _run_and_ask(tmp_path, vision_server, raw_camera=False)
    asked = [r for r in vision_server.requests if words(r.question) == QUESTION]
    assert asked, [r.question for r in vision_server.requests]
    request = asked[0]
    assert "Green boxes in the video mark detected faces" in request.system
    # fps 1 over 3 s: up to three frames, 640x480 scaled to fit 448, each with the box.
    assert 1 <= len(request.images) <= 3, request.images
    assert all((i.width, i.height) == (448, 336) for i in request.images), request.images
    assert all(i.green_pixels > 150 for i in request.images), request.images
    assert request.answer == "I see a person with a green box around the face."
    users = [line for line in log.splitlines() if line.startswith("user:")]
    assert [words(u)[1:] for u in users] == [QUESTION], log
    agent = next(line for line in log.splitlines() if line.startswith("agent:"))
    assert words(agent)[1:] == words(request.answer), log
    heard = words(transcribe(tmp_path / "agent.wav"))
    assert "green" in heard and "box" in heard and "face" in heard, heard


def test_watching_the_raw_camera_the_vlm_sees_no_boxes(
        tmp_path: Path, vision_server: VisionServer) -> None:
    # Same pipeline with the VLM on camera.video: the same stand-in, decoding the
    # same way, now finds no green box, so the boxes above came from the detector.
    log = _run_and_ask(tmp_path, vision_server, raw_camera=True)
    asked = [r for r in vision_server.requests if words(r.question) == QUESTION]
    assert asked, [r.question for r in vision_server.requests]
    request = asked[0]
    assert 1 <= len(request.images) <= 3 and all(i.green_pixels < 50 for i in request.images)
    assert request.answer == "I see a person, and there is no green box."
    assert any(line.startswith("agent: I see a person, and there is no green box")
               for line in log.splitlines()), log
