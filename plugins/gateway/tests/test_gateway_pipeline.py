"""The gateway as an actor in a running pipeline (one process per actor), with stand-ins.

Recording actors stand in for the turn detector, STT and LLM: what the
gateway publishes crosses the wire to them, and the supervisor follows the
gateway's ``turn`` (a client's ``response.cancel`` asks for an epoch bump).
"""

from __future__ import annotations

import itertools
from pathlib import Path

import aiohttp
import pytest

from va_actors.plugins.gateway.scripted_client import ScriptedRealtimeClient, load_wav
from va_actors.runtime.config import load_pipeline
from va_actors.testing import free_port, read_jsonl, supervised, until

REPO = Path(__file__).resolve().parents[3]
JOKE = REPO / "launch" / "assets" / "voice" / "joke.wav"

pytestmark = pytest.mark.timeout(90)


def pipeline(tmp_path: Path, port: int) -> Path:
    path = tmp_path / "gateway.toml"
    recorders = "".join(f"""
[[actor]]
name = "{name}"
plugin = "tests.actors.record:RecordingSink"
inputs = ["gateway.{stream}"]
params = {{ path = "{tmp_path / (name + '.jsonl')}" }}
""" for name, stream in (("asr", "audio"), ("brain", "transcript"), ("turns", "turn")))
    path.write_text(f"""
[pipeline]
name = "gateway-pipeline"

[[actor]]
name = "gateway"
plugin = "gateway.realtime"
[actor.params]
port = {port}
instructions = "Be brief."
{recorders}""")
    return path


async def test_the_gateway_actor_serves_a_client_and_asks_for_a_barge_in(
        tmp_path: Path) -> None:
    port = free_port()
    async with supervised(load_pipeline(pipeline(tmp_path, port)), tmp_path / "run") as (sup,
                                                                                      log):
        async with aiohttp.ClientSession() as http, http.get(
                f"http://127.0.0.1:{port}/health") as health:
            assert health.status == 200
        async with ScriptedRealtimeClient(f"ws://127.0.0.1:{port}/v1/realtime") as client:
            session = (await client.next("session.created"))["session"]
            client.start_microphone()  # at the pace of real time, as a microphone
            await client.say(load_wav(JOKE))
            audio = await until(lambda: [r for r in read_jsonl(tmp_path / "asr.jsonl")
                                         if r["topic"] == "gateway.audio"], 10, "audio")
            assert audio[0]["pts"] == 0 and all(
                b["pts"] - a["pts"] == 320 for a, b in itertools.pairwise(audio))
            await client.stop_microphone()
            # A text turn goes to the LLM's input; the session's context went first.
            await client.send({"type": "conversation.item.create", "item": {
                "type": "message", "role": "user",
                "content": [{"type": "input_text", "text": "Hello?"}]}})
            await client.send({"type": "response.create"})
            created = await client.next("response.created")
            told = await until(lambda: [r["type"] for r in read_jsonl(tmp_path / "brain.jsonl")
                                        if "type" in r][-2:] == ["plugin.llm_context",
                                                                 "plugin.stt_transcript"],
                               10, "the context and the turn at the LLM's input")
            assert told
            # Nothing plays yet, so the supervisor bumps on any turn start: the
            # gateway's cancel reaches it through gateway.turn.
            await client.send({"type": "response.cancel"})
            done = await client.next("response.done")
            assert done["response"]["id"] == created["response"]["id"]
            assert done["response"]["status"] == "cancelled"
            await until(lambda: log.epochs, 10, "an epoch bump")
            assert "turn started on gateway.turn" in log.epochs[0]["reason"]
            asked = await until(lambda: [r["type"] for r in read_jsonl(tmp_path / "turns.jsonl")
                                         if "type" in r], 10, "the cancel on gateway.turn")
            assert asked == ["plugin.turn_started"]
            assert session["id"].startswith("sess_")
            client.check_protocol()
        assert sup.epoch == 1
