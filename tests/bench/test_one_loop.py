"""bench.one_loop: the voice agent's session as tasks of one process (the in-process side
of bench.sessions) holds the same conversation as under the actor runtime."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from bench.sessions import in_one_process, template

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]


def test_one_session_in_one_process_answers_both_questions_and_measures_them(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    result = in_one_process(template(tmp_path), tmp_path, 1)
    out = capsys.readouterr().out
    # The console (the same Node as in the actor pipeline) saw both questions heard
    # whole and the first answer cut by the second question.
    assert "weather" in out and "joke" in out, out
    assert "[barge-in: the user heard" in out, out
    session = result["per_session"]["loop0"]
    assert session["turns"] == 2, result
    assert 0 < session["median_ms"] < 10_000, result
    # The recorder stage logged the scripted microphone: a jitter figure exists.
    assert math.isfinite(result["first_jitter_p99_ms"]), result
