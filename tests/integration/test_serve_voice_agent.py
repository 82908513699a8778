"""``va-launch serve launch/voice_agent.toml``, a POST, a conversation, and /metrics shows it.

The README's serving commands with the real models: the session runs the
scripted user's two questions through Silero, Whisper, SmolLM2 (on the shared
llama.cpp service) and Piper, ends when its script has played out, and the
Prometheus endpoint counts its turns and their voice-to-voice latency.
"""

from __future__ import annotations

import json
import time
import urllib.request
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.harness import REPO, Launched, free_port, launched

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]


def request(method: str, url: str) -> Any:
    with urllib.request.urlopen(urllib.request.Request(url, method=method), timeout=30) as r:
        return json.loads(r.read())


def wait_ready(base: str, server: Launched, timeout_s: float) -> None:
    """GET /ready answers 200 once the shared llama.cpp service is up."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert server.proc.poll() is None, server.output[-4000:]
        try:
            request("GET", f"{base}/ready")
            return
        except OSError:
            time.sleep(0.5)
    raise AssertionError(f"serve not ready in {timeout_s:g} s:\n{server.output[-4000:]}")


def session_metrics(base: str, session: str) -> dict[str, float]:
    """The samples of ``/metrics`` labelled with ``session`` only (per-session figures)."""
    with urllib.request.urlopen(f"{base}/metrics", timeout=30) as r:
        text = r.read().decode()
    found: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.labels == {"session": session}:
                found[sample.name] = sample.value
    return found


def test_serve_runs_a_conversation_per_post_and_metrics_show_its_turns() -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    # No pool (the cold path is what a fresh server has); admission's load
    # thresholds off, since CI machines run other work beside this test.
    with launched(REPO / "launch" / "voice_agent.toml", "serve", "--port", str(port),
                  "--pool", "0", "--max-sessions", "1", "--max-cpu", "100",
                  "--session-cpu", "0") as server:
        wait_ready(base, server, 120)
        created = request("POST", f"{base}/sessions")
        sid = created["id"]
        assert created["state"] in ("starting", "running"), created
        deadline = time.monotonic() + 150
        figures: dict[str, float] = {}
        while time.monotonic() < deadline:
            figures = session_metrics(base, sid)
            if figures.get("va_turns_total", 0) >= 2:
                break
            time.sleep(1.0)
        assert figures.get("va_turns_total", 0) >= 2, (figures, server.output[-4000:])
        # Both questions heard, both answered (the session's console lines).
        server.wait_for(r"user:.*weather", 10)
        server.wait_for(r"user:.*joke", 10)
        assert figures["va_voice_to_voice_ms_count"] >= 2
        assert 0 < figures["va_voice_to_voice_ms_sum"] / figures["va_voice_to_voice_ms_count"] \
            < 10_000
        listed = request("GET", f"{base}/sessions")
        assert any(s["id"] == sid for s in listed["sessions"]), listed
