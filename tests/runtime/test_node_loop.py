"""A node may read its inputs as a loop in run() instead of on_message callbacks."""

from __future__ import annotations

from pathlib import Path

from tests.runtime.harness import load, read_jsonl, supervising, until


async def test_a_node_reading_ctx_inputs_gets_every_message_in_order(tmp_path: Path) -> None:
    path = tmp_path / "loop.jsonl"
    config = load(tmp_path, f"""
[[actor]]
name = "mic"
plugin = "tests.actors.tone:ToneSource"
params = {{ count = 60, realtime = false }}

[[actor]]
name = "loop"
plugin = "tests.actors.loop_record:LoopRecorder"
inputs = ["mic.audio"]
params = {{ path = "{path}" }}
""")
    async with supervising(config, tmp_path):
        lines = await until(lambda: len(read_jsonl(path)) >= 60 and read_jsonl(path), 20,
                            "60 messages read through ctx.inputs()")
    assert [(r["topic"], r["seq"]) for r in lines] == [("mic.audio", i) for i in range(60)]
