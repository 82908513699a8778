"""openai.Realtime against the realtime gateway: the GA protocol end to end, real models.

``launch/realtime_agent.toml`` runs the scripted user and an ``openai.realtime``
agent pointed at ``ws://127.0.0.1:8790/v1/realtime``, and starts the gateway
pipeline (Silero + Smart-Turn, Whisper, SmolLM2, Piper behind
``gateway.realtime``) as its ``[[service]]``. The second question comes while
the first answer plays: the gateway's VAD tells the client, which cancels and
truncates the reply at what the speaker played.
"""

from __future__ import annotations

import re

import pytest

from tests.integration.harness import REPO, run_launch

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]


def test_a_realtime_client_talks_to_the_local_pipeline_through_the_gateway() -> None:
    code, log = run_launch(REPO / "launch" / "realtime_agent.toml", timeout=200)
    assert code == 0, log[-4000:]
    users = [line for line in log.splitlines() if line.startswith("user:")]
    agents = [line for line in log.splitlines() if line.startswith("agent:")]
    # Both questions were transcribed by the gateway's pipeline and reached the client.
    assert any("weather" in line.lower() for line in users), log[-4000:]
    assert any("joke" in line.lower() for line in users), log[-4000:]
    assert len(agents) >= 2, log[-4000:]
    # The first answer was cut by the second question, and the cut is what was heard.
    heard = re.search(r"\[barge-in: the user heard ['\"](.+)['\"]\]", log)
    assert heard is not None, log[-4000:]
    assert any(line.split(":", 1)[1].strip().startswith(heard.group(1)[:20]) for line in agents)
    assert "voice-to-voice" in log
