"""Chaos: kill -9 of random stages during 10-turn conversations with the real models.

bench/chaos.py's scenario (launch/voice_agent.toml's stack, a scripted user
who waits for each answer): two runs, ten kills each of a random one of stt /
llm / tts / turn at a random moment. Every question is answered, the history
holds the same user turns as a run without kills (bench.chaos.REFERENCE_TURNS),
and no agent sentence is said twice.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from bench import chaos

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

RUNS, KILLS, SEED = 2, 10, 20261204


async def test_random_kills_lose_no_question_and_repeat_no_sentence(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    results = [await chaos.run_once(tmp_path, f"chaos{i}", KILLS, rng) for i in range(RUNS)]
    summary = chaos.summary(results)
    print("chaos:", json.dumps(summary))
    problems = [p for r in results for p in chaos.check(chaos.REFERENCE_TURNS, r)]
    assert problems == [], (problems, summary)
    assert summary["kills"] >= RUNS * KILLS - 2  # a run may end before its last kill
    assert all(summary["by_target"][t] >= 1 for t in chaos.TARGETS), summary
    assert summary["answered"] == summary["questions"] == RUNS * len(chaos.QUESTIONS)
    assert summary["replayed"] > 0  # restarted consumers did get what they missed
