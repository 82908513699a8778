"""An idle actor host does not load PyAV or Pillow (issue #6: idle RSS < 60 MB).

PyAV (~16 MB RSS) and Pillow (~5.5 MB) are only needed by frame conversions
(``to_av``, ``from_image``, JPEG encoding, file decoding), so the modules an
actor host imports must import them lazily. Three guards:

* a fresh interpreter importing what a host and typical plugins import has
  neither ``av`` nor ``PIL`` in ``sys.modules``;
* real actor hosts, started by a :class:`Supervisor` and streaming audio, have
  not mapped PyAV's or Pillow's shared libraries;
* in a fresh interpreter the lazy conversion paths still work (pytest's own
  process has usually imported PyAV already, which would hide a broken one).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.runtime.harness import supervising, tone_echo_sink
from va_actors.runtime.config import load_pipeline

HEAVY = ("av", "PIL")

# What an actor host imports at start, plus the core packages plugins build on.
HOST_IMPORTS = (
    "va_actors.runtime.host",
    "va_actors.runtime.drivers",
    "va_actors.wire",
    "va_actors.core.audio",
    "va_actors.core.video",
    "va_actors.core.utils",
    "va_actors.core.utils.video_utils",
    "va_actors.core.events",
    "va_actors.core.llm",
    "va_actors.core.stt",
    "va_actors.core.tts",
    "va_actors.plugins.local",
)


def _run_python(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, f"subprocess failed:\n{done.stderr}"
    return done.stdout


def test_host_imports_load_neither_pyav_nor_pillow() -> None:
    code = (
        "import importlib, json, sys\n"
        f"for name in {HOST_IMPORTS!r}:\n"
        "    importlib.import_module(name)\n"
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))\n"
    )
    loaded = json.loads(_run_python(code))
    assert loaded == [], (
        f"importing the actor host's modules loaded {loaded}; import them inside the "
        "functions that need them (python -X importtime shows who imports them)")


def test_lazy_conversions_work_in_a_fresh_interpreter() -> None:
    code = """
import json, sys
from fractions import Fraction
import numpy as np
from va_actors.core.audio import PcmData
from va_actors.core.video import VideoFrame, frame_to_jpeg_bytes
from va_actors.core.video.frame import is_av_video_frame
from va_actors.core.utils.video_utils import frame_to_png_bytes

rgb = np.arange(16 * 8 * 3, dtype=np.uint8).reshape(8, 16, 3)
frame = VideoFrame.from_ndarray(rgb, pts=3, time_base=Fraction(1, 30))
result = {"checked_without_av": not is_av_video_frame(frame) and "av" not in sys.modules}
av_frame = frame.to_av()
result["av_round_trip"] = VideoFrame.from_av(av_frame) == frame
result["av_frame_recognised"] = is_av_video_frame(av_frame)
result["image_round_trip"] = VideoFrame.from_image(frame.to_image(), 3, Fraction(1, 30)) == frame
result["jpeg_from_av"] = frame_to_jpeg_bytes(av_frame, max_size=8)[:2] == b"\\xff\\xd8"
result["png"] = frame_to_png_bytes(frame)[:4] == b"\\x89PNG"
pcm = PcmData(16000, "s16", np.arange(320, dtype=np.int16), pts=7, time_base=1 / 16000)
back = PcmData.from_av_frame(pcm.to_av_frame())
result["pcm_round_trip"] = bool(np.array_equal(back.samples, pcm.samples)) and back.pts == 7
print(json.dumps(result))
"""
    result = json.loads(_run_python(code))
    assert all(result.values()), result




def _mapped_heavy_libraries(pid: int) -> list[str]:
    """Paths of PyAV / Pillow files (their extension modules, libav*) mapped by ``pid``."""
    maps = Path(f"/proc/{pid}/maps").read_text()
    paths = {line.split()[-1] for line in maps.splitlines() if "/" in line}
    markers = ("/av/", "/av.libs/", "/PIL/", "/pillow.libs/")
    return sorted(p for p in paths if any(m in p for m in markers))


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="needs Linux /proc")
async def test_running_actor_hosts_have_not_loaded_pyav_or_pillow(tmp_path: Path) -> None:
    config = load_pipeline(tone_echo_sink(tmp_path, rate=16000, channels=1))
    async with supervising(config, tmp_path) as (sup, _):
        await asyncio.sleep(0.5)  # audio flows through every host
        pids = {name: sup.pid_of(name) for name in ("mic", "echo", "sink")}
        assert all(pid is not None for pid in pids.values()), pids
        mapped = {name: _mapped_heavy_libraries(pid) for name, pid in pids.items() if pid}
        assert not any(mapped.values()), f"actor hosts loaded PyAV/Pillow: {mapped}"
