"""The adapter, run where it lives: in launch/envs/vision-agents, against Vision Agents'
real base classes (pytest itself stays in va-launch's environment; each check is a
script run on the environment's interpreter that prints what it found as JSON)."""

from __future__ import annotations

import json
import subprocess
import textwrap
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[3]
ENV = REPO / "launch" / "envs" / "vision-agents"

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]


def _in_env(code: str) -> Any:
    from va_actors.runtime.environments import Environment, EnvKind, prepare

    python = prepare(Environment(EnvKind.PROJECT, str(ENV), ENV))
    done = subprocess.run([str(python), "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=150, check=False)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_vision_agents_tts_speaks_through_our_base_resampled_and_interruptible() -> None:
    found = _in_env("""
        import asyncio, json
        import numpy as np
        from getstream.video.rtc.track_util import AudioFormat, PcmData
        from vision_agents.core.tts.tts import TTS
        from va_actors.plugins.vision_agents.adapter import wrap

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

        async def main():
            tts = wrap(Beep)()
            out = [c async for c in tts.send_iter("Hello there.")]
            audio = [c.data for c in out if c.data is not None]
            await tts.interrupt()
            return {"rates": sorted({a.sample_rate for a in audio}),
                    "ms": sum(a.duration_ms for a in audio), "final": out[-1].final,
                    "stopped": Beep.stopped}
        print(json.dumps(asyncio.run(main())))
    """)
    assert found["rates"] == [16000] and found["final"]  # our default output format
    assert abs(found["ms"] - 1000) < 25
    assert found["stopped"] == 1  # interrupt reached the plugin's stop_audio


def test_references_that_do_not_fit_are_named() -> None:
    found = _in_env("""
        import inspect, json
        from va_actors.plugins.vision_agents.adapter import adapt, wrap
        from vision_agents.plugins import openai
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
        print(json.dumps(out))
    """)
    assert "has no class 'ChatCompletionLLM'; it has: ChatCompletionsLLM" in \
        found["openai.ChatCompletionLLM"]
    assert "vision-agents-plugins-nosuch" in found["nosuch.STT"]
    assert "vision_agents:openai.ChatCompletionsLLM" in found["ChatCompletionsLLM"]
    assert "Realtime" in found["realtime"]
    assert found["params"][:3] == ["model", "api_key", "base_url"]
    assert "instructions" in found["params"]
