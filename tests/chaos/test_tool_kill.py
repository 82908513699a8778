"""kill -9 of the LLM actor while its tool runs: the turn is answered once, by the new process.

asker -> openai.llm (a slow registered tool) -> recording sink, each in its own
process; the model side is the scripted OpenAI server speaking the real
streaming protocol (a ``tool_calls`` round, then an answer built from the
``role: tool`` message). The LLM is killed while the tool sleeps.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.openai_server import ScriptedOpenAI, chunk, text_round
from tests.runtime.harness import data, load, supervising, until
from va_actors.cli.history import session_history
from va_actors.runtime.session_vars import RUN_SESSION

pytestmark = pytest.mark.timeout(90)

TOOL_LOG_ENV = "VA_TEST_TOOL_LOG"


def lookup_order(order: str) -> dict[str, Any]:
    """Where an order is (slow: a remote system)."""
    log = os.environ.get(TOOL_LOG_ENV)
    if log:
        with open(log, "a", encoding="utf-8") as out:
            out.write(json.dumps({"started": time.time(), "pid": os.getpid()}) + "\n")
    time.sleep(1.5)
    return {"order": order, "status": "shipped"}


def script(body: dict[str, Any]) -> list[bytes]:
    last = body["messages"][-1]
    if last["role"] == "tool":
        result = json.loads(last["content"])
        return text_round(f"Order {result['order']} has {result['status']}.")
    head = {"index": 0, "id": "call_o1", "type": "function",
            "function": {"name": "lookup_order", "arguments": json.dumps({"order": "A7"})}}
    return [chunk({"role": "assistant", "content": None, "tool_calls": [head]}),
            chunk({}, "tool_calls")]


@pytest.fixture
def server() -> Iterator[ScriptedOpenAI]:
    with ScriptedOpenAI(script) as running:
        yield running


async def test_the_llm_killed_during_a_tool_call_answers_after_its_restart(
        tmp_path: Path, server: ScriptedOpenAI) -> None:
    tool_log, rec = tmp_path / "tool.jsonl", tmp_path / "said.jsonl"
    config = load(tmp_path, f"""
[[actor]]
name = "asker"
plugin = "tests.actors.asker:Asker"
params = {{ path = "{tmp_path / 'questions.txt'}" }}

[[actor]]
name = "llm"
plugin = "openai.llm"
inputs = ["asker.transcript"]
env = {{ {TOOL_LOG_ENV} = "{tool_log}" }}
[actor.params]
model = "scripted"
base_url = "{server.base_url}"
api_key = "not-needed"
tools = ["tests.chaos.test_tool_kill:lookup_order"]

[[actor]]
name = "sink"
plugin = "tests.actors.record:RecordingSink"
inputs = ["llm.text"]
params = {{ path = "{rec}" }}
""")
    async with supervising(config, tmp_path) as (sup, log):
        (tmp_path / "questions.txt").write_text("Where is my order A7?\n")
        await until(tool_log.exists, 20, "the tool to start")
        old = sup.pid_of("llm")
        assert old is not None
        os.kill(old, signal.SIGKILL)  # the tool is sleeping in that process
        await log.wait("llm", "running", restarts=1)
        await until(lambda: [r for r in data(rec) if r.get("final")], 30, "the answer")
        history = session_history(sup.state_store, RUN_SESSION)
    finals = [r for r in data(rec) if r.get("final")]
    assert [r["text"] for r in finals] == ["Order A7 has shipped."]
    assert finals[0]["user_text"] == "Where is my order A7?"
    runs = [json.loads(line) for line in tool_log.read_text().splitlines()]
    assert len(runs) == 2 and runs[0]["pid"] == old != runs[1]["pid"]  # called again
    assert [(m["role"], m["content"]) for m in history["messages"]] == [
        ("user", "Where is my order A7?"), ("assistant", "Order A7 has shipped.")]
    tools = history["tools"]
    assert tools[-1]["name"] == "lookup_order" and tools[-1]["done"]
    assert tools[-1]["result"] == {"order": "A7", "status": "shipped"}
