"""A crash loses nothing: a restarted LLM actor answers from the conversation so far.

asker (a scripted user's transcripts) -> openai.llm -> recording sink, each in
its own process, the model side a scripted OpenAI server that answers the
follow-up only if the messages it receives hold the earlier turn. The llm
actor is killed with SIGKILL between the two questions, and then once in the
middle of a reply: the restarted actor says only the rest of that reply.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.openai_server import ScriptedOpenAI, text_round
from tests.postgres import postgres_server, postgres_url  # noqa: F401 - fixtures
from tests.runtime.harness import data, load, supervising, until
from va_actors.cli.history import format_history, session_history
from va_actors.runtime.session_vars import RUN_SESSION

pytestmark = pytest.mark.timeout(90)

CAPITAL = "Paris is the capital of France."
PEOPLE = "About two million people live in Paris."
LOST = "I do not know which city you mean."
COUNT = ("One two three four five six seven eight nine ten eleven twelve thirteen fourteen "
         "fifteen sixteen seventeen eighteen nineteen twenty.")


def answer(body: dict[str, Any]) -> list[bytes]:
    """Answers that depend on the history the LLM actor sends."""
    messages = body["messages"]
    question = messages[-1]["content"]
    if "capital" in question:
        return text_round(CAPITAL)
    if "count" in question:
        return text_round(COUNT)
    heard = any(m["role"] == "assistant" and "Paris" in m["content"] for m in messages)
    return text_round(PEOPLE if heard else LOST)


@pytest.fixture
def server() -> Iterator[ScriptedOpenAI]:
    with ScriptedOpenAI(answer, delay_s=0.05) as running:
        yield running


def _pipeline(tmp_path: Path, server: ScriptedOpenAI, state: str | None = None) -> str:
    kept = "" if state is None else f'state = "{state}"\n'
    return f"""
[pipeline]
name = "crash-state"
{kept}
[[actor]]
name = "asker"
plugin = "tests.actors.asker:Asker"
params = {{ path = "{tmp_path / 'questions.txt'}" }}

[[actor]]
name = "llm"
plugin = "openai.llm"
inputs = ["asker.transcript"]
restart = "always"
backoff_initial_s = 0.05
[actor.params]
model = "scripted"
base_url = "{server.base_url}"
api_key = "not-needed"

[[actor]]
name = "sink"
plugin = "tests.actors.record:RecordingSink"
inputs = ["llm.text"]
params = {{ path = "{tmp_path / 'said.jsonl'}" }}
"""


def _ask(tmp_path: Path, question: str) -> None:
    with (tmp_path / "questions.txt").open("a") as out:
        out.write(question + "\n")


def _finals(rec: Path) -> list[str]:
    return [str(r["text"]) for r in data(rec) if r.get("final")]


@pytest.mark.parametrize("where", ["run directory", "postgresql"])
async def test_a_restarted_llm_answers_a_follow_up_that_needs_the_earlier_turns(
        tmp_path: Path, server: ScriptedOpenAI, where: str, request: pytest.FixtureRequest,
) -> None:
    rec = tmp_path / "said.jsonl"
    state = request.getfixturevalue("postgres_url") if where == "postgresql" else None
    config = load(tmp_path, _pipeline(tmp_path, server, state))
    async with supervising(config, tmp_path) as (sup, log):
        _ask(tmp_path, "What is the capital of France?")
        await until(lambda: CAPITAL in _finals(rec), 20, "the first answer")
        old = sup.pid_of("llm")
        assert old is not None
        os.kill(old, signal.SIGKILL)
        await log.wait("llm", "running", restarts=1)
        _ask(tmp_path, "How many people live there?")
        await until(lambda: len(_finals(rec)) >= 2, 20, "the follow-up's answer")
        assert _finals(rec) == [CAPITAL, PEOPLE]
        # What the restarted actor sent: the whole conversation, in order.
        follow_up = server.requests[-1]["messages"]
        assert [(m["role"], m["content"]) for m in follow_up if m["role"] != "system"] == [
            ("user", "What is the capital of France?"), ("assistant", CAPITAL),
            ("user", "How many people live there?")]
        # `va-launch history` shows the same conversation.
        history = session_history(sup.state_store, RUN_SESSION)
        assert [m["content"] for m in history["messages"]] == [
            "What is the capital of France?", CAPITAL, "How many people live there?", PEOPLE]
        assert "agent: " + PEOPLE in format_history(history)
        shown = await asyncio.to_thread(
            subprocess.run, [sys.executable, "-m", "va_actors.cli.main", "history", "--run-dir",
             str(sup.run_dir), "--json"], capture_output=True, text=True, timeout=30,
            check=True)
        assert json.loads(shown.stdout)[0]["messages"][-1]["content"] == PEOPLE


async def test_an_llm_killed_mid_reply_is_restarted_and_says_only_the_rest(
        tmp_path: Path, server: ScriptedOpenAI) -> None:
    rec = tmp_path / "said.jsonl"
    config = load(tmp_path, _pipeline(tmp_path, server))
    async with supervising(config, tmp_path) as (sup, log):
        _ask(tmp_path, "Please count to twenty.")
        await until(lambda: len(data(rec)) >= 5, 20, "the reply to be under way")
        old = sup.pid_of("llm")
        assert old is not None
        os.kill(old, signal.SIGKILL)
        await log.wait("llm", "running", restarts=1)
        await until(lambda: _finals(rec), 20, "the rest of the reply")
        chunks = [r for r in data(rec) if not r.get("final")]
        said = "".join(str(r["text"]) for r in chunks)
        # Every word once, in order, across the two incarnations; one reply id.
        assert said.split() == COUNT.split()
        assert len({r.get("response_id") for r in data(rec)}) == 1
        assert any(r.get("rerun") for r in chunks)
        assert _finals(rec)[0].split() == COUNT.split()
