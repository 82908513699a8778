"""The adapter, run where it lives: in launch/envs/vision-agents, against Vision Agents'
real base classes (pytest itself stays in va-launch's environment; each check is a
script run on the environment's interpreter that prints what it found as JSON)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[3]
ENV = REPO / "launch" / "envs" / "vision-agents"

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]


def _in_env(code: str) -> Any:
    from va_actors.runtime.environments import Environment, EnvKind, prepare

    python = prepare(Environment(EnvKind.PROJECT, str(ENV), ENV))
    done = subprocess.run([str(python), "-c", code], capture_output=True,
                          text=True, timeout=150, check=False)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


# One script, one interpreter start: importing Vision Agents costs seconds.
SCRIPT = """
import asyncio, inspect, json
import numpy as np
from getstream.video.rtc.track_util import AudioFormat, PcmData
from vision_agents.core.tts.tts import TTS
from vision_agents.plugins import openai
from va_actors.plugins.vision_agents.adapter import adapt, wrap


class Beep(TTS):
    # A Vision Agents TTS as their plugins are written: 24 kHz PcmData chunks.
    stopped = 0
    async def stream_audio(self, text, *args, **kwargs):
        async def chunks():
            for _ in range(10):  # 10 x 100 ms
                yield PcmData(sample_rate=24000, format=AudioFormat.S16,
                              samples=np.full(2400, 1000, np.int16), channels=1)
        return chunks()
    async def stop_audio(self):
        Beep.stopped += 1


async def tts():
    tts = wrap(Beep)()
    out = [c async for c in tts.send_iter("Hello there.")]
    audio = [c.data for c in out if c.data is not None]
    await tts.interrupt()
    return {"rates": sorted({a.sample_rate for a in audio}),
            "ms": sum(a.duration_ms for a in audio), "final": out[-1].final,
            "stopped": Beep.stopped}


def references():
    out = {}
    for ref in ("openai.ChatCompletionLLM", "nosuch.STT", "ChatCompletionsLLM"):
        try:
            adapt(ref)
        except LookupError as exc:
            out[ref] = str(exc)
    try:
        wrap(openai.Realtime)
    except TypeError as exc:
        out["realtime"] = str(exc)
    out["params"] = list(inspect.signature(adapt("openai.ChatCompletionsLLM")).parameters)
    return out


print(json.dumps({"tts": asyncio.run(tts()), "references": references()}))
"""


@pytest.fixture(scope="module")
def found() -> Any:
    """What the script found in the environment."""
    return _in_env(SCRIPT)


def test_a_vision_agents_tts_speaks_through_our_base_resampled_and_interruptible(
        found: Any) -> None:
    tts = found["tts"]
    assert tts["rates"] == [16000] and tts["final"]  # our default output format
    assert abs(tts["ms"] - 1000) < 25
    assert tts["stopped"] == 1  # interrupt reached the plugin's stop_audio


def test_references_that_do_not_fit_are_named(found: Any) -> None:
    refs = found["references"]
    assert "has no class 'ChatCompletionLLM'; it has: ChatCompletionsLLM" in \
        refs["openai.ChatCompletionLLM"]
    assert "vision-agents-plugins-nosuch" in refs["nosuch.STT"]
    assert "vision_agents:openai.ChatCompletionsLLM" in refs["ChatCompletionsLLM"]
    assert "Realtime" in refs["realtime"]
    assert refs["params"][:3] == ["model", "api_key", "base_url"]
    assert "instructions" in refs["params"]
