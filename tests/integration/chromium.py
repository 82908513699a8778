"""A real browser for the WebRTC edge's tests and bench: Debian's Chromium via Playwright.

Chromium is ``/usr/bin/chromium`` (installed by scripts/bootstrap.sh); Playwright
only drives it (``executable_path``), it never downloads a browser. The
microphone and camera are files (Chromium's fake capture devices): a WAV file
for the microphone and a ``.y4m`` file for the camera, made here from the
repository's assets. Every browser gets a fresh profile and is closed, and its
processes reaped, also when the test fails.
"""

from __future__ import annotations

import base64
import contextlib
import shutil
import tempfile
import wave
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import numpy as np
import psutil

from va_actors.core.audio import PcmData

CHROMIUM = Path("/usr/bin/chromium")
MIC_RATE = 48000

_FLAGS = (
    "--no-sandbox", "--disable-gpu", "--autoplay-policy=no-user-gesture-required",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--no-first-run", "--disable-features=Translate,MediaRouter,OptimizationHints",
    # Background tabs keep their timers and media running (several peers in one browser).
    "--disable-background-timer-throttling", "--disable-renderer-backgrounding",
    "--disable-backgrounding-occluded-windows",
)


def have_chromium() -> bool:
    """Whether the browser is installed (scripts/bootstrap.sh installs it)."""
    return CHROMIUM.exists()


@dataclass(frozen=True)
class Speech:
    """One utterance placed on the fake microphone's timeline."""

    path: Path
    at_s: float


def mic_file(path: Path, speech: Sequence[Speech], total_s: float,
             rate: int = MIC_RATE) -> Path:
    """A mono WAV of silence with each utterance at its time (for the fake microphone)."""
    out = np.zeros(int(total_s * rate), np.int16)
    for item in speech:
        audio = read_wav(item.path).resample(rate, 1).samples
        start = int(item.at_s * rate)
        end = min(out.size, start + audio.size)
        out[start:end] = audio[: end - start]
    write_wav(path, out, rate)
    return path


def read_wav(path: Path) -> PcmData:
    """A 16-bit WAV file as PcmData."""
    with wave.open(str(path)) as wav:
        data = wav.readframes(wav.getnframes())
        return PcmData.from_bytes(data, wav.getframerate(), "s16", wav.getnchannels())


def write_wav(path: Path, samples: np.ndarray, rate: int) -> None:
    """Write mono int16 samples as a WAV file."""
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(np.ascontiguousarray(samples, "<i2").tobytes())


def y4m_file(source: Path, path: Path, *, width: int = 320, height: int = 240, fps: int = 15,
             seconds: float = 4.0) -> Path:
    """The first ``seconds`` of a video file as a raw .y4m (Chromium's fake camera loops it)."""
    frames: list[bytes] = []
    with av.open(str(source)) as container:
        for frame in container.decode(video=0):
            image = frame.reformat(width=width, height=height, format="yuv420p")
            frames.append(np.ascontiguousarray(image.to_ndarray()).tobytes())  # Y, U, V
            if len(frames) >= seconds * fps:
                break
    with open(path, "wb") as out:
        out.write(f"YUV4MPEG2 W{width} H{height} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for raw in frames:
            out.write(b"FRAME\n" + raw)
    return path


def chromium_args(audio: Path | None = None, video: Path | None = None, *,
                  fake_ui: bool = True, loop_audio: bool = False) -> list[str]:
    """Chromium's flags for fake capture devices fed from files."""
    args = [*_FLAGS, "--use-fake-device-for-media-stream"]
    if fake_ui:  # grants camera and microphone without asking
        args.append("--use-fake-ui-for-media-stream")
    if audio is not None:
        args.append(f"--use-file-for-fake-audio-capture={audio}{'' if loop_audio else '%noloop'}")
    if video is not None:
        args.append(f"--use-file-for-fake-video-capture={video}")
    return args


@contextlib.asynccontextmanager
async def chromium(audio: Path | None = None, video: Path | None = None, *,
                   fake_ui: bool = True, loop_audio: bool = False) -> AsyncIterator[Any]:
    """A headless Chromium with a fresh profile; yields its Playwright BrowserContext."""
    from playwright.async_api import async_playwright

    profile = Path(tempfile.mkdtemp(prefix="va-chromium-"))
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    manager = async_playwright()
    pw = await manager.start()
    context = None
    try:
        context = await pw.chromium.launch_persistent_context(
            str(profile), executable_path=str(CHROMIUM), headless=True,
            args=chromium_args(audio, video, fake_ui=fake_ui, loop_audio=loop_audio),
            # Playwright evaluates its waits as strings: let it past the page's CSP.
            viewport={"width": 1360, "height": 860}, bypass_csp=True)
        yield context
    finally:
        if context is not None:
            with contextlib.suppress(Exception):
                await context.close()
        with contextlib.suppress(Exception):
            await manager.__aexit__(None, None, None)
        _reap(before)
        shutil.rmtree(profile, ignore_errors=True)


def _reap(before: set[int]) -> None:
    """Kill browser processes this context started that are still alive."""
    left = [p for p in psutil.Process().children(recursive=True)
            if p.pid not in before and _is_browser(p)]
    for proc in left:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    psutil.wait_procs(left, timeout=5)


def _is_browser(proc: psutil.Process) -> bool:
    try:
        return "chrom" in proc.name().lower()
    except psutil.Error:  # already gone
        return False


def kill_browsers() -> None:
    """SIGKILL every Chromium process under this one (a browser that dies, for tests)."""
    for proc in psutil.Process().children(recursive=True):
        if _is_browser(proc):
            with contextlib.suppress(psutil.Error):
                proc.kill()


async def connect_page(context: Any, url: str, *, name: str = "", timeout_s: float = 20) -> Any:
    """Open the edge's page, press Connect, wait until WebRTC is connected; return the page."""
    page = await context.new_page()
    await page.goto(url)
    if name:
        await page.fill("#name", name)
    await page.click("#connect")
    await page.wait_for_function("window.vaEdge.connected || window.vaEdge.errors.length",
                                 timeout=timeout_s * 1000)
    errors = await page.evaluate("window.vaEdge.errors")
    if errors:
        raise AssertionError(f"the page could not connect: {errors}")
    return page


async def received_audio(page: Any) -> PcmData:
    """What the page received of the agent's audio so far (mono, the page's audio rate)."""
    data = await page.evaluate("window.vaEdge.takeRecording()")
    pcm = np.frombuffer(base64.b64decode(data["pcm"]), "<i2")
    return PcmData(int(data["rate"]), "s16", pcm.copy())


async def levels(page: Any, name: str) -> np.ndarray:
    """The page's tap levels of ``mic`` or ``agent``: rows of (Unix ms, rms)."""
    rows = await page.evaluate(f"window.vaEdge.levels.{name}")
    return np.asarray(rows, dtype=np.float64).reshape(-1, 2)
