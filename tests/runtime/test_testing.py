"""va_actors.testing: the helpers users' tests and our benches run pipelines with."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.runtime.harness import TONE, load, sink
from va_actors.testing import host_processes, read_jsonl, supervised, until


def test_read_jsonl_leaves_out_a_line_still_being_written(tmp_path: Path) -> None:
    log = tmp_path / "log.jsonl"
    assert read_jsonl(log) == []  # not created yet
    log.write_text('{"seq": 1}\n{"seq": 2}\n{"se')
    assert read_jsonl(log) == [{"seq": 1}, {"seq": 2}]


async def test_until_names_what_it_waited_for() -> None:
    assert await until(lambda: 7, 1, "a number") == 7
    with pytest.raises(TimeoutError, match="waiting for the moon"):
        await until(lambda: None, 0.05, "the moon")


@pytest.mark.timeout(60)
async def test_supervised_reaps_every_actor_even_when_the_body_fails(tmp_path: Path) -> None:
    config = load(tmp_path, TONE + sink(tmp_path / "rec.jsonl"))
    with pytest.raises(ZeroDivisionError):
        async with supervised(config, tmp_path / "run") as (_sup, log):
            await log.wait("sink", "running")
            assert len(host_processes()) == 2
            1 / 0  # noqa: B018 - the test body failing
    assert host_processes() == []
