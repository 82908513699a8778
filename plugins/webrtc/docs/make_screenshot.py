"""Take the README's screenshot of the page, with the real pipeline and a real browser.

    .venv/bin/python plugins/webrtc/docs/make_screenshot.py

Runs launch/browser_vision.toml, opens its page in headless Chromium (fake
microphone: launch/assets/voice/browser_bargein.wav; fake camera: the face
video of launch/assets/video), waits for both questions, a barge-in and the
second reply, and writes plugins/webrtc/docs/page.png.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
sys.path.insert(0, str(REPO))

from tests.integration.chromium import chromium, y4m_file  # noqa: E402
from tests.integration.harness import free_port, launched  # noqa: E402
from tests.integration.test_browser_agent import open_page, wait_lines  # noqa: E402


async def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        pipeline = Path(tmp) / "browser_vision.toml"
        pipeline.write_text((REPO / "launch/browser_vision.toml").read_text()
                            .replace("port = 8780", f"port = {port}"))
        camera = y4m_file(REPO / "launch/assets/video/faces.mp4", Path(tmp) / "camera.y4m",
                          width=640, height=480, fps=15, seconds=4)
        with launched(pipeline) as run:
            run.wait_for(r"talk to the agent at", 90)
            mic = REPO / "launch/assets/voice/browser_bargein.wav"
            async with chromium(mic, camera) as browser:
                page = await open_page(browser, f"http://127.0.0.1:{port}/")
                await wait_lines(page, "agent", 2, 90, final=False)
                await page.wait_for_function("window.vaEdge.latencies.length >= 2 && "
                                             "!window.vaEdge.playing", timeout=90000)
                await asyncio.sleep(1.5)
                await page.screenshot(path=str(HERE / "page.png"), full_page=True)
    print(f"wrote {HERE / 'page.png'}")


if __name__ == "__main__":
    asyncio.run(main())
